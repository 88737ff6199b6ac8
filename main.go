// Command capsrec records the Linux capability checks of processes, containers
// and pods, and turns them into capability profiles. Installed as
// kubectl-capsrec, it is the kubectl plugin.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/urfave/cli/v2"

	capsrec "github.com/capsrec/capsrec/cli"
	"github.com/capsrec/capsrec/internal/cmdgate"
	"github.com/capsrec/capsrec/internal/textsafe"
	"github.com/capsrec/capsrec/kubectl"
)

func main() {
	if cmdgate.IsGate() {
		cmdgate.Exec() // record -- COMMAND's command, held until it is followed
	}
	run, prefix := capsrec.Run, "capsrec: "
	if filepath.Base(os.Args[0]) == kubectl.PluginName {
		run, prefix = kubectl.Run, "kubectl capsrec: "
	}
	if err := run(os.Args); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			fmt.Fprintf(os.Stderr, "%+v\n", ve)
		}
		// A verifier log goes above, in full; the error itself on one line.
		if msg := textsafe.OneLine(err.Error()); msg != "" {
			fmt.Fprintln(os.Stderr, prefix+textsafe.Visible(msg))
		}
		code := 1
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		os.Exit(code)
	}
}
