package main

import (
	"compress/gzip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/capsrec/capsrec/internal/testutil"
)

// Every bad input ends with one clear line on stderr and a non-zero exit.
func TestBadInputOneLine(t *testing.T) {
	notBTF := t.TempDir() + "/not-btf"
	if err := os.WriteFile(notBTF, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"record", "--cap", "CAP_NOPE"}, `unknown capability "CAP_NOPE"`},
		{[]string{"record", "--cap", "41"}, `unknown capability "41"`},
		{[]string{"record", "-o", "yaml"}, `unknown output format "yaml"`},
		{[]string{"record", "--color", "sometimes"}, `unknown --color "sometimes"`},
		{[]string{"record", "--attach", "uprobe"}, `unknown attach method "uprobe"`},
		{[]string{"record", "--denied", "--granted"}, "exclude each other"},
		{[]string{"record", "--ring-buffer", "3"}, "--ring-buffer 3"},
		{[]string{"record", "--pid", "0"}, "--pid 0 is not a process id"},
		{[]string{"record", "--pid", "abc"}, "invalid value"},
		{[]string{"record", "--binary", "[dmesg"}, `--binary "[dmesg"`},
		{[]string{"record", "--comm", "a-very-long-comm-name"}, "longer than"},
		{[]string{"record", "--count", "-1"}, "--count -1"},
		{[]string{"record", "--duration", "soon"}, "invalid value"},
		{[]string{"record", "stray"}, "takes no arguments"},
		{[]string{"record", "--no-such-flag"}, "flag provided but not defined"},
		{[]string{"--btf", "/nonexistent/vmlinux", "record"}, "--btf /nonexistent/vmlinux"},
		{[]string{"--btf", notBTF, "record"}, "--btf " + notBTF},
		{[]string{"nosuchcommand"}, "No help topic"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			assertOneLineError(t, exec.Command(testutil.Binary(t), c.args...), c.want)
		})
	}
}

func assertOneLineError(t *testing.T, cmd *exec.Cmd, want string) {
	t.Helper()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); !ok {
		t.Fatalf("want a non-zero exit, got %v", err)
	}
	msg := strings.TrimRight(stderr.String(), "\n")
	if strings.Contains(msg, "\n") || !strings.Contains(msg, want) || strings.Contains(msg, "panic") {
		t.Errorf("stderr = %q, want one line containing %q", msg, want)
	}
}

func TestNotRootIsOneLine(t *testing.T) {
	testutil.RequireRoot(t) // to become uid 65534
	bin := helperBinary(t, "capsrec")
	data, err := os.ReadFile(testutil.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "record")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	assertOneLineError(t, cmd, "record needs root")
}

// Methods this kernel lacks (CAPSREC_TEST_UNAVAILABLE_METHODS, set by .ci/run
// from what the machine's kernel is known to lack) fail with one line.
func TestUnavailableMethodIsOneLine(t *testing.T) {
	testutil.RequireRoot(t)
	env := os.Getenv("CAPSREC_TEST_UNAVAILABLE_METHODS")
	if env == "" {
		testutil.Skip(t, "CAPSREC_TEST_UNAVAILABLE_METHODS names no method this kernel lacks")
	}
	for _, m := range strings.Split(env, ",") {
		t.Run(m, func(t *testing.T) {
			assertOneLineError(t, exec.Command(testutil.Binary(t), "record", "--attach", m), m+": ")
			testutil.AssertNothingLeft(t)
		})
	}
}

// Hostile files for profile, --check and --btf: one FILE:LINE: reason line, a
// non-zero exit, and memory bounded however large the input would grow.
func TestHostileFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	long := write("long.txt", []byte(strings.Repeat("x", 3<<20)))
	deep := write("deep.txt", []byte(strings.Repeat("[", 10_000_000)))
	xs := write("xs.txt", []byte(strings.Repeat("x\n", 5_000_000)))
	// 1 GB of zeros with no newline, as 1 MB of gzip.
	var bomb strings.Builder
	zw := gzip.NewWriter(&bomb)
	chunk := make([]byte, 1<<20)
	for range 1024 {
		_, _ = zw.Write(chunk)
	}
	_ = zw.Close()
	zeros := write("zeros.gz", []byte(bomb.String()))
	empty := write("empty.json", nil)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"profile", long}, long + ":1: a line longer than 1048576 bytes"},
		{[]string{"profile", deep}, deep + ":1: invalid JSON: nested deeper than 64"},
		{[]string{"profile", xs}, xs + ":1: invalid JSON"},
		{[]string{"profile", zeros}, zeros + ":1: a line longer than"},
		{[]string{"profile", "/dev/zero"}, "/dev/zero: not a regular file but a character device"},
		{[]string{"profile", "--check", "/dev/zero", empty}, "/dev/zero: not a regular file"},
		{[]string{"profile", dir}, dir + ": not a regular file but a directory"},
		{[]string{"--btf", "/dev/zero", "record"}, "--btf /dev/zero: /dev/zero: not a regular file"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			cmd := exec.Command(testutil.Binary(t), c.args...)
			assertOneLineError(t, cmd, c.want)
			if rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss; rss > 200<<10 {
				t.Errorf("peak RSS %d KiB, want under 200 MiB", rss)
			}
		})
	}
}
