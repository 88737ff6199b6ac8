// Command capsrec records the Linux capability checks of processes, containers
// and pods, and turns them into capability profiles.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/urfave/cli/v2"
)

var version = "dev"

func main() {
	if err := run(os.Args); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			fmt.Fprintf(os.Stderr, "%+v\n", ve)
		}
		if msg := oneLine(err); msg != "" {
			fmt.Fprintln(os.Stderr, "capsrec: "+msg)
		}
		code := 1
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		os.Exit(code)
	}
}

// oneLine keeps an error to one line: a verifier log goes above it, in full.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

func run(args []string) error {
	app := &cli.App{
		Name:    "capsrec",
		Usage:   "record Linux capability checks of processes, containers and pods, and profile them",
		Version: version,
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
		Commands:             []*cli.Command{recordCommand, profileCommand, capsCommand, doctorCommand},
		HideHelpCommand:      true,
		EnableBashCompletion: true,
		// Errors are printed once, by main, on one line.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return fmt.Errorf("%w (see --help)", err)
		},
	}
	return app.Run(args)
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
