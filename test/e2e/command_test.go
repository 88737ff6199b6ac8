package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/capsrec/capsrec/internal/testutil"
)

// commandScript needs exactly CHOWN (chown to another user) and FOWNER
// (chmod of the file it no longer owns), in a child of the shell each.
const commandScript = `chown 65534 "$1" && chmod 600 "$1"`

// ownedFile is a fresh root-owned file for commandScript.
func ownedFile(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// busyChown makes the same checks outside the command, all the time, until
// the test ends: none of them may show.
func busyChown(t *testing.T) string {
	t.Helper()
	other := filepath.Join(t.TempDir(), "other-file")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	loop := exec.Command("sh", "-c", `while :; do chown 65534 "$1"; chmod 600 "$1"; chown 0 "$1"; sleep 0.01 2>/dev/null || sleep 1; done`, "sh", other)
	if err := loop.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = loop.Process.Kill(); _ = loop.Wait() })
	return other
}

// record -- COMMAND records the command and what it starts, nothing else,
// and exits with its status.
func TestRecordCommand(t *testing.T) {
	method := firstMethod(t)
	other := busyChown(t)
	f := ownedFile(t)
	cmd := exec.Command(testutil.Binary(t), "record", "-o", "json", "--attach", method, "--", "sh", "-c", commandScript+"; exit 7", "sh", f)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if exitCode(err) != 7 || !strings.Contains(stderr.String(), "capsrec: sh exited with status 7") {
		t.Fatalf("record -- sh -c '...; exit 7': %v, want exit 7\n%s", err, stderr.String())
	}
	var caps, binaries []string
	for _, line := range bytes.Split(bytes.TrimSpace(stdout.Bytes()), []byte("\n")) {
		ev := decode(t, line)
		if ev.ProcessKprobe.Process.Binary == "" {
			continue // process_exec and the summary
		}
		if strings.Contains(ev.ProcessKprobe.Process.Arguments, other) {
			t.Errorf("a check of a process outside the command: %s", line)
		}
		caps = append(caps, ev.cap())
		binaries = append(binaries, filepath.Base(ev.ProcessKprobe.Process.Binary))
	}
	slices.Sort(caps)
	slices.Sort(binaries)
	// busybox's sh (the VM's) runs applets in a fork of itself: sh, or busybox when it execs them.
	busybox := !slices.ContainsFunc(binaries, func(b string) bool { return b != "sh" && b != "busybox" })
	if want := []string{"CAP_CHOWN", "CAP_FOWNER"}; !slices.Equal(slices.Compact(caps), want) ||
		(!slices.Equal(slices.Compact(binaries), []string{"chmod", "chown"}) && !busybox) {
		t.Errorf("checks %v by %v, want %v by chown and chmod:\n%s", caps, binaries, want, stdout.String())
	}
	if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the command did not run through: %v %v", fi, err)
	}
}

// profile -o systemd -- COMMAND gives the unit's capabilities, and they are
// proven: the command runs with exactly them as its bounding set, and fails
// with any one less.
func TestProfileCommandIsExact(t *testing.T) {
	method := firstMethod(t)
	busyChown(t)
	out, err := exec.Command(testutil.Binary(t), "profile", "-o", "systemd", "--attach", method, "--", "sh", "-c", commandScript, "sh", ownedFile(t)).Output()
	if err != nil {
		t.Fatalf("profile -- COMMAND: %v\n%s", err, out)
	}
	var bounding []string
	for line := range strings.SplitSeq(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "CapabilityBoundingSet="); ok {
			bounding = strings.Fields(v)
		}
	}
	if want := []string{"CAP_CHOWN", "CAP_FOWNER"}; !slices.Equal(bounding, want) || !strings.Contains(string(out), "# command sh -c") {
		t.Fatalf("CapabilityBoundingSet %v, want %v:\n%s", bounding, want, out)
	}
	run := func(caps []string) error {
		set := "-all"
		for _, c := range caps {
			set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
		}
		return exec.Command("setpriv", "--bounding-set="+set, "--inh-caps=-all", "sh", "-c", commandScript, "sh", ownedFile(t)).Run()
	}
	if err := run(bounding); err != nil {
		t.Errorf("with exactly %v the command fails: %v", bounding, err)
	}
	for i := range bounding {
		less := slices.Delete(slices.Clone(bounding), i, i+1)
		if err := run(less); err == nil {
			t.Errorf("without %s the command still succeeds: it is no need", bounding[i])
		}
	}
}

// A command that cannot be found, or no command after --: one line, no hooks left.
func TestRecordCommandBadInput(t *testing.T) {
	bin := testutil.Binary(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"record", "--", "no-such-command-xyz"}, `the command: exec: "no-such-command-xyz": executable file not found`},
		{[]string{"record", "--"}, "no command after --"},
		{[]string{"record", "--pid", "1", "--", "true"}, "--pid and a command exclude each other"},
		{[]string{"profile", "x.json", "--", "true"}, "files or runs a command, not both"},
		{[]string{"record", "xwing"}, "a command to record goes after --"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			assertOneLineError(t, exec.Command(bin, c.args...), c.want)
		})
	}
	testutil.AssertNothingLeft(t)
}

// --width (what kubectl capsrec passes its node pod for its own terminal)
// lays lines out for that width on a pipe too.
func TestRecordWidthFlag(t *testing.T) {
	out, err := exec.Command(testutil.Binary(t), "record", "--attach", firstMethod(t), "--width", "80", "--no-summary", "--",
		"sh", "-c", commandScript, "sh", ownedFile(t)).Output()
	if err != nil {
		t.Fatalf("record --width 80: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, line := range lines {
		if len([]rune(line)) > 80 {
			t.Errorf("a line of %d columns with --width 80: %s", len([]rune(line)), line)
		}
	}
	if len(lines) != 2 || !strings.Contains(lines[0], " CHOWN ") {
		t.Errorf("want the two checks, CAP_ dropped for 80 columns:\n%s", out)
	}
}

// A process of the command that execs from a thread other than its leader
// (a Go program's exec may) keeps being followed: the kernel kills the leader,
// which is no end of the process.
func TestRecordCommandExecFromAThread(t *testing.T) {
	f := ownedFile(t)
	cmd := exec.Command(testutil.Binary(t), "record", "-o", "json", "--attach", firstMethod(t), "--", os.Args[0])
	cmd.Env = append(os.Environ(), "CAPSREC_HELPER=execthread:"+f)
	cmd.Stdin = strings.NewReader("go\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("record -- helper: %v\n%s", err, stderr.String())
	}
	if !bytes.Contains(out, []byte(`"CAP_CHOWN"`)) {
		t.Errorf("the chown exec'd from a thread was not recorded:\n%s\n%s", out, stderr.String())
	}
}
