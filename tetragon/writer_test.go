package tetragon

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/testutil"
	"github.com/capsrec/capsrec/output"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testutil.Golden(t, filepath.Join("testdata", name), got, *update)
}

var hostNS = testutil.HostNS

func sampleChecks() []*core.Check { return testutil.SampleChecks() }

func TestJSONGolden(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, "kind-control-plane", hostNS)
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
	for _, w := range []output.Writer{NewWriter(&wholeLines{t: t}, "node", hostNS), output.NewCompact(&wholeLines{t: t}, false, 0)} {
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
			a := output.NewAsync(&got, 256<<10, make(chan struct{}))
			var w, want output.Writer
			var wantBuf bytes.Buffer
			if name == "json" {
				w, want = NewWriter(a, "node", hostNS), NewWriter(&wantBuf, "node", hostNS)
			} else {
				w, want = output.NewCompact(a, false, 0), output.NewCompact(&wantBuf, false, 0)
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
	w := NewWriter(&shared, "node", hostNS)
	var want []byte
	if len(variants)%5 == 0 {
		t.Fatal("the stride must be prime to the number of variants")
	}
	for i := range 2 * len(variants) {
		c := variants[(i/2*5)%len(variants)] // each twice in a row, then another (5 is prime to 84)
		if err := w.Write(c); err != nil {
			t.Fatal(err)
		}
		want = append(NewWriter(io.Discard, "node", hostNS).Append(want, c), '\n')
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
