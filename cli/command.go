package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"

	"github.com/capsrec/capsrec/internal/cmdgate"
	"github.com/capsrec/capsrec/internal/textsafe"
	"github.com/capsrec/capsrec/session"
)

// commandRun is record -- COMMAND's command: started held at its gate,
// followed in the kernel with everything it forks, then released.
type commandRun struct {
	argv    []string
	gate    *cmdgate.Command
	started time.Time
	done    chan struct{}
	waitErr error
}

// commandGrace is how long a command may take to end after Ctrl-C (it got
// the terminal's signal too) before it is sent SIGTERM, and then SIGKILL.
const commandGrace = 2 * time.Second

// commandStdout is where the command writes: capsrec's stdout on a terminal;
// else its stderr, so that what capsrec writes to a file or pipe (-o json >
// rec.json) stays capsrec's alone.
func commandStdout() *os.File {
	if isatty.IsTerminal(os.Stdout.Fd()) {
		return os.Stdout
	}
	return os.Stderr
}

// startCommand starts path with argv under rec: its pid joins the kernel's
// follow set before it runs its first instruction.
func startCommand(rec *session.Session, path string, argv []string) (*commandRun, error) {
	gate, err := cmdgate.Start(path, argv, commandStdout())
	if err != nil {
		return nil, err
	}
	if err := rec.Follow(gate.Pid()); err != nil {
		gate.Abort()
		return nil, err
	}
	if err := gate.Release(); err != nil {
		gate.Abort()
		return nil, err
	}
	r := &commandRun{argv: argv, gate: gate, started: time.Now(), done: make(chan struct{})}
	go func() {
		r.waitErr = gate.Cmd.Wait()
		close(r.done)
	}()
	return r, nil
}

// session is the recording's context with a command: it ends when the
// command does. Ctrl-C or SIGTERM (stop) gives the command commandGrace to
// end, then SIGTERM, then SIGKILL; --duration's end sends SIGTERM at once.
func (r *commandRun) session(stop context.Context) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer cancel()
		select {
		case <-r.done:
			return
		case <-stop.Done():
		}
		grace := commandGrace
		if errors.Is(stop.Err(), context.DeadlineExceeded) {
			grace = 0
		}
		for _, sig := range []syscall.Signal{0, syscall.SIGTERM, syscall.SIGKILL} {
			if sig != 0 {
				_ = r.gate.Cmd.Process.Signal(sig)
			}
			select {
			case <-r.done:
				return
			case <-time.After(grace):
			}
			grace = commandGrace
		}
	}()
	return ctx
}

// finish waits for the command (killed if it still runs: capsrec's end is
// its), says how it ended, and returns capsrec's exit: the command's.
func (r *commandRun) finish(c *cli.Context) error {
	select {
	case <-r.done:
	default:
		_ = r.gate.Cmd.Process.Kill()
		<-r.done
	}
	state := r.gate.Cmd.ProcessState
	name := textsafe.Visible(r.argv[0])
	if state == nil {
		return fmt.Errorf("%s: %w", name, r.waitErr)
	}
	code := cmdgate.ExitCode(state)
	fmt.Fprintf(c.App.ErrWriter, "capsrec: %s %s after %s\n", name, cmdgate.ExitText(state), time.Since(r.started).Round(time.Millisecond))
	if code != 0 {
		return cli.Exit("", code)
	}
	return nil
}

// commandTitle names a command's profile: its command line, as typed.
func commandTitle(argv []string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = a
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`;&|<>()*?[]#~") {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(quoted, " ")
}
