package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capsrec/capsrec/internal/testutil"
)

// firstMethod is the method the tests that are not about methods use.
func firstMethod(t *testing.T) string { return methodsUnderTest(t)[0] }

// linesOf returns the decoded events of s whose process is pid.
func linesOf(t *testing.T, s *testutil.Session, pid int) []event {
	var evs []event
	for _, l := range s.Lines() {
		if ev := decode(t, l); ev.ProcessKprobe.Process.PID == pid {
			evs = append(evs, ev)
		}
	}
	return evs
}

var summaryRE = regexp.MustCompile(`capsrec: (\d+) checks? seen, (\d+) printed, (\d+) filtered, (\d+) lost`)

// summary parses the exit line: seen, printed, filtered, lost.
func summary(t *testing.T, stderr string) [4]int {
	t.Helper()
	m := summaryRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no summary line in stderr:\n%s", stderr)
	}
	var n [4]int
	for i := range n {
		n[i], _ = strconv.Atoi(m[i+1])
	}
	return n
}

func TestRecordFilters(t *testing.T) {
	method := firstMethod(t)
	dmesgRestrict(t)
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("pid and granted", func(t *testing.T) {
		in := startHelper(t, "", 0, "syslog:3,chown:"+file)
		out := startHelper(t, "", 0, "syslog:3")
		s := testutil.Record(t, "-o", "json", "--attach", method, "--pid", strconv.Itoa(in.pid()), "--granted", "--cap", "syslog")
		in.run(t)
		out.run(t)
		s.WaitFor("the third check", func([]byte) bool { return len(linesOf(t, s, in.pid())) == 3 })
		s.Stop(syscall.SIGINT)
		if n := len(s.Lines()); n != 3 {
			t.Errorf("printed %d lines, want the 3 CAP_SYSLOG checks of pid %d only", n, in.pid())
		}
		for _, ev := range linesOf(t, s, in.pid()) {
			if ev.cap() != "CAP_SYSLOG" || *ev.ProcessKprobe.Return.IntArg != 0 {
				t.Errorf("kept %s %d", ev.cap(), *ev.ProcessKprobe.Return.IntArg)
			}
		}
		n := summary(t, s.Stderr())
		if n[0] != n[1]+n[2]+n[3] || n[1] != 3 {
			t.Errorf("summary seen %d != printed %d + filtered %d + lost %d", n[0], n[1], n[2], n[3])
		}
	})

	t.Run("comm and unique", func(t *testing.T) {
		h := startHelper(t, "chkhelper", 0, "syslog:5,chown:"+file)
		other := startHelper(t, "", 0, "syslog:5")
		s := testutil.Record(t, "-o", "json", "--attach", method, "--comm", "chkhelper", "--unique", "--cap", "syslog", "--cap", "CAP_CHOWN")
		h.run(t)
		other.run(t)
		s.WaitFor("CAP_CHOWN", eventOf(t, h.pid(), "CAP_CHOWN"))
		s.Stop(syscall.SIGINT)
		var got []string
		for _, l := range s.Lines() {
			got = append(got, decode(t, l).cap())
		}
		if !slices.Equal(got, []string{"CAP_SYSLOG", "CAP_CHOWN"}) {
			t.Errorf("got %v, want one CAP_SYSLOG and one CAP_CHOWN of chkhelper", got)
		}
	})

	t.Run("binary and denied", func(t *testing.T) {
		nobody := startHelper(t, "chkhelper", 65534, "syslog:2")
		root := startHelper(t, "chkhelper", 0, "syslog:2")
		other := startHelper(t, "", 65534, "syslog:2")
		s := testutil.Record(t, "-o", "json", "--attach", method, "--binary", "*/chkhelper", "--denied", "--cap", "syslog")
		nobody.run(t)
		root.run(t)
		other.run(t)
		s.WaitFor("the second denial", func([]byte) bool { return len(linesOf(t, s, nobody.pid())) == 2 })
		// The other two helpers ran after nobody's; give their checks the reader's poll to arrive.
		time.Sleep(200 * time.Millisecond * testutil.Slow())
		s.Stop(syscall.SIGINT)
		for _, l := range s.Lines() {
			ev := decode(t, l)
			if ev.ProcessKprobe.Process.PID != nobody.pid() || *ev.ProcessKprobe.Return.IntArg == 0 {
				t.Errorf("kept %s of pid %d (%s), want only nobody's denials", ev.cap(), ev.ProcessKprobe.Process.PID, ev.ProcessKprobe.Process.Binary)
			}
		}
	})
	testutil.AssertNothingLeft(t)
}

// --binary matches what ran, whatever name it ran by: a symlink, or an exec
// through a file descriptor; and JSON shows an fd exec by its real path.
func TestBinaryRealIdentity(t *testing.T) {
	method := firstMethod(t)
	dmesgRestrict(t)
	dmesg, err := exec.LookPath("dmesg")
	if err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(dmesg)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "capsrec-link-") // nobody must reach it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "notdmesg")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	s := testutil.Record(t, "-o", "json", "--attach", method, "--binary", "dmesg", "--cap", "syslog")
	asNobody := func(cmd *exec.Cmd) *exec.Cmd {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait() // refused: that is the point
		return cmd
	}
	viaLink := asNobody(exec.Command(link))
	viaFd := asNobody(exec.Command("sh", "-c", "exec 3<"+real+"; exec /proc/self/fd/3"))
	s.WaitFor("the symlinked dmesg", eventOf(t, viaLink.Process.Pid, "CAP_SYSLOG"))
	line := s.WaitFor("the fd-exec'd dmesg", eventOf(t, viaFd.Process.Pid, "CAP_SYSLOG"))
	s.Stop(syscall.SIGINT)
	if got := decode(t, line).ProcessKprobe.Process.Binary; got != real {
		t.Errorf("an fd exec shows binary %q, want %q", got, real)
	}
}

// A process whose cwd was removed shows it marked, as the kernel's d_path does.
func TestDeletedCwd(t *testing.T) {
	method := firstMethod(t)
	dir, err := os.MkdirTemp("", "capsrec-gone-")
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := testutil.Record(t, "-o", "json", "--attach", method, "--cap", "chown")
	// The shell removes its own cwd, then execs chown there.
	cmd := exec.Command("sh", "-c", "rmdir "+dir+" && exec chown 1234 "+target)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	line := s.WaitFor("chown's check", eventOf(t, cmd.Process.Pid, "CAP_CHOWN"))
	s.Stop(syscall.SIGINT)
	if cwd := decode(t, line).ProcessKprobe.Process.Cwd; cwd != dir+" (deleted)" {
		t.Errorf("cwd = %q, want %q", cwd, dir+" (deleted)")
	}
}

// A cwd deeper than the kernel-side walk reads shows as a part, never as a
// path that looks whole.
func TestTruncatedCwd(t *testing.T) {
	method := firstMethod(t)
	deep := t.TempDir()
	for range 60 {
		deep = filepath.Join(deep, "d")
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(deep, "f")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := testutil.Record(t, "-o", "json", "--attach", method, "--cap", "chown")
	cmd := exec.Command("chown", "1234", "f")
	cmd.Dir = deep
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	line := s.WaitFor("chown's check", eventOf(t, cmd.Process.Pid, "CAP_CHOWN"))
	s.Stop(syscall.SIGINT)
	if cwd := decode(t, line).ProcessKprobe.Process.Cwd; !strings.HasPrefix(cwd, ".../") || !strings.HasSuffix(cwd, "/d/d") {
		t.Errorf("cwd = %q, want .../d/d...", cwd)
	}
}
