package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capsrec/capsrec/internal/testutil"
)

func TestRecordEndsCleanly(t *testing.T) {
	method := firstMethod(t)
	dmesgRestrict(t)

	t.Run("SIGTERM", func(t *testing.T) {
		s := testutil.Record(t, "--attach", method)
		s.Stop(syscall.SIGTERM)
		summary(t, s.Stderr())
		testutil.AssertNothingLeft(t)
	})
	t.Run("duration", func(t *testing.T) {
		s := testutil.Record(t, "--attach", method, "--duration", "300ms")
		s.Wait()
		summary(t, s.Stderr())
		testutil.AssertNothingLeft(t)
	})
	t.Run("count", func(t *testing.T) {
		h := startHelper(t, "", 0, "syslog:10")
		s := testutil.Record(t, "-o", "json", "--attach", method, "--pid", strconv.Itoa(h.pid()), "--count", "2")
		h.run(t)
		s.Wait()
		if n := len(s.Lines()); n != 2 {
			t.Errorf("--count 2 printed %d lines", n)
		}
		testutil.AssertNothingLeft(t)
	})
	t.Run("closed stdout", func(t *testing.T) {
		// capsrec record | head -1: read one line, close the pipe, and capsrec must
		// notice even when no further check comes, and exit 0.
		ready := t.TempDir() + "/ready"
		cmd := exec.Command(testutil.Binary(t), "record", "-o", "json", "--attach", method, "--ready-file", ready)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for _, err := os.Stat(ready); err != nil; _, err = os.Stat(ready) {
			time.Sleep(10 * time.Millisecond)
		}
		startHelper(t, "", 0, "syslog:1").run(t)
		if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
			t.Fatalf("reading the first line: %v", err)
		}
		out.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		waitClean(t, cmd, done, &stderr, "its reader left")
		summary(t, stderr.String())
		testutil.AssertNothingLeft(t)
	})
}

func TestRecordCountsLostEvents(t *testing.T) {
	method := firstMethod(t)
	dmesgRestrict(t)
	gate := make(chan struct{})
	// A 4 KiB ring holds about a dozen checks; with stdout unread capsrec's
	// writes block, and the rest of 20000 checks cannot fit.
	s := testutil.RecordGated(t, gate, "-o", "json", "--attach", method, "--ring-buffer", "4", "--cap", "syslog")
	startHelper(t, "", 0, "syslog:20000").run(t)
	close(gate)
	time.Sleep(100 * time.Millisecond * testutil.Slow())
	s.Stop(syscall.SIGINT)
	n := summary(t, s.Stderr())
	seen, printed, filtered, lost := n[0], n[1], n[2], n[3]
	if lost == 0 {
		t.Errorf("no lost checks reported: %s", s.Stderr())
	}
	if seen != printed+filtered+lost {
		t.Errorf("seen %d != printed %d + filtered %d + lost %d", seen, printed, filtered, lost)
	}
	if printed != len(s.Lines()) {
		t.Errorf("summary says %d printed, stdout has %d lines", printed, len(s.Lines()))
	}
	testutil.AssertNothingLeft(t)
}

// A reader that takes nothing (| less left alone, | sleep) must not hold the
// session: SIGINT and --duration end it within a second, the hooks are gone,
// and what was never written is counted.
func TestStalledReader(t *testing.T) {
	method := firstMethod(t)
	dmesgRestrict(t)
	for _, tc := range []struct {
		name string
		args []string
		stop func(*exec.Cmd)
	}{
		{"SIGINT", nil, func(cmd *exec.Cmd) { _ = cmd.Process.Signal(syscall.SIGINT) }},
		{"duration", []string{"--duration", "1s"}, func(*exec.Cmd) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close() // never read until the end: the reader stalls
			ready := t.TempDir() + "/ready"
			cmd := exec.Command(testutil.Binary(t), append([]string{"record", "-o", "json", "--attach", method, "--cap", "syslog",
				"--pid", strconv.Itoa(os.Getpid()), "--ready-file", ready}, tc.args...)...)
			var stderr strings.Builder
			cmd.Stdout, cmd.Stderr = w, &stderr
			started := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			for _, err := os.Stat(ready); err != nil; _, err = os.Stat(ready) {
				time.Sleep(10 * time.Millisecond)
			}
			// Far more than the pipe and capsrec's queue hold: about 30 MB of JSON.
			for range 10_000 {
				syscall.RawSyscall(syscall.SYS_SYSLOG, 10, 0, 0)
			}
			time.Sleep(300 * time.Millisecond)
			stopped := time.Now()
			if tc.name == "duration" {
				stopped = started.Add(time.Second) // --duration counts from the start
			}
			tc.stop(cmd)
			waitClean(t, cmd, done, &stderr, "the stop, held by its stalled reader")
			if took := time.Since(stopped); took > 2*time.Second*testutil.Slow() {
				t.Errorf("capsrec took %s to end after the stop", took)
			}
			if !strings.Contains(stderr.String(), "not written (the reader of stdout stalled)") {
				t.Errorf("the summary does not count what was never written:\n%s", stderr.String())
			}
			testutil.AssertNothingLeft(t)
		})
	}
}

// waitClean waits up to 10 s for capsrec (whose Wait result done carries) to
// exit 0 after what happened; it kills it and fails the test otherwise.
func waitClean(t *testing.T, cmd *exec.Cmd, done <-chan error, stderr *strings.Builder, after string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("capsrec exited with %v after %s; stderr:\n%s", err, after, stderr.String())
		}
	case <-time.After(10 * time.Second * testutil.Slow()):
		_ = cmd.Process.Kill()
		t.Fatalf("capsrec still runs 10 s after %s", after)
	}
}
