package output

import (
	"bytes"
	"errors"
	"flag"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/termwidth"
	"github.com/capsrec/capsrec/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testutil.Golden(t, filepath.Join("testdata", name), got, *update)
}

func TestCompactGolden(t *testing.T) {
	for _, colored := range []bool{false, true} {
		var buf bytes.Buffer
		w := NewCompact(&buf, colored, 0)
		w.layout.timeLayout = "15:04:05.000000Z07:00" // the machine's zone must not matter
		for _, c := range testutil.SampleChecks() {
			c.Time = c.Time.In(time.UTC)
			if err := w.Write(c); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		name := "compact.golden"
		if colored {
			name = "compact-color.golden"
		}
		golden(t, name, buf.Bytes())
	}
}

func TestUseColor(t *testing.T) {
	cases := []struct {
		mode          string
		tty, noColor  bool
		want, wantErr bool
	}{
		{"auto", true, false, true, false},
		{"auto", true, true, false, false},
		{"auto", false, false, false, false},
		{"always", false, true, true, false},
		{"never", true, false, false, false},
		{"rainbow", true, false, false, true},
	}
	for _, c := range cases {
		got, err := UseColor(c.mode, c.tty, c.noColor)
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("UseColor(%q, tty=%v, NO_COLOR=%v) = %v, %v", c.mode, c.tty, c.noColor, got, err)
		}
	}
}

// On a terminal every line fits its width, the header is never broken, and
// the verdict column lines up with the header's, with and without color.
func TestCompactFitsTheTerminal(t *testing.T) {
	checks := testutil.SampleChecks()
	long := *checks[1]
	long.Container = &core.Container{Name: "redis", Pod: &core.Pod{Namespace: "default", Name: "redis-6886f88696-6jnf6"}}
	long.Process = &core.Process{Tgid: 4194303, Binary: "/usr/bin/containerd-shim-runc-v2-" + strings.Repeat("日本", 20)}
	long.Class, long.InSetID, long.Syscall = core.ClassUserNS, true, 227 // clock_settime
	checks = append(checks, &long)
	ansi := regexp.MustCompile("\x1b\\[[0-9;]*m")
	for _, width := range []int{40, 80, 120, 160, 200} {
		for _, colored := range []bool{false, true} {
			var buf bytes.Buffer
			w := NewCompact(&buf, colored, width)
			for _, c := range checks {
				if err := w.Write(c); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			header := w.Header()
			at := strings.Index(header, "VERDICT")
			if termwidth.Width(header) > width && width >= 80 {
				t.Errorf("width %d: header is %d columns: %q", width, termwidth.Width(header), header)
			}
			for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
				plain := ansi.ReplaceAllString(line, "")
				if n := termwidth.Width(plain); n > width {
					t.Errorf("width %d color %v: %d columns: %q", width, colored, n, plain)
				}
				if width >= 80 && termwidth.Width(plain[:indexVerdict(plain)]) != at {
					t.Errorf("width %d: verdict not under its header (%d): %q", width, at, plain)
				}
			}
		}
	}
	// A Deployment's pod, as kubectl names it, fits whole at 120 columns.
	var buf bytes.Buffer
	w := NewCompact(&buf, false, 120)
	w.Write(&long)
	w.Flush()
	if !strings.Contains(buf.String(), "default/redis-6886f88696-6jnf6/redis ") {
		t.Errorf("the pod's name is cut at 120 columns: %q", buf.String())
	}
}

func indexVerdict(line string) int {
	for _, v := range []string{"granted", "denied "} {
		if i := strings.Index(line, v); i >= 0 {
			return i
		}
	}
	return 0
}

// slowReader takes a write every delay; stalled, it takes none.
type slowReader struct {
	delay   time.Duration
	stalled bool
	n       int
}

func (s *slowReader) Write(p []byte) (int, error) {
	if s.stalled {
		select {} // never returns: the test ends with its goroutine parked
	}
	time.Sleep(s.delay)
	s.n += bytes.Count(p, []byte("\n"))
	return len(p), nil
}

// After the stop, a reader that keeps taking lines gets every one, however
// long each takes; one that takes none is given up on within a window.
func TestAsyncWaitsForAReaderThatReads(t *testing.T) {
	stop := make(chan struct{})
	r := &slowReader{delay: 5 * time.Millisecond} // 200 lines: twice the stall window in all
	a := NewAsync(r, 2*chunkSize, stop)
	line := append(bytes.Repeat([]byte("x"), 1023), '\n')
	close(stop) // the session ends while the queue is still to be written
	const lines = 200
	for range lines {
		if _, err := a.Write(line); err != nil {
			t.Fatalf("a reader that reads was taken for a stalled one: %v", err)
		}
	}
	if written, err := a.Close(stallWindow); err != nil || written != lines {
		t.Errorf("the reader took %d of %d lines: %v", written, lines, err)
	}

	stop2 := make(chan struct{})
	b := NewAsync(&slowReader{stalled: true}, chunkSize, stop2)
	close(stop2)
	start := time.Now()
	var err error
	for i := 0; i < 10*chunkSize/1024 && err == nil; i++ {
		_, err = b.Write(line)
	}
	b.Close(stallWindow)
	if !errors.Is(err, ErrStalled) || time.Since(start) > 10*stallWindow {
		t.Errorf("a stalled reader: %v after %s, want ErrStalled within a few windows", err, time.Since(start))
	}
}

func TestFormatTable(t *testing.T) {
	table := FormatTable{{Name: "a"}, {Name: "b", Help: "bee"}, {Name: "c"}}
	if got, want := table.Usage(), "a, b (bee) or c"; got != want {
		t.Errorf("Usage() = %q, want %q", got, want)
	}
	if err := table.Check("b"); err != nil {
		t.Errorf("Check(b) = %v", err)
	}
	if err := table.Check("d"); err == nil || err.Error() != `unknown output format "d" (want a, b or c)` {
		t.Errorf("Check(d) = %v", err)
	}
	if got := (FormatTable{{Name: "only"}}).Usage(); got != "only" {
		t.Errorf("a table of one: %q", got)
	}
}
