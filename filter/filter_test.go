package filter

import (
	"fmt"
	"strings"
	"testing"

	"github.com/capsrec/capsrec/core"
)

func check(binary string, capValue int32, ret int32) *core.Check {
	return &core.Check{Process: &core.Process{Binary: binary}, Cap: capValue, Ret: ret}
}

func TestBinaryPatterns(t *testing.T) {
	cases := []struct {
		pattern, binary string
		want            bool
	}{
		{"dmesg", "/usr/bin/dmesg", true},
		{"dmesg", "/usr/bin/dmesgx", false},
		{"ip*", "/usr/sbin/ip6tables", true},
		{"/usr/bin/dmesg", "/usr/bin/dmesg", true},
		{"/usr/bin/dmesg", "/bin/dmesg", false},
		{"*/dmesg", "/usr/bin/dmesg", true},
		{"/usr/*", "/usr/local/bin/x", true},
		{"[cd]mesg", "/bin/dmesg", true},
		{"/tmp/*", "/tmp/x\nforged line", true}, // a name may hold a newline
		{"café*", "/opt/café-bar", true},
		{"[!d]mesg", "/bin/dmesg", false},
		{"a.b", "/x/aXb", false},
	}
	for _, c := range cases {
		var cfg core.KernelFilter
		f, err := New(Options{Binaries: []string{c.pattern}}, &cfg)
		if err != nil {
			t.Fatalf("%q: %v", c.pattern, err)
		}
		if got := f.Matches(check(c.binary, 0, 0)); got != c.want {
			t.Errorf("--binary %q on %s = %v, want %v", c.pattern, c.binary, got, c.want)
		}
	}
}

func TestKernelHalf(t *testing.T) {
	var cfg core.KernelFilter
	if _, err := New(Options{Caps: []string{"syslog,CAP_CHOWN", "1"}, Denied: true, Pids: []int{7}, Comm: "dmesg"}, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.CapMask != 1<<34|1<<0|1<<1 || cfg.Verdict != core.VerdictDenied || len(cfg.Pids) != 1 || cfg.Comm != "dmesg" {
		t.Errorf("cfg = %+v", cfg)
	}
}

func TestBadOptions(t *testing.T) {
	for name, o := range map[string]Options{
		"both verdicts": {Denied: true, Granted: true},
		"unknown cap":   {Caps: []string{"CAP_NOPE"}},
		"pid 0":         {Pids: []int{0}},
		"long comm":     {Comm: "a-very-long-comm-name"},
		"bad glob":      {Binaries: []string{"[abc"}},
		"empty binary":  {Binaries: []string{""}},
	} {
		var cfg core.KernelFilter
		if _, err := New(o, &cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestUnique(t *testing.T) {
	var cfg core.KernelFilter
	f, _ := New(Options{Unique: true}, &cfg)
	keep := []bool{f.First(check("/bin/a", 34, -1)), f.First(check("/bin/a", 34, -1)), f.First(check("/bin/a", 34, 0)), f.First(check("/bin/b", 34, -1))}
	want := []bool{true, false, true, true}
	for i := range keep {
		if keep[i] != want[i] {
			t.Errorf("check %d kept = %v, want %v", i, keep[i], want[i])
		}
	}
}

// With --all a probe of a binary must not hide the same binary's need.
func TestUniqueKeepsClasses(t *testing.T) {
	var cfg core.KernelFilter
	f, _ := New(Options{Unique: true}, &cfg)
	probe, need := check("/bin/a", 21, 0), check("/bin/a", 21, 0)
	probe.Class, need.Class = core.ClassProbe, core.ClassNeed
	if !f.First(probe) || !f.First(need) || f.First(need) {
		t.Errorf("--unique: a probe and a need of one binary are two keys, each printed once")
	}
}

// --unique remembers at most MaxUnique keys; past them checks print, counted.
func TestUniqueBounded(t *testing.T) {
	var cfg core.KernelFilter
	f, _ := New(Options{Unique: true}, &cfg)
	for i := range MaxUnique + 5 {
		if !f.First(check(fmt.Sprintf("/tmp/%d", i), 34, -1)) {
			t.Fatalf("check %d not first", i)
		}
	}
	if len(f.seen) != MaxUnique || f.Unremembered != 5 {
		t.Errorf("%d remembered, %d unremembered; want %d and 5", len(f.seen), f.Unremembered, MaxUnique)
	}
}

func TestPods(t *testing.T) {
	f := Pods{Namespaces: []string{"shop", "dev-*"}, Containers: []string{"app"}}
	for _, c := range []struct {
		ns, pod, ctr string
		want         bool
	}{{"shop", "web-1", "app", true}, {"dev-7", "x", "app", true}, {"prod", "web-1", "app", false}, {"shop", "web-1", "sidecar", false}} {
		if got := f.Match(c.ns, c.pod, c.ctr); got != c.want {
			t.Errorf("%s/%s/%s: %v, want %v", c.ns, c.pod, c.ctr, got, c.want)
		}
	}
	if !(Pods{}).Match("", "", "") || !(Pods{}).Any() || f.Any() {
		t.Error("an empty filter must match everything, and only it is Any")
	}
	for _, bad := range []Pods{{Pods: []string{"[x"}}, {Namespaces: []string{""}}} {
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "bad glob") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}
