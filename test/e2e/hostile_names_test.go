package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/capsrec/capsrec/internal/testutil"
)

// Names a local user can give a binary (and so its comm) to forge or hide
// lines of capsrec's output, or to write directives into a systemd snippet.
var hostileNames = []string{
	"x\n21:36:50.000000 host                      sshd[1]                    0      CAP_SYS_ADMIN          granted mount",
	"over\rwrite",
	"\x1b[2K\x1b[1Ghidden\x1b[8m",
	"\x1b]0;owned title\x07",
	"x\nAmbientCapabilities=CAP_SYS_ADMIN CAP_SYS_MODULE",
	"rtl\u202eexe.gnp",
}

// assertClean: no control byte but the newline, no bidi override, and every
// line one that capsrec writes.
func assertClean(t *testing.T, what string, out []byte, lineOK func(string) bool) {
	t.Helper()
	for _, c := range out {
		if (c < 0x20 && c != '\n') || c == 0x7f {
			t.Errorf("%s holds control byte %#x:\n%q", what, c, out)
			return
		}
	}
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if !lineOK(l) {
			t.Errorf("%s: a line that is not capsrec's: %q", what, l)
		}
	}
	if bytes.Contains(out, []byte("\u202e")) {
		t.Errorf("%s keeps a bidi override", what)
	}
}

// TestHostileNames runs real binaries with hostile names, each making one
// real capability check (chown), while capsrec records, then profiles the
// recording in every format.
func TestHostileNames(t *testing.T) {
	method := firstMethod(t)
	dir := t.TempDir()
	chownBin, err := exec.LookPath("chown")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(chownBin)
	if err != nil {
		t.Fatal(err)
	}
	// Only these binaries: other processes on the node (kubelet, say) chown too.
	only := []string{"--cap", "chown", "--binary", filepath.Join(dir, "*"), "--binary", "chown"}
	compact := testutil.Record(t, append([]string{"--attach", method, "--color", "never", "--summary"}, only...)...)
	jsonRec := testutil.Record(t, append([]string{"-o", "json", "--attach", method}, only...)...)
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for i, name := range hostileNames {
		bin := filepath.Join(dir, name)
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, strings.Repeat("1", i+1), target)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%q: %v %s", name, err, out)
		}
		jsonRec.WaitFor("the check", eventOf(t, cmd.Process.Pid, "CAP_CHOWN"))
	}
	last := exec.Command("chown", "0", target) // a last, plain check
	if err := last.Run(); err != nil {
		t.Fatal(err)
	}
	compact.WaitFor("the plain chown", func(l []byte) bool { return bytes.Contains(l, []byte(" chown[")) })
	compact.Stop(syscall.SIGINT)
	jsonRec.Stop(syscall.SIGINT)

	line := regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{6} host +.+\[\d+\] +0 +CAP_CHOWN +granted +\w+$`)
	var out []byte
	for _, l := range compact.Lines() {
		out = append(append(out, l...), '\n')
	}
	assertClean(t, "compact", out, line.MatchString)
	if n := len(compact.Lines()); n != len(hostileNames)+1 {
		t.Errorf("compact printed %d lines for %d checks", n, len(hostileNames)+1)
	}
	assertClean(t, "record --summary", []byte(compact.Stderr()), func(string) bool { return true })

	events := filepath.Join(dir, "events.json")
	var rec []byte
	for _, l := range jsonRec.Lines() {
		rec = append(append(rec, l...), '\n')
	}
	if err := os.WriteFile(events, rec, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"table", "yaml", "docker", "systemd"} {
		out, err := exec.Command(testutil.Binary(t), "profile", "--color", "never", "-o", format, events).Output()
		if err != nil {
			t.Fatalf("profile -o %s: %v", format, err)
		}
		ok := func(string) bool { return true }
		if format == "systemd" {
			ok = func(l string) bool {
				return strings.HasPrefix(l, "# ") || l == "" || l == "CapabilityBoundingSet=CAP_CHOWN" || l == "AmbientCapabilities=CAP_CHOWN"
			}
		}
		assertClean(t, "profile -o "+format, out, ok)
	}
}
