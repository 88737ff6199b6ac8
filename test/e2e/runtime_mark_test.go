package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capsrec/capsrec/internal/ctrfixture"
	"github.com/capsrec/capsrec/internal/testutil"
)

// evasion is one attempt to run code under the container runtime's mark:
// testdata/evil.c preloaded into a program, doing act (chown:FILE or syslog) as
// how says, its thread named name.
type evasion struct {
	name, how, act string
	uid            uint32
	// run is the command line (after LD_PRELOAD and the EV_ variables).
	run []string
	// wrap runs the command inside sh -c (bind mounts, fd execs): %s is the command.
	wrap string
}

// builtEvil compiles testdata/evil.c into a world-readable directory.
func builtEvil(t *testing.T, dir string) string {
	t.Helper()
	so := filepath.Join(dir, "evil.so")
	if out, err := exec.Command("cc", "-shared", "-fPIC", "-O1", "-o", so, "testdata/evil.c").CombinedOutput(); err != nil {
		t.Fatalf("building evil.so: %v\n%s", err, out)
	}
	return so
}

// worldDir is a temporary directory anyone may enter and read, and write to
// (the unprivileged attempts copy files there).
func worldDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Dir(helperBinary(t, "capsrec-world"))
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustLookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} { // a PATH without sbin
		if err == nil {
			break
		}
		p, err = exec.LookPath(filepath.Join(dir, name))
	}
	if err != nil {
		t.Fatalf("%s is not installed: %v", name, err)
	}
	p, err = filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (e evasion) start(t *testing.T, so, dir string) {
	t.Helper()
	env := []string{"LD_PRELOAD=" + so, "EV_CASE=" + e.name, "EV_ACT=" + e.act, "EV_HOW=" + e.how, "EV_DIR=" + dir, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd := exec.Command(e.run[0], e.run[1:]...)
	cmd.Env = env
	if e.wrap != "" {
		// The shell must not load the library itself: it is passed to the command only.
		cmd = exec.Command("/bin/sh", "-c", fmt.Sprintf(e.wrap, strings.Join(e.run, " ")))
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "EVIL_ENV=" + strings.Join(env, " ")}
	}
	if e.uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: e.uid, Gid: e.uid}}
	}
	if out, err := cmd.CombinedOutput(); err != nil && len(out) > 0 {
		t.Logf("%s: %v: %s", e.name, err, out)
	}
}

// recordedCheck is what the evasion test reads of each recorded check.
type recordedCheck struct {
	ProcessKprobe struct {
		Process struct {
			Binary string `json:"binary"`
		} `json:"process"`
		Args []struct {
			Cap *struct {
				Name string `json:"name"`
			} `json:"capability_arg"`
		} `json:"args"`
		Capsrec struct {
			Class      string `json:"class"`
			Comm       string `json:"comm"`
			Executable string `json:"executable"`
		} `json:"capsrec"`
	} `json:"process_kprobe"`
}

func (r recordedCheck) capability() string {
	for _, a := range r.ProcessKprobe.Args {
		if a.Cap != nil {
			return a.Cap.Name
		}
	}
	return ""
}

// findEvasion finds the check of evasion e: its thread's name, or for the
// exec'd copies the executable named after it.
func findEvasion(t *testing.T, lines [][]byte, e evasion) (recordedCheck, bool) {
	t.Helper()
	want := "CAP_CHOWN"
	if e.act == "syslog" {
		want = "CAP_SYSLOG"
	}
	for _, l := range lines {
		var r recordedCheck
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		c := r.ProcessKprobe.Capsrec
		if r.capability() == want && (c.Comm == e.name || strings.Contains(c.Executable, e.name) || strings.Contains(r.ProcessKprobe.Process.Binary, e.name)) {
			return r, true
		}
	}
	return recordedCheck{}, false
}

// TestRuntimeMarkCannotBeBorrowed tries, as root and as nobody, every way the
// issue found to run code under the runtime's mark (checks hidden as runtime
// setup): a library preloaded into runc or the shim, then the same code in the
// process, in a forked child, or exec'd from a memfd or a deleted file; runc by
// a hard link, a bind mount, or /proc/self/fd; a "runc" on capsrec's own PATH
// and on the PATH of a socket listener that does not answer CRI. Each check must
// be shown by default as a need, joined to its real executable, and be in the
// profile. A real containerd runs throughout: its runc and shim are the real
// runtime binaries, and the mark is live.
func TestRuntimeMarkCannotBeBorrowed(t *testing.T) {
	testutil.RequireRoot(t)
	method := firstMethod(t)
	dmesgRestrict(t)
	c := ctrfixture.Start(t)
	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", c.Endpoint)

	dir := worldDir(t)
	so := builtEvil(t, dir)
	runc, shim := mustLookPath(t, "runc"), mustLookPath(t, "containerd-shim-runc-v2")
	busybox := mustLookPath(t, "busybox")
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	chown := "chown:" + target

	// A hard link of runc beside it (the same filesystem), removed at the end.
	link := filepath.Join(filepath.Dir(runc), ".capsrec-test-runc-link")
	os.Remove(link) // left by a run killed before its cleanup
	if err := os.Link(runc, link); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(link) })
	// A "runc" on the PATH capsrec runs with, and one on the PATH of a listener
	// that never answers CRI: any program of the attacker's.
	hostilePath, fakePath := filepath.Join(dir, "path"), filepath.Join(dir, "fakepath")
	for _, d := range []string{hostilePath, fakePath} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		copyFile(t, mustLookPath(t, "true"), filepath.Join(d, "runc"))
	}
	fakeSock := filepath.Join(dir, "fake.sock")
	startFakeListener(t, fakeSock, fakePath)

	cases := []evasion{
		{name: "ev-direct", how: "direct", act: chown, run: []string{runc, "--version"}},
		{name: "ev-fork", how: "fork", act: chown, run: []string{runc, "--version"}},
		{name: "ev-memfd", how: "memfd:" + busybox, act: chown, run: []string{runc, "--version"}},
		{name: "ev-deleted", how: "deleted:" + busybox, act: chown, run: []string{runc, "--version"}},
		{name: "ev-shim", how: "direct", act: chown, run: []string{shim, "-v"}},
		{name: "ev-shimfork", how: "fork", act: chown, run: []string{shim, "-v"}},
		{name: "ev-hardlink", how: "direct", act: chown, run: []string{link, "--version"}},
		{name: "ev-bind", how: "direct", act: chown, run: []string{filepath.Join(dir, "bound"), "--version"},
			wrap: "touch " + filepath.Join(dir, "bound") + " && exec unshare -m sh -c 'mount --bind " + runc + " " + filepath.Join(dir, "bound") + " && exec env $EVIL_ENV %s'"},
		{name: "ev-procfd", how: "direct", act: chown, run: []string{"/proc/self/fd/7", "--version"}, wrap: "exec 7<" + runc + "; exec env $EVIL_ENV %s"},
		{name: "ev-path", how: "direct", act: chown, run: []string{filepath.Join(hostilePath, "runc")}},
		{name: "ev-nobody", how: "direct", act: "syslog", uid: 65534, run: []string{runc, "--version"}},
		{name: "ev-nobodymemfd", how: "memfd:" + busybox, act: "syslog", uid: 65534, run: []string{runc, "--version"}},
		{name: "ev-nobodydel", how: "deleted:" + busybox, act: "syslog", uid: 65534, run: []string{runc, "--version"}},
		{name: "ev-nobodyfd", how: "direct", act: "syslog", uid: 65534, run: []string{"/proc/self/fd/7", "--version"}, wrap: "exec 7<" + runc + "; exec env $EVIL_ENV %s"},
	}
	fakeCase := evasion{name: "ev-fakesock", how: "direct", act: chown, run: []string{filepath.Join(fakePath, "runc")}}

	t.Setenv("PATH", hostilePath+":"+os.Getenv("PATH"))
	all := testutil.Record(t, "-o", "json", "--attach", method, "--all", "--cap", "chown,syslog")
	shown := testutil.Record(t, "-o", "json", "--attach", method, "--cap", "chown,syslog")
	fake := testutil.Record(t, "-o", "json", "--attach", method, "--all", "--cap", "chown,syslog", "-r", "unix://"+fakeSock)
	for _, e := range cases {
		e.start(t, so, dir)
	}
	fakeCase.start(t, so, dir)
	time.Sleep(300 * time.Millisecond)
	for _, s := range []*testutil.Session{all, shown, fake} {
		s.Stop(syscall.SIGINT)
	}

	for _, e := range cases {
		for name, s := range map[string]*testutil.Session{"--all": all, "default": shown} {
			r, ok := findEvasion(t, s.Lines(), e)
			if !ok {
				t.Errorf("%s view: no check of %s in\n%s", name, e.name, bytes.Join(s.Lines(), []byte{10}))
				continue
			}
			if cl := r.ProcessKprobe.Capsrec.Class; cl != "need" {
				t.Errorf("%s view: %s's check has class %q, want need", name, e.name, cl)
			}
			if real := r.ProcessKprobe.Capsrec.Executable + r.ProcessKprobe.Process.Binary; e.how != "direct" && e.how != "fork" &&
				!(strings.Contains(real, e.name) && strings.HasSuffix(real, " (deleted)")) {
				t.Errorf("%s: the check is not joined to its real executable (binary %q, executable %q)",
					e.name, r.ProcessKprobe.Process.Binary, r.ProcessKprobe.Capsrec.Executable)
			}
		}
	}
	if r, ok := findEvasion(t, fake.Lines(), fakeCase); !ok || r.ProcessKprobe.Capsrec.Class != "need" {
		t.Errorf("a runc on the PATH of a listener that does not answer CRI: found %v, class %q, want need", ok, r.ProcessKprobe.Capsrec.Class)
	}
	for _, l := range all.Lines() {
		if bytes.Contains(l, []byte(`"class":"runtime"`)) {
			t.Errorf("no container ran, yet a check is runtime setup: %s", l)
		}
	}

	// The profile of the default view holds every root attempt's CAP_CHOWN.
	// The profile of the default view: each root attempt's binary needs CAP_CHOWN.
	needs := map[string]bool{}
	for _, sub := range profileOf(t, shown.Lines()).Subjects {
		needs[sub.Binary] = sub.Capabilities["CAP_CHOWN"].Verdict == "needed"
	}
	for _, e := range cases {
		if r, ok := findEvasion(t, shown.Lines(), e); ok && e.uid == 0 && !needs[r.ProcessKprobe.Process.Binary] {
			t.Errorf("%s: the profile of %s does not need CAP_CHOWN", e.name, r.ProcessKprobe.Process.Binary)
		}
	}
	testutil.AssertNothingLeft(t)
}

// startFakeListener runs a process that listens on sock and never answers CRI,
// with path as its PATH: a socket peer whose PATH the attacker chose.
func startFakeListener(t *testing.T, sock, path string) {
	t.Helper()
	h := startHelper(t, "capsrec-fake-listener", 0, "listen:"+sock, "PATH="+path)
	fmt.Fprintln(h.stdin, "go")
	for range 100 {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the fake listener did not listen")
}
