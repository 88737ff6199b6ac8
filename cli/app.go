// Package cli holds capsrec's commands: record, profile, caps and doctor, one
// file each, and what they share (the BPF session, the runtime's endpoints).
// The kubectl front end is in kubectl/, which uses this package.
package cli

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// Version is capsrec's version; a release build sets it with -ldflags -X.
var Version = "dev"

// arrangeArgs puts a command line in the order urfave/cli reads, whatever
// order people type it in: global flags found after the subcommand go before
// it (capsrec record -r SOCK), and the subcommand's flags before its arguments
// (capsrec profile rec.json -o yaml), which follow a "--". Everything after a
// "--" the user wrote stays an argument (capsrec record -- sh -c 'id -u'); with
// keepDash, that "--" is kept too, as the first argument after the files
// (commandArgs splits them). globals are the app's own flags.
func arrangeArgs(args []string, commands []*cli.Command, globals []cli.Flag, keepDash bool) []string {
	globalTakes := FlagValues(globals)
	sub, dashBefore := firstArg(args, globalTakes)
	if sub < 0 || dashBefore {
		return args
	}
	var cmd *cli.Command
	for _, c := range commands {
		if c.HasName(args[sub]) {
			cmd = c
		}
	}
	if cmd == nil {
		return args // UnknownCommand says so
	}
	cmdTakes := FlagValues(cmd.Flags)
	var hoisted, flags, positional, command []string
	dashed := false
	for i := sub + 1; i < len(args); i++ {
		a := args[i]
		name, _, hasValue := strings.Cut(a, "=")
		switch {
		case a == "--":
			dashed, command = true, args[i+1:]
			i = len(args)
		case !strings.HasPrefix(a, "-") || a == "-":
			positional = append(positional, a)
		default:
			_, isCmd := cmdTakes[name]
			takes, isGlobal := globalTakes[name]
			dest := &flags
			if isGlobal && !isCmd {
				dest = &hoisted
			} else {
				takes = cmdTakes[name]
			}
			*dest = append(*dest, a)
			if takes && !hasValue && i+1 < len(args) {
				*dest = append(*dest, args[i+1])
				i++
			}
		}
	}
	out := append([]string{}, args[:sub]...)
	out = append(append(out, hoisted...), args[sub])
	out = append(out, flags...)
	if keepDash && dashed {
		return append(append(append(append(out, "--"), positional...), "--"), command...)
	}
	positional = append(positional, command...)
	if len(positional) > 0 || dashed {
		out = append(append(out, "--"), positional...)
	}
	return out
}

// commandArgs splits a command's arguments, as arrangeArgs left them, into
// those before a "--" the user wrote (files) and the command after it.
func commandArgs(c *cli.Context) (files, command []string, dashed bool) {
	args := c.Args().Slice()
	if i := slices.Index(args, "--"); i >= 0 {
		return args[:i], args[i+1:], true
	}
	return args, nil, false
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
			takesValue[dashed(n)] = value
		}
	}
	return takesValue
}

// FlagsFirst moves a subcommand's arguments after its flags, as kubectl takes
// them (kubectl capsrec record xwing -o json): urfave/cli stops reading flags
// at the first argument.
func FlagsFirst(args []string, commands []*cli.Command) []string {
	return arrangeArgs(args, commands, nil, false)
}

// Run runs capsrec with args (os.Args).
func Run(args []string) error {
	commands := []*cli.Command{recordCommand, profileCommand, capsCommand, doctorCommand, versionCommand}
	app := &cli.App{
		Name:                 "capsrec",
		Usage:                "record Linux capability checks of processes, containers and pods, and profile them",
		Version:              Version,
		Flags:                globalFlags(),
		Commands:             commands,
		HideHelpCommand:      true,
		EnableBashCompletion: true,
		// Errors are printed once, by main, on one line.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   UsageError,
	}
	UsageErrorsOnOneLine(commands)
	FitHelp(commands, app.Flags)
	if err := UnknownCommand(args, commands, app.Flags); err != nil {
		return err
	}
	return app.Run(arrangeArgs(args, commands, app.Flags, true))
}

// globalFlags are capsrec's flags before or after any command.
func globalFlags() []cli.Flag {
	return []cli.Flag{
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
	}
}

// UsageError is a flag or argument error: one line, never the whole usage.
func UsageError(_ *cli.Context, err error, _ bool) error {
	return fmt.Errorf("%w (see --help)", err)
}

// UsageErrorsOnOneLine gives every command UsageError: urfave/cli prints a
// command's usage for a bad flag unless the command says otherwise. A flag
// that is not defined gets the closest one that is (--caps: did you mean --cap?).
func UsageErrorsOnOneLine(commands []*cli.Command) {
	for _, c := range commands {
		flags := c.Flags
		c.OnUsageError = func(ctx *cli.Context, err error, sub bool) error {
			const undefined = "flag provided but not defined: -"
			if name, ok := strings.CutPrefix(err.Error(), undefined); ok {
				var names []string
				for _, f := range flags {
					names = append(names, f.Names()...)
				}
				if near := closest(strings.TrimLeft(name, "-"), names); near != "" {
					return fmt.Errorf("%w; did you mean %s?", err, dashed(near))
				}
			}
			return UsageError(ctx, err, sub)
		}
		UsageErrorsOnOneLine(c.Subcommands)
	}
}

// UnknownCommand says what a first argument that names no command may have
// meant (capsrec recrod), instead of urfave/cli's "No help topic".
func UnknownCommand(args []string, commands []*cli.Command, globals []cli.Flag) error {
	i, _ := firstArg(args, FlagValues(globals))
	if i < 0 || args[i] == "help" {
		return nil
	}
	a := args[i]
	var names []string
	for _, c := range commands {
		if c.HasName(a) {
			return nil
		}
		names = append(names, c.Name)
	}
	msg := fmt.Sprintf("%q is not a command (commands: %s)", a, strings.Join(names, ", "))
	if near := closest(a, names); near != "" {
		msg = fmt.Sprintf("%q is not a command: did you mean %s?", a, near)
	}
	return errors.New(msg)
}

// firstArg is the index of the first argument after args[0] that is neither
// a flag nor the value of a flag of takes, -1 when there is none, and whether
// a "--" came before it.
func firstArg(args []string, takes map[string]bool) (i int, dashBefore bool) {
	for i = 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			return i, dashBefore
		}
		dashBefore = dashBefore || a == "--"
		if name, _, hasValue := strings.Cut(a, "="); takes[name] && !hasValue {
			i++ // its value
		}
	}
	return -1, dashBefore
}

// closest is the name within two edits of word, or one that word begins
// (--caps for --cap); empty when none is that close.
func closest(word string, names []string) string {
	if len(word) > 64 {
		return "" // no flag or command is that long: nothing to compare
	}
	best, bestD := "", 3
	for _, n := range names {
		d := editDistance(word, n)
		if len(n) > 1 && strings.HasPrefix(word, n) {
			d = min(d, 1)
		}
		if d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is Levenshtein's, with a swap of neighbours as one edit.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
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
