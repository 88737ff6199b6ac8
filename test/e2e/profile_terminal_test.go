package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/termwidth"
	"github.com/capsrec/capsrec/internal/testutil"
	"github.com/capsrec/capsrec/tetragon"
)

// terminalEvents are checks whose profile table has every verdict, long
// names, many binaries and syscalls, and capabilities of every name length.
func terminalEvents(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	w := tetragon.NewWriter(&buf, "node-with-a-long-name", [core.NSCount]uint32{})
	ctr := &core.Container{ID: "0123456789abcdef", Runtime: "containerd", Name: "application-server",
		ImageName: "registry.example.com/team/application-server:2026.12.02-build.1234",
		Pod:       &core.Pod{Namespace: "production-payments", Name: "application-server-7d4b9c8f6d-q8w2k"}}
	t0 := time.Date(2026, 12, 2, 9, 30, 0, 0, time.UTC)
	add := func(i int, binary string, cp int32, ret int32, class core.Class, syscall int32) {
		c := &core.Check{Time: t0.Add(time.Duration(i) * time.Second), Cap: cp, Ret: ret, Class: class, Syscall: syscall,
			Method: core.MethodTracepoint, Container: ctr,
			Process: &core.Process{Tgid: uint32(100 + i), ExecID: "eA==", Binary: binary}}
		if err := w.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range []string{"/usr/local/bin/application-server", "/usr/bin/chown", "/bin/busybox", "/usr/sbin/helper-with-a-long-name"} {
		add(i, b, 0, 0, core.ClassNeed, []int32{92, 260, 94, 93}[i]) // CAP_CHOWN by four binaries, four syscalls
	}
	add(5, "/usr/bin/dmesg", 34, -1, core.ClassNeed, 103)                           // denied
	add(6, "/usr/local/bin/application-server", 21, 0, core.ClassProbe, 9)          // probe
	add(7, "/usr/sbin/runc", 8, 0, core.ClassRuntime, 157)                          // runtime
	add(8, "/usr/local/bin/application-server", 1, 0, core.ClassOverrideCreds, 257) // override
	add(9, "/usr/local/bin/application-server", 40, -1, core.ClassProbe, 9)         // refused
	add(10, "/usr/local/bin/application-server", 10, 0, core.ClassNeed, 49)         // NET_BIND_SERVICE
	add(11, "/usr/local/bin/application-server", 12, -1, core.ClassNeed, 54)        // NET_ADMIN denied
	_ = w.Flush()
	path := filepath.Join(t.TempDir(), "events.json")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestProfileTableInTerminal looks at the profile table as a person does: in
// an 80-, 120- and 200-column tmux, colored. No line wraps, and each row's
// verdict starts where its header's VERDICT does, whatever its color.
func TestProfileTableInTerminal(t *testing.T) {
	events := terminalEvents(t)
	for _, width := range []int{80, 120, 200} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			screen, colored := inTmux(t, width, testutil.Binary(t)+" profile --color always "+events)
			if !strings.Contains(strings.Join(colored, "\n"), "\x1b[") {
				t.Fatalf("no color on the screen:\n%s", strings.Join(colored, "\n"))
			}
			checkProfileScreen(t, width, screen)
		})
	}
}

// inTmux runs cmd in a tmux pane of width columns, and returns the screen
// once it ends: lines tmux wrapped joined (-J: a joined line longer than the
// pane wrapped), and with colors (-e).
func inTmux(t *testing.T, width int, cmd string) (screen, colored []string) {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux is not installed: %v", err)
	}
	session := "capsrec-tmux-" + filepath.Base(t.TempDir())
	done := filepath.Join(t.TempDir(), "done")
	if out, err := exec.Command("tmux", "new-session", "-d", "-s", session, "-x", fmt.Sprint(width), "-y", "80", cmd+"; touch "+done+"; sleep 60").CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v %s", err, out)
	}
	defer exec.Command("tmux", "kill-session", "-t", session).Run()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(done); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not finish in tmux", cmd)
		}
	}
	capture := func(args ...string) []string {
		out, err := exec.Command("tmux", append([]string{"capture-pane", "-p", "-t", session}, args...)...).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	}
	return capture("-J"), capture("-e")
}

func checkProfileScreen(t *testing.T, width int, screen []string) {
	t.Helper()
	verdictAt, rows := -1, 0
	for _, line := range screen {
		if n := termwidth.Width(line); n > width {
			t.Errorf("a line of %d columns wraps in %d:\n%s", n, width, line)
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

// TestRecordInTerminal runs record -- COMMAND in 80-, 120- and 200-column
// terminals: every line fits, the header is whole and above its columns, and
// the exit summary is one short block.
func TestRecordInTerminal(t *testing.T) {
	method := firstMethod(t)
	for _, width := range []int{80, 120, 200} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			f := ownedFile(t)
			screen, _ := inTmux(t, width, testutil.Binary(t)+" record --color always --attach "+method+" -- sh -c '"+commandScript+"' sh "+f+" 2>&1")
			header := -1
			for i, line := range screen {
				if n := termwidth.Width(line); n > width {
					t.Errorf("a line of %d columns wraps in %d:\n%s", n, width, line)
				}
				if strings.HasPrefix(line, "TIME ") {
					header = i
				}
			}
			text := strings.Join(screen, "\n")
			if header < 0 || !strings.Contains(screen[header], " VERDICT SYSCALL") {
				t.Fatalf("no whole header:\n%s", text)
			}
			at := strings.Index(screen[header], "VERDICT")
			rows := 0
			for _, line := range screen[header+1:] {
				if strings.Contains(line, "CHOWN ") || strings.Contains(line, "FOWNER ") {
					rows++
					if !strings.HasPrefix(line[at:], "granted") {
						t.Errorf("the verdict is not under VERDICT (column %d):\n%s", at, line)
					}
				}
			}
			if rows != 2 || !strings.Contains(text, "capsrec: the session's profile, 1 subject:") || !strings.Contains(text, "needs [CHOWN, FOWNER]") ||
				!strings.Contains(text, "the whole table: --full-summary") {
				t.Errorf("want the two checks and a brief summary:\n%s", text)
			}
		})
	}
}
