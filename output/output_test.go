package output

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
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

var hostNS = [core.NSCount]uint32{4026531838, 4026531839, 4026531832, 4026531836, 4026531836, 4026531833, 4026531834, 4026531834, 4026531835, 4026531837}

// sampleChecks are the seed's dmesg denial on the host and in a pod, and a granted
// noaudit check under override_creds.
func sampleChecks() []*core.Check {
	parent := &core.Process{Tgid: 73850, ExecID: "cGFyZW50", Binary: "/bin/bash", Cwd: "/", Flags: "execve rootcwd clone",
		StartTime: time.Date(2023, 7, 6, 10, 13, 33, 178160018, time.UTC), AUID: 4294967295, UID: 0}
	dmesg := &core.Process{Tgid: 73860, Ptgid: 73850, ExecID: "ZG1lc2c=", ParentExecID: "cGFyZW50", Binary: "/bin/dmesg", Arguments: `-r "quoted"`,
		Cwd: "/", Flags: "execve rootcwd clone", StartTime: time.Date(2023, 7, 6, 10, 13, 33, 834390020, time.UTC), AUID: 4294967295}
	denied := &core.Check{
		Time: time.Date(2023, 7, 6, 10, 13, 33, 834882128, time.UTC), Process: dmesg, Parent: parent,
		Tid: 73860, NsPid: 171, UID: 65534, GID: 65534, EUID: 65534, AUID: 4294967295, Comm: "dmesg",
		Cap: 34, Ret: -1, Method: core.MethodTracepoint, Syscall: 103, CallSite: "do_syslog",
		TargetNS: core.UserNS{Inum: 4026531837}, NS: hostNS, CgroupID: 1,
	}
	inPod := *denied
	inPod.Container = &core.Container{ID: "cfb961400ff25811d22d139a10f6a62efef53c2ecc11af47bc911a7f9a2ac1f7", Runtime: "containerd",
		Name: "spaceship", ImageName: "docker.io/tgraf/netperf:latest", ImageID: "docker.io/tgraf/netperf@sha256:8e86",
		StartTime: time.Date(2023, 7, 6, 8, 7, 30, 0, time.UTC),
		Pod:       &core.Pod{Namespace: "default", Name: "xwing", Labels: map[string]string{"org": "alliance", "class": "xwing"}}}
	inPod.NS[core.NSPid] = 4026534732
	granted := *denied
	granted.Ret, granted.Cap, granted.Syscall = 0, 0, 92
	granted.Method, granted.AuditKnown, granted.Audit, granted.OverrideCreds = core.MethodFexit, true, false, true
	granted.Class, granted.CallSite = core.ClassProbe, "ovl_copy_up_one"
	runtime := *denied
	runtime.Ret, runtime.Cap, runtime.Syscall, runtime.Class, runtime.CallSite = 0, 8, 157, core.ClassRuntime, "cap_prctl_drop"
	runtime.Process = &core.Process{Tgid: 73870, Ptgid: 73850, ExecID: "cnVuYw==", Binary: "/usr/sbin/runc", Runtime: "runc", Arguments: "init",
		Cwd: "/", Flags: "execve rootcwd", StartTime: time.Date(2023, 7, 6, 10, 13, 33, 834390020, time.UTC), AUID: 4294967295}
	granted.CapEffective, granted.CapPermitted = 1<<0|1<<21, 1<<0|1<<21
	return []*core.Check{denied, &inPod, &granted, &runtime}
}

func TestCompactGolden(t *testing.T) {
	for _, colored := range []bool{false, true} {
		var buf bytes.Buffer
		w := NewCompact(&buf, colored, 0)
		w.layout.timeLayout = "15:04:05.000000Z07:00" // the machine's zone must not matter
		for _, c := range sampleChecks() {
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

func TestJSONGolden(t *testing.T) {
	var buf bytes.Buffer
	w := NewJSON(&buf, "kind-control-plane", hostNS)
	for _, c := range sampleChecks() {
		if err := w.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		if !json.Valid(line) {
			t.Fatalf("invalid JSON: %s", line)
		}
	}
	golden(t, "events.golden.json", buf.Bytes())
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uo\te`, "tab\tnl\nctl\x01", "<&>", "é ü 日本", "bad\xffutf8", "\u2028"} {
		got := appendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q -> %s: %v", s, got, err)
		}
		want := s
		if s == "bad\xffutf8" {
			want = "bad\ufffdutf8"
		}
		if back != want {
			t.Errorf("%q round-trips to %q", s, back)
		}
	}
}

func TestTimestampsLikeProtojson(t *testing.T) {
	for ns, want := range map[int]string{0: `"2023-07-06T08:07:30Z"`, 5e8: `"2023-07-06T08:07:30.500Z"`, 123456000: `"2023-07-06T08:07:30.123456Z"`, 834882128: `"2023-07-06T08:07:30.834882128Z"`} {
		if got := string(appendTimestamp(nil, time.Date(2023, 7, 6, 8, 7, 30, ns, time.UTC))); got != want {
			t.Errorf("%d ns: %s, want %s", ns, got, want)
		}
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

// wholeLines fails on a write that does not end a line.
type wholeLines struct {
	t      *testing.T
	writes int
}

func (w *wholeLines) Write(p []byte) (int, error) {
	w.writes++
	if len(p) == 0 || p[len(p)-1] != '\n' {
		w.t.Fatalf("write %d of %d bytes does not end a line", w.writes, len(p))
	}
	return len(p), nil
}

// The writers below JSON and compact get whole lines only, so that output cut
// short (a stalled reader at the stop) never ends in half a line.
func TestWritersPassWholeLines(t *testing.T) {
	for _, w := range []Writer{NewJSON(&wholeLines{t: t}, "node", hostNS), NewCompact(&wholeLines{t: t}, false, 0)} {
		for i := range 5000 {
			if err := w.Write(sampleChecks()[i%4]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
}

// Through Async the writers hand over their chunks themselves: every line
// arrives, whole and in order, and Close counts them.
func TestAsyncTakesChunksWhole(t *testing.T) {
	for _, name := range []string{"json", "compact"} {
		t.Run(name, func(t *testing.T) {
			var got bytes.Buffer
			a := NewAsync(&got, 256<<10, make(chan struct{}))
			var w, want Writer
			var wantBuf bytes.Buffer
			if name == "json" {
				w, want = NewJSON(a, "node", hostNS), NewJSON(&wantBuf, "node", hostNS)
			} else {
				w, want = NewCompact(a, false, 0), NewCompact(&wantBuf, false, 0)
			}
			const n = 20000 // many chunks, and more than the queue holds at once
			for i := range n {
				if err := w.Write(sampleChecks()[i%4]); err != nil {
					t.Fatal(err)
				}
				if err := want.Write(sampleChecks()[i%4]); err != nil {
					t.Fatal(err)
				}
			}
			if err := errors.Join(w.Flush(), want.Flush()); err != nil {
				t.Fatal(err)
			}
			written, err := a.Close(time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if written != n {
				t.Errorf("Close counted %d lines, want %d", written, n)
			}
			if !bytes.Equal(got.Bytes(), wantBuf.Bytes()) {
				t.Errorf("through Async: %d bytes, not the %d written directly", got.Len(), wantBuf.Len())
			}
		})
	}
}

// The JSON writer renders once what consecutive checks share; a check that
// differs from the last in any one field must come out as it would alone.
func TestJSONReusesOnlyWhatIsTheSame(t *testing.T) {
	var variants []*core.Check
	for _, base := range sampleChecks() {
		variants = append(variants, base)
		for _, change := range []func(c *core.Check){
			func(c *core.Check) { c.Cap = 21 },
			func(c *core.Check) { c.Ret = -13 },
			func(c *core.Check) { c.TargetNS.Inum++ },
			func(c *core.Check) { c.TargetNS.Level = 2 },
			func(c *core.Check) { c.Syscall = 165 },
			func(c *core.Check) { c.OverrideCreds = !c.OverrideCreds },
			func(c *core.Check) { c.Class = core.ClassProbe },
			func(c *core.Check) { c.CallSite = "other\"site" },
			func(c *core.Check) { c.CallSite = "" },
			func(c *core.Check) { c.SiteProbe = !c.SiteProbe },
			func(c *core.Check) { c.AuditKnown, c.Audit, c.InSetID = true, true, true },
			func(c *core.Check) { c.Comm = "other\x1b" },
			func(c *core.Check) { c.EUID++ },
			func(c *core.Check) { c.GID++ },
			func(c *core.Check) { c.CgroupID++ },
			func(c *core.Check) { c.CgroupName = "x.scope" },
			func(c *core.Check) { c.CapPermitted, c.CapEffective = 1<<21, 0 },
			func(c *core.Check) { c.CapInheritable = 1 },
			func(c *core.Check) { c.NS[2]++ },
			func(c *core.Check) { c.NsPid++ },
		} {
			v := *base
			change(&v)
			variants = append(variants, &v)
		}
	}
	var shared bytes.Buffer
	w := NewJSON(&shared, "node", hostNS)
	var want []byte
	if len(variants)%5 == 0 {
		t.Fatal("the stride must be prime to the number of variants")
	}
	for i := range 2 * len(variants) {
		c := variants[(i/2*5)%len(variants)] // each twice in a row, then another (5 is prime to 84)
		if err := w.Write(c); err != nil {
			t.Fatal(err)
		}
		want = append(NewJSON(io.Discard, "node", hostNS).Append(want, c), '\n')
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got := bytes.Split(shared.Bytes(), []byte{'\n'})
	for i, line := range bytes.Split(want, []byte{'\n'}) {
		if i >= len(got) || !bytes.Equal(got[i], line) {
			t.Fatalf("line %d:\n got %s\nwant %s", i, got[min(i, len(got)-1)], line)
		}
	}
}

// On a terminal every line fits its width, the header is never broken, and
// the verdict column lines up with the header's, with and without color.
func TestCompactFitsTheTerminal(t *testing.T) {
	checks := sampleChecks()
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
