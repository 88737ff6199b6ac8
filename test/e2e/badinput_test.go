package e2e

import (
	"compress/gzip"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
		{[]string{"nosuchcommand"}, `"nosuchcommand" is not a command (commands: record, profile`},
		{[]string{"recrod"}, `"recrod" is not a command: did you mean record?`},
		{[]string{"record", "--caps", "syslog"}, "did you mean --cap?"},
		// A bare socket path is taken, as crictl takes it; so are global flags after the subcommand.
		{[]string{"record", "-r", "/nonexistent.sock", "--pod", "x"}, "runtime endpoint /nonexistent.sock: stat /nonexistent.sock"},
		{[]string{"profile", "--btf", "/nonexistent/vmlinux", "--live"}, "--btf /nonexistent/vmlinux"},
		{[]string{"profile", "--no-such-flag"}, "flag provided but not defined"},
		{[]string{"profile", "--interval", "1m", notBTF}, "--interval goes with --live"},
		{[]string{"profile", "--duration", "1m", notBTF}, "--duration goes with --live"},
		{[]string{"record", "--runtime-binary", "/nonexistent/runc"}, "--runtime-binary /nonexistent/runc"},
		{[]string{"record", "--runtime-binary", "/tmp"}, "--runtime-binary /tmp: not a regular file"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			assertOneLineError(t, exec.Command(testutil.Binary(t), c.args...), c.want)
		})
	}
}

// assertOneLineError runs cmd, which must fail within a minute with one line on
// stderr containing want, and nothing on stdout (no usage text).
func assertOneLineError(t *testing.T, cmd *exec.Cmd, want string) {
	t.Helper()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	hung := time.AfterFunc(time.Minute*testutil.Slow(), func() { _ = cmd.Process.Kill() })
	err := cmd.Wait()
	if !hung.Stop() {
		t.Fatalf("%v hung (killed after a minute)", cmd.Args)
	}
	if _, ok := err.(*exec.ExitError); !ok {
		t.Fatalf("want a non-zero exit, got %v", err)
	}
	msg := strings.TrimRight(stderr.String(), "\n")
	if strings.Contains(msg, "\n") || !strings.Contains(msg, want) || strings.Contains(msg, "panic") {
		t.Errorf("stderr = %q, want one line containing %q", msg, want)
	}
	if stdout.Len() > 0 {
		t.Errorf("stdout = %q, want nothing", stdout.String())
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

	// Root without the BPF capabilities (a container without them): said as such,
	// not blamed on RLIMIT_MEMLOCK.
	assertOneLineError(t, exec.Command("setpriv", "--bounding-set", "-all", "--inh-caps", "-all", bin, "record"),
		"record needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN")
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
			want := m + ": "
			if m == "kprobe" { // the true reason, not the tracefs fallback's complaint
				want = "kprobe: this kernel has no kprobes"
			}
			assertOneLineError(t, exec.Command(testutil.Binary(t), "record", "--attach", m), want)
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
	deep := write("deep.txt", []byte(strings.Repeat("[", 5_000_000)))
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
	indented := write("indented.json", []byte("{\n"+strings.Repeat(" \"k\": 1,\n", 2_000_000)+" \"k\": 1\n}\n"))
	fifo := dir + "/fifo"
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	event := func(value string) string {
		return write("cap"+value+".json", []byte(`{"process_kprobe":{"function_name":"cap_capable","args":[{"capability_arg":{"value":`+value+`}}],"return":{"int_arg":0}}}`+"\n"))
	}
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
		{[]string{"profile", indented}, indented + ": indented JSON larger than 8 MiB"},
		{[]string{"--btf", "/dev/zero", "record"}, "--btf /dev/zero: /dev/zero: not a regular file"},
		// A FIFO is refused before it is opened: opening it would wait for a writer.
		{[]string{"profile", fifo}, fifo + ": not a regular file but a named pipe"},
		{[]string{"profile", "--check", fifo, empty}, fifo + ": not a regular file but a named pipe"},
		{[]string{"--btf", fifo, "record"}, fifo + ": not a regular file but a named pipe"},
		// Capability numbers must be kernel capability numbers.
		{[]string{"profile", event("9999")}, "capability 9999 out of range (0 to 63)"},
		{[]string{"profile", event("-5")}, "capability -5 out of range"},
		{[]string{"profile", event("9223372036854775808")}, "bad number"},
		{[]string{"profile", event("1.5")}, "not a whole number: 1.5"},
	}
	// doctor reports the BTF it was given in its table, without waiting on it.
	for _, env := range []string{"", "CAPSREC_BTF=" + fifo} {
		cmd := exec.Command(testutil.Binary(t), "doctor")
		if env == "" {
			cmd.Args = append(cmd.Args[:1], "--btf", fifo, "doctor")
		}
		cmd.Env = append(os.Environ(), env)
		cmd.WaitDelay = time.Second
		done := time.AfterFunc(time.Minute*testutil.Slow(), func() { _ = cmd.Process.Kill() })
		out, _ := cmd.CombinedOutput()
		if !done.Stop() {
			t.Errorf("doctor with the BTF %q hung", fifo)
		}
		if !strings.Contains(string(out), fifo+": not a regular file but a named pipe") {
			t.Errorf("doctor (%s) does not say the BTF is a FIFO:\n%s", env, out)
		}
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

// --ready-file is checked before anything is attached, named as given; a stale
// one from an earlier run is removed at start.
func TestReadyFile(t *testing.T) {
	testutil.RequireRoot(t)
	assertOneLineError(t, exec.Command(testutil.Binary(t), "record", "--ready-file", "/nonexistent/dir/ready"),
		"--ready-file /nonexistent/dir/ready: cannot write in /nonexistent/dir")
	testutil.AssertNothingLeft(t)

	// Whatever is not a file at the path stays: a device node, a socket, a FIFO, a directory.
	dir := t.TempDir()
	others := map[string]string{"null": "a character device", "sock": "a socket", "fifo": "a named pipe", "dir": "a directory"}
	if err := syscall.Mknod(dir+"/null", syscall.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", dir+"/sock")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := syscall.Mkfifo(dir+"/fifo", 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir+"/dir", 0o755); err != nil {
		t.Fatal(err)
	}
	for name, kind := range others {
		path := dir + "/" + name
		before, _ := os.Lstat(path)
		assertOneLineError(t, exec.Command(testutil.Binary(t), "record", "--ready-file", path),
			"--ready-file "+path+": "+kind+" is there; only a file is replaced")
		if after, err := os.Lstat(path); err != nil || !os.SameFile(before, after) {
			t.Errorf("--ready-file %s: %s was removed or replaced", path, kind)
		}
	}
	testutil.AssertNothingLeft(t)

	ready := t.TempDir() + "/ready"
	if err := os.WriteFile(ready, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testutil.Binary(t), "record", "--ready-file", ready, "--duration", "3s")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Signal(syscall.SIGINT)
	deadline := time.Now().Add(10 * time.Second * testutil.Slow())
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(ready); err == nil && string(b) == strconv.Itoa(cmd.Process.Pid)+"\n" {
			return
		} else if err == nil && string(b) == "1\n" && time.Since(deadline.Add(-10*time.Second*testutil.Slow())) > 2*time.Second {
			t.Fatalf("the stale ready file is still there after 2 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no ready file with capsrec's pid")
}

// record --help says each default once; --ring-buffer says what it costs.
func TestRecordHelp(t *testing.T) {
	out, err := exec.Command(testutil.Binary(t), "record", "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Count(line, "(default:") > 1 {
			t.Errorf("two defaults: %s", line)
		}
		if strings.Contains(line, "--ring-buffer") && !strings.Contains(line, "RSS") {
			t.Errorf("--ring-buffer does not say its memory cost: %s", line)
		}
	}
}

// Output that cannot be written (> /dev/full) is an error, and not counted as printed.
func TestRecordToFullDevice(t *testing.T) {
	testutil.RequireRoot(t)
	dmesgRestrict(t)
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		testutil.Skip(t, "no /dev/full: %v", err)
	}
	defer full.Close()
	h := startHelper(t, "", 65534, "syslog:3")
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(testutil.Binary(t), "record", "--pid", strconv.Itoa(h.pid()), "--cap", "syslog", "--duration", "5s", "--ready-file", ready)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = full, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Its ready file, not a fixed wait: a busy machine attaches slowly.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ready file after 30 s:\n%s", stderr.String())
		}
	}
	h.run(t)
	if err := cmd.Wait(); err == nil {
		t.Errorf("capsrec > /dev/full exited 0:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "0 printed") || !strings.Contains(stderr.String(), "not written (writing stdout failed)") {
		t.Errorf("the summary counts unwritten checks as printed:\n%s", stderr.String())
	}
}

// Output to a regular file is written whole at the end of a busy session,
// however long the disk takes (up to a minute): no line is lost to a "stalled
// reader", which a file is not.
func TestRecordToRegularFile(t *testing.T) {
	testutil.RequireRoot(t)
	dmesgRestrict(t)
	out, err := os.Create(filepath.Join(t.TempDir(), "out.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	h := startHelper(t, "", 0, "syslog:200000")
	cmd := exec.Command(testutil.Binary(t), "record", "-o", "json", "--pid", strconv.Itoa(h.pid()), "--cap", "syslog", "--duration", "4s")
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second * testutil.Slow())
	h.run(t)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "stalled") || strings.Contains(stderr.String(), "not written") {
		t.Errorf("writing a file counted as a stalled reader:\n%s", stderr.String())
	}
}
