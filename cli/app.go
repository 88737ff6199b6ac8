// Package cli holds capsrec's commands: record, profile, caps and doctor, one
// file each, and what they share (the BPF session, the runtime's endpoints).
// The kubectl front end is in cli/kubectl, which uses this package.
package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// Version is capsrec's version; a release build sets it with -ldflags -X.
var Version = "dev"

// hoistGlobalFlags moves global flags found after the subcommand to before it
// (capsrec record -r SOCK, as kubectl and crictl users write it): urfave/cli
// knows them only there. globals are the app's own flags.
func hoistGlobalFlags(args []string, commands []*cli.Command, globals []cli.Flag) []string {
	takesValue := FlagValues(globals)
	isGlobal := func(a string) (name string, value, ok bool) {
		name, _, hasValue := strings.Cut(a, "=")
		v, ok := takesValue[name]
		return name, v && !hasValue, ok
	}
	sub := -1
	for i := 1; i < len(args) && sub < 0; i++ {
		for _, c := range commands {
			if args[i] == c.Name {
				sub = i
			}
		}
		if _, value, ok := isGlobal(args[i]); ok && value {
			i++ // a global flag before the subcommand: skip its value
		}
	}
	if sub < 0 {
		return args
	}
	var hoisted, rest []string
	for i := sub + 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		_, value, ok := isGlobal(a)
		if !ok {
			rest = append(rest, a)
			continue
		}
		hoisted = append(hoisted, a)
		if value && i+1 < len(args) {
			hoisted = append(hoisted, args[i+1])
			i++
		}
	}
	out := append([]string{}, args[:sub]...)
	out = append(out, hoisted...)
	out = append(out, args[sub])
	return append(out, rest...)
}

// FlagValues maps each flag's spellings ("-r", "--btf") to whether a value follows it.
func FlagValues(flags []cli.Flag) map[string]bool {
	takesValue := map[string]bool{}
	for _, f := range flags {
		value := true
		if d, ok := f.(cli.DocGenerationFlag); ok {
			value = d.TakesValue()
		}
		for _, n := range f.Names() {
			if len(n) == 1 {
				takesValue["-"+n] = value
			} else {
				takesValue["--"+n] = value
			}
		}
	}
	return takesValue
}

// FlagsFirst moves a subcommand's arguments after its flags, as kubectl takes
// them (kubectl capsrec record xwing -o json): urfave/cli stops reading flags
// at the first argument.
func FlagsFirst(args []string, commands []*cli.Command) []string {
	if len(args) < 2 {
		return args
	}
	var cmd *cli.Command
	for _, c := range commands {
		if c.HasName(args[1]) {
			cmd = c
		}
	}
	if cmd == nil {
		return args
	}
	takesValue := FlagValues(cmd.Flags)
	flags, positional := []string{}, []string{}
	for i := 2; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			flags = append(flags, a)
			name, _, hasValue := strings.Cut(a, "=")
			if takesValue[name] && !hasValue && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			positional = append(positional, a)
		}
	}
	out := append(append([]string{}, args[:2]...), flags...)
	if len(positional) > 0 {
		out = append(append(out, "--"), positional...)
	}
	return out
}

// Run runs capsrec with args (os.Args).
func Run(args []string) error {
	commands := []*cli.Command{recordCommand, profileCommand, capsCommand, doctorCommand}
	app := &cli.App{
		Name:    "capsrec",
		Usage:   "record Linux capability checks of processes, containers and pods, and profile them",
		Version: Version,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:    "node-name",
				Usage:   "node name in JSON events and exec IDs (Tetragon's node_name)",
				EnvVars: []string{"NODE_NAME"},
			},
			&cli.StringFlag{
				Name:    "runtime-endpoint",
				Aliases: []string{"r"},
				Usage:   "the container runtime's CRI socket (default: containerd's, then CRI-O's)",
				EnvVars: []string{"CONTAINER_RUNTIME_ENDPOINT"},
			},
			&cli.StringFlag{
				Name:    "btf",
				Usage:   "kernel BTF file for kernels without /sys/kernel/btf/vmlinux (as BTFHub provides)",
				EnvVars: []string{"CAPSREC_BTF"},
			},
		},
		Commands:             commands,
		HideHelpCommand:      true,
		EnableBashCompletion: true,
		// Errors are printed once, by main, on one line.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   UsageError,
	}
	UsageErrorsOnOneLine(commands)
	return app.Run(hoistGlobalFlags(args, commands, app.Flags))
}

// UsageError is a flag or argument error: one line, never the whole usage.
func UsageError(_ *cli.Context, err error, _ bool) error {
	return fmt.Errorf("%w (see --help)", err)
}

// UsageErrorsOnOneLine gives every command UsageError: urfave/cli prints a
// command's usage for a bad flag unless the command says otherwise.
func UsageErrorsOnOneLine(commands []*cli.Command) {
	for _, c := range commands {
		c.OnUsageError = UsageError
		UsageErrorsOnOneLine(c.Subcommands)
	}
}

func nodeName(c *cli.Context) string {
	if n := c.String("node-name"); n != "" {
		return n
	}
	n, err := os.Hostname()
	if err != nil {
		return "localhost"
	}
	return n
}
