// Package cmdgate starts a command that waits, before its first instruction,
// until the recorder has put it in the kernel's follow set: record --
// COMMAND then sees every check of it and of what it starts, none of anyone
// else's. The command runs as a copy of capsrec (the gate) that blocks on a
// pipe, then execs the command in place: same pid, nothing in between.
package cmdgate

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// gateEnv marks the gate.
const gateEnv = "CAPSREC_COMMAND_GATE"

// The gate's pipes (ExtraFiles start at 3): the release comes on one; on the
// other the gate says it is ready, its Go runtime started (package inits
// probe the bpf syscall: those checks are the gate's, not the command's).
const (
	releaseFD = 3
	readyFD   = 4
)

// IsGate tells whether this process is a gate: main calls Exec then, first thing.
func IsGate() bool { return os.Getenv(gateEnv) != "" }

// A gate execs from its main thread, as a single-threaded program would:
// locked in an init, main runs there.
func init() {
	if IsGate() {
		runtime.LockOSThread()
	}
}

// Exec is the gate: it waits for the release, then execs os.Args[1] with
// os.Args[2:] as its argv, without the gate's variable. It never returns: on
// an error it exits 127, as a shell does for a command it cannot run.
func Exec() {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, gateEnv+"=") })
	var b [1]byte
	_, _ = syscall.Write(readyFD, b[:])
	syscall.Close(readyFD)
	n, _ := syscall.Read(releaseFD, b[:])
	syscall.Close(releaseFD)
	if n != 1 || len(os.Args) < 3 {
		os.Exit(127) // the recorder went away before the release
	}
	err := syscall.Exec(os.Args[1], os.Args[2:], env)
	fmt.Fprintf(os.Stderr, "capsrec: %s: %v\n", os.Args[1], err)
	os.Exit(127)
}

// Command is a command waiting at the gate.
type Command struct {
	Cmd     *exec.Cmd
	release *os.File
}

// Start starts the program at path with argv (as exec.LookPath(argv[0])
// found it) held at the gate, with stdin and stderr capsrec's and stdout the
// given one, and returns once the gate waits. It is not released until
// Release: follow its pid first.
func Start(path string, argv []string, stdout *os.File) (*Command, error) {
	if len(argv) == 0 {
		return nil, errors.New("no command")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding capsrec's own binary for the command's gate: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("the command's gate: %w", err)
	}
	defer r.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("the command's gate: %w", err)
	}
	defer readyR.Close()
	defer readyW.Close()
	cmd := exec.Command(self, append([]string{path}, argv...)...)
	cmd.Args[0] = argv[0]
	cmd.Env = append(os.Environ(), gateEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{r, readyW}
	// Killed with capsrec, should capsrec die without its cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	g := &Command{Cmd: cmd, release: w}
	readyW.Close() // the gate's copy is the only writer: a gate that dies gives EOF
	if n, _ := readyR.Read(make([]byte, 1)); n != 1 {
		g.Abort()
		return nil, fmt.Errorf("starting %s: the gate ended before it was ready", path)
	}
	return g, nil
}

// Pid is the command's process id, the gate's and then the command's.
func (c *Command) Pid() uint32 { return uint32(c.Cmd.Process.Pid) }

// Release lets the command run.
func (c *Command) Release() error {
	defer c.release.Close()
	if _, err := c.release.Write([]byte{1}); err != nil {
		return fmt.Errorf("releasing the command: %w", err)
	}
	return nil
}

// Abort ends a command never released, or one still running at capsrec's
// end, and reaps it.
func (c *Command) Abort() {
	c.release.Close() // a gate still waiting reads EOF and exits
	_ = c.Cmd.Process.Kill()
	_ = c.Cmd.Wait()
}

// ExitText says how the command ended, for people.
func ExitText(state *os.ProcessState) string {
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		if name := unix.SignalName(ws.Signal()); name != "" {
			return "was killed by " + name
		}
		return fmt.Sprintf("was killed by signal %d", int(ws.Signal()))
	}
	return fmt.Sprintf("exited with status %d", state.ExitCode())
}

// ExitCode is how capsrec exits after the command: its status, or 128 + the
// signal that killed it, as a shell reports.
func ExitCode(state *os.ProcessState) int {
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return state.ExitCode()
}
