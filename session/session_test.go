package session_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/filter"
	"github.com/capsrec/capsrec/internal/testutil"
	"github.com/capsrec/capsrec/session"
)

// The test binary is also the workload: it waits for its stdin to close,
// then chowns the file it was given as many times as it was told, with no
// exec in between.
func TestMain(m *testing.M) {
	if file := os.Getenv("CAPSREC_SESSION_CHILD"); file != "" {
		_, _ = io.Copy(io.Discard, os.Stdin)
		n, _ := strconv.Atoi(os.Getenv("CAPSREC_SESSION_CHOWNS"))
		for range n {
			if err := os.Chown(file, 1234, 1234); err != nil {
				os.Exit(1)
			}
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestStages opens real sessions on the real kernel, has a real process
// make real CAP_CHOWN checks, and reads what each stage got.
func TestStages(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tc := range []struct {
		name    string
		chowns  int
		checks  filter.Options
		pods    []string
		profile int // checks the profile stage got
		written int
		// filtered by the pod filter, the check filter and --unique
		filtered uint64
	}{
		// A chown to another uid and gid asks twice (chown_ok, chgrp_ok).
		{"checks reach the profile and the writer", 1, filter.Options{}, nil, 2, 2, 0},
		{"--unique: the profile counts every check, the writer the first", 3, filter.Options{Unique: true}, nil, 6, 1, 5},
		{"the check filter drops before the profile", 2, filter.Options{Binaries: []string{"/nothing/*"}}, nil, 0, 0, 4},
		{"the pod filter drops a host process's checks", 2, filter.Options{}, []string{"web"}, 0, 0, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "owned")
			if err := os.WriteFile(file, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			child := exec.Command(os.Args[0], "-test.run=^$")
			child.Env = append(os.Environ(), "CAPSREC_SESSION_CHILD="+file, "CAPSREC_SESSION_CHOWNS="+strconv.Itoa(tc.chowns))
			stdin, err := child.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = child.Process.Kill(); _ = child.Wait() }()

			opts := session.Options{Method: core.MethodAuto, RingBufferSize: 1 << 20, Duration: 30 * time.Second,
				HideClasses: 1<<core.ClassProbe | 1<<core.ClassRuntime, ReadyFile: filepath.Join(dir, "ready")}
			checks, err := filter.New(tc.checks, &opts.Filter)
			if err != nil {
				t.Fatal(err)
			}
			opts.Filter.Pids = []uint32{uint32(child.Process.Pid)}
			opts.Filter.CapMask = 1 << unix.CAP_CHOWN
			var stderr bytes.Buffer
			opts.Stderr = &stderr
			s, err := session.Open(opts)
			if err != nil {
				t.Fatalf("%+v", err)
			}
			defer s.Close()
			if _, err := os.Stat(opts.ReadyFile); err != nil {
				t.Errorf("no ready file once open: %v", err)
			}

			st := session.Stages{Checks: checks}
			if tc.pods != nil {
				if st.Pods, err = filter.NewPodFilter(tc.pods, nil, nil, "", false); err != nil {
					t.Fatal(err)
				}
			}
			var profiled, written []core.Check
			st.Profile = func(ch *core.Check) { profiled = append(profiled, *ch) }
			st.Write = func(ch *core.Check) error { written = append(written, *ch); return nil }
			stdin.Close()
			exited := make(chan error, 1)
			go func() { exited <- child.Wait() }()
			var done time.Time
			st.Idle = func() error {
				select {
				case err := <-exited:
					if err != nil {
						return err
					}
					done = time.Now()
				default:
				}
				// Its checks are in the ring before its exit: a last read takes them.
				if !done.IsZero() && time.Since(done) > 100*time.Millisecond {
					return session.ErrStop
				}
				return nil
			}
			filtered, err := s.Run(st)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(profiled) != tc.profile || len(written) != tc.written || filtered != tc.filtered {
				t.Errorf("profiled %d, written %d, filtered %d; want %d, %d, %d (stderr %q)",
					len(profiled), len(written), filtered, tc.profile, tc.written, tc.filtered, stderr.String())
			}
			for _, ch := range append(profiled, written...) {
				if ch.Cap != unix.CAP_CHOWN || ch.Process.Tgid != uint32(child.Process.Pid) || !ch.Granted() || ch.Class != core.ClassNeed {
					t.Errorf("check %+v: want the child's granted CAP_CHOWN need", ch)
				}
			}
			k, err := s.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if k.Lost != 0 || k.Seen < uint64(2*tc.chowns) {
				t.Errorf("stats %+v: want at least %d seen, none lost", k, 2*tc.chowns)
			}
			// The session owns detach: Run's end detached, and again is harmless.
			if err := errors.Join(s.Detach(), s.Detach()); err != nil {
				t.Errorf("detaching again: %v", err)
			}
		})
	}
}
