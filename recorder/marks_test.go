package recorder_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/capsrec/capsrec/bpf"
	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/procfs"
	"github.com/capsrec/capsrec/internal/testutil"
	"github.com/capsrec/capsrec/recorder"
)

// The test binary is also the marked child: it waits for its stdin to close,
// then chowns the file it was given, with no exec in between.
func TestMain(m *testing.M) {
	if file := os.Getenv("CAPSREC_MARK_CHILD"); file != "" {
		_, _ = io.Copy(io.Discard, os.Stdin)
		if err := os.Chown(file, 1234, 1234); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestMarksHoldOnlyForTheirProcess loads the real programs and marks two live
// processes as runtimes the way the start-up scan does: one with its own
// start time, one with another's (a mark left by a process that exited, its
// pid now reused). Each then makes a real check: the first is runtime setup,
// the second a need. No mark outlives the process it was taken for.
func TestMarksHoldOnlyForTheirProcess(t *testing.T) {
	testutil.RequireRoot(t)
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		start uint64
	}
	start := func() child {
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), "CAPSREC_MARK_CHILD="+file)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		st, ok := procfs.ReadStat("/proc/" + strconv.Itoa(cmd.Process.Pid))
		if !ok {
			t.Fatal("no /proc stat for the child")
		}
		return child{cmd, in, st.StartTicks}
	}
	marked, stale := start(), start()
	cfg := bpf.Config{
		SelfTgid:       uint32(os.Getpid()),
		KernelFilter:   core.KernelFilter{CapMask: 1 << unix.CAP_CHOWN},
		TrackProcesses: true,
		BeforeChecks: func(s *bpf.Session) error {
			if err := s.MarkRuntime(uint32(marked.cmd.Process.Pid), marked.start, 1); err != nil {
				return err
			}
			return s.MarkRuntime(uint32(stale.cmd.Process.Pid), stale.start+1, 1)
		},
	}
	sess, err := bpf.Open(cfg, core.MethodAuto)
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer sess.Close()
	rec, err := recorder.New(sess, recorder.Options{Runtimes: []string{"/usr/sbin/runc"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []child{marked, stale} {
		c.stdin.Close()
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("the child's chown: %v", err)
		}
	}
	classes := map[int]core.Class{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = rec.Run(ctx, func(c *core.Check) error {
		if !c.Exec && c.Cap == unix.CAP_CHOWN {
			classes[int(c.Process.Tgid)] = c.Class
		}
		if len(classes) == 2 {
			return recorder.ErrStop
		}
		return nil
	}, func() error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := classes[marked.cmd.Process.Pid]; !ok || got != core.ClassRuntime {
		t.Errorf("the process marked with its own start: class %v (seen %v), want runtime", got, ok)
	}
	if got, ok := classes[stale.cmd.Process.Pid]; !ok || got != core.ClassNeed {
		t.Errorf("the process under another's mark: class %v (seen %v), want need", got, ok)
	}
}
