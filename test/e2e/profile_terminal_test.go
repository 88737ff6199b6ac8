package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capsrec/capsrec/bpf"
	"github.com/capsrec/capsrec/internal/testutil"
	"github.com/capsrec/capsrec/output"
	"github.com/capsrec/capsrec/recorder"
)

// terminalEvents are checks whose profile table has every verdict, long
// names, many binaries and syscalls, and capabilities of every name length.
func terminalEvents(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	w := output.NewJSON(&buf, "node-with-a-long-name", [bpf.NSCount]uint32{})
	ctr := &recorder.Container{ID: "0123456789abcdef", Runtime: "containerd", Name: "application-server",
		ImageName: "registry.example.com/team/application-server:2026.12.02-build.1234",
		Pod:       &recorder.Pod{Namespace: "production-payments", Name: "application-server-7d4b9c8f6d-q8w2k"}}
	t0 := time.Date(2026, 12, 2, 9, 30, 0, 0, time.UTC)
	add := func(i int, binary string, cp int32, ret int32, class recorder.Class, syscall int32) {
		c := &recorder.Check{Time: t0.Add(time.Duration(i) * time.Second), Cap: cp, Ret: ret, Class: class, Syscall: syscall,
			Method: bpf.MethodTracepoint, Container: ctr,
			Process: &recorder.Process{Tgid: uint32(100 + i), ExecID: "eA==", Binary: binary}}
		if err := w.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range []string{"/usr/local/bin/application-server", "/usr/bin/chown", "/bin/busybox", "/usr/sbin/helper-with-a-long-name"} {
		add(i, b, 0, 0, recorder.ClassNeed, []int32{92, 260, 94, 93}[i]) // CAP_CHOWN by four binaries, four syscalls
	}
	add(5, "/usr/bin/dmesg", 34, -1, recorder.ClassNeed, 103)                           // denied
	add(6, "/usr/local/bin/application-server", 21, 0, recorder.ClassProbe, 9)          // probe
	add(7, "/usr/sbin/runc", 8, 0, recorder.ClassRuntime, 157)                          // runtime
	add(8, "/usr/local/bin/application-server", 1, 0, recorder.ClassOverrideCreds, 257) // override
	add(9, "/usr/local/bin/application-server", 40, -1, recorder.ClassProbe, 9)         // refused
	add(10, "/usr/local/bin/application-server", 10, 0, recorder.ClassNeed, 49)         // NET_BIND_SERVICE
	add(11, "/usr/local/bin/application-server", 12, -1, recorder.ClassNeed, 54)        // NET_ADMIN denied
	_ = w.Flush()
	path := filepath.Join(t.TempDir(), "events.json")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestProfileTableInTerminal looks at the profile table as a person does: in
// a 120-column tmux, colored. No line wraps, and each row's verdict starts
// where its header's VERDICT does, whatever its color.
func TestProfileTableInTerminal(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux is not installed: %v", err)
	}
	events := terminalEvents(t)
	session := "capsrec-table-" + filepath.Base(t.TempDir())
	done := filepath.Join(t.TempDir(), "done")
	cmd := testutil.Binary(t) + " profile --color always " + events + "; touch " + done + "; sleep 60"
	if out, err := exec.Command("tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "60", cmd).CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v %s", err, out)
	}
	defer exec.Command("tmux", "kill-session", "-t", session).Run()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(done); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("capsrec profile did not finish in tmux")
		}
	}
	capture := func(args ...string) []string {
		out, err := exec.Command("tmux", append([]string{"capture-pane", "-p", "-t", session}, args...)...).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	}
	// -J joins lines tmux wrapped: a joined line longer than the pane wrapped.
	screen := capture("-J")
	if colored := strings.Join(capture("-e"), "\n"); !strings.Contains(colored, "\x1b[") {
		t.Fatalf("no color on the screen:\n%s", colored)
	}
	verdictAt, rows := -1, 0
	for _, line := range screen {
		if n := len([]rune(line)); n > 120 {
			t.Errorf("a line of %d columns wraps in 120:\n%s", n, line)
		}
		if i := strings.Index(line, "VERDICT"); i >= 0 {
			verdictAt = i
			continue
		}
		if verdictAt < 0 || !strings.HasPrefix(line, "  CAP_") {
			verdictAt = -1
			continue
		}
		rows++
		word := strings.Fields(line[verdictAt:])[0]
		if line[verdictAt-1] != ' ' || !strings.Contains("needed needed* denied probe runtime override refused", word) {
			t.Errorf("the verdict is not under VERDICT (column %d):\n%s", verdictAt, line)
		}
	}
	if rows != 8 {
		t.Errorf("%d capability rows on the screen, want 8:\n%s", rows, strings.Join(screen, "\n"))
	}
	if s := strings.Join(screen, "\n"); !strings.Contains(s, "denied: the workload tried and was refused") || !strings.Contains(s, "coverage: start not observed") {
		t.Errorf("the verdicts' legend or the coverage is missing:\n%s", s)
	}
}
