package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/capsrec/capsrec/internal/testutil"
)

// A check carries only what changes per check; the thread's context comes in
// a record of its own, sent when it changes. These tests change the context
// between two checks in every way a thread can, and lose records on purpose,
// and require each check to show the context it was made under.

// contextWorkerEnv makes this test binary the worker: it makes one CAP_SYSLOG
// check per step, changing its context between steps, and prints what each
// check must show.
const contextWorkerEnv = "CAPSREC_TEST_CONTEXT_WORKER"

type contextStep struct {
	UID, EUID  uint32
	Net, UTS   uint64
	PidForKids uint64 // 0: changed, unknown until a child runs (pid_for_children has no link yet)
	Cgroup     uint64
	Exec       bool // the check comes from the program exec'd last
}

func init() {
	switch os.Getenv(contextWorkerEnv) {
	case "steps":
		contextWorkerSteps()
	case "toggle":
		contextWorkerToggle()
	}
}

func syslogCheck() { _, _ = unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil) }

func nsIno(name string) uint64 {
	var st unix.Stat_t
	if unix.Stat("/proc/thread-self/ns/"+name, &st) != nil {
		return 0
	}
	return st.Ino
}

func contextWorkerSteps() {
	runtime.LockOSThread() // namespaces and credentials below are this thread's
	fail := func(err error) { fmt.Fprintln(os.Stderr, "worker:", err); os.Exit(1) }
	out := json.NewEncoder(os.Stdout)
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // the recorder is ready
	var cg unix.Stat_t
	cgroup := os.Getenv("CAPSREC_TEST_CGROUP")
	if err := unix.Stat(cgroup, &cg); err != nil {
		fail(err)
	}
	here := func() contextStep {
		return contextStep{UID: uint32(unix.Getuid()), EUID: uint32(unix.Geteuid()), Net: nsIno("net"), UTS: nsIno("uts"), PidForKids: nsIno("pid_for_children")}
	}
	step := func(s contextStep) { syslogCheck(); _ = out.Encode(s) }
	step(here())
	if err := unix.Unshare(unix.CLONE_NEWNET | unix.CLONE_NEWUTS); err != nil {
		fail(err)
	}
	step(here())
	if err := unix.Unshare(unix.CLONE_NEWPID); err != nil {
		fail(err)
	}
	step(here())
	if err := os.WriteFile(filepath.Join(cgroup, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		fail(err)
	}
	s := here()
	s.Cgroup = cg.Ino
	step(s)
	// This thread only: the raw system call, not Go's all-threads setresuid.
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, 65534, 65534, 65534); e != 0 {
		fail(e)
	}
	s = here()
	s.Cgroup = cg.Ino
	step(s)
	s.Exec = true
	_ = out.Encode(s)
	dmesg, err := exec.LookPath("dmesg")
	if err != nil {
		fail(err)
	}
	fail(syscall.Exec(dmesg, []string{"dmesg"}, os.Environ()))
}

// contextWorkerToggle flips its effective uid between 0 and 65534 with a
// check after each flip: a granted check must show euid 0, a denied one 65534.
func contextWorkerToggle() {
	runtime.LockOSThread()
	n, _ := strconv.Atoi(os.Getenv("CAPSREC_TEST_TOGGLES"))
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	for range n {
		for _, euid := range []int{65534, 0} {
			if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), uintptr(euid), ^uintptr(0)); e != 0 {
				fmt.Fprintln(os.Stderr, "worker:", e)
				os.Exit(1)
			}
			syslogCheck()
		}
	}
	os.Exit(0)
}

// startWorker starts this test binary as a worker, waiting for a line on stdin.
func startWorker(t *testing.T, mode string, env ...string) (*exec.Cmd, *os.File, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), contextWorkerEnv+"="+mode), env...)
	cmd.Stderr = os.Stderr
	stdin, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = stdin
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, w, bufio.NewScanner(out)
}

// scratchCgroup makes a cgroup v2 directory for the test, removed after it.
func scratchCgroup(t testing.TB) string {
	t.Helper()
	root := ""
	for _, r := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var st unix.Statfs_t
		if unix.Statfs(r, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			root = r
			break
		}
	}
	if root == "" {
		t.Fatal("no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
	}
	dir, err := os.MkdirTemp(root, "capsrec-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(dir) })
	return dir
}

func TestContextChangesBetweenChecks(t *testing.T) {
	testutil.RequireRoot(t)
	dmesgRestrict(t)
	for _, method := range methodsUnderTest(t) {
		t.Run(method, func(t *testing.T) {
			cgroup := scratchCgroup(t)
			worker, start, out := startWorker(t, "steps", "CAPSREC_TEST_CGROUP="+cgroup)
			s := testutil.Record(t, "--attach", method, "-o", "json", "--cap", "syslog", "--pid", strconv.Itoa(worker.Process.Pid))
			_, _ = start.Write([]byte("go\n"))
			start.Close()
			var want []contextStep
			for out.Scan() {
				var st contextStep
				if err := json.Unmarshal(out.Bytes(), &st); err != nil {
					t.Fatal(err)
				}
				want = append(want, st)
			}
			_ = worker.Wait()
			s.WaitFor("the exec'd dmesg's check", func(l []byte) bool {
				var ev map[string]any
				_ = json.Unmarshal(l, &ev)
				binary, _ := jsonPath(ev, "process_kprobe.process.binary")
				return strings.Contains(fmt.Sprint(binary), "dmesg") || strings.Contains(fmt.Sprint(binary), "busybox")
			})
			s.Stop(syscall.SIGINT)
			if len(want) != 6 {
				t.Fatalf("the worker gave %d steps, want 6", len(want))
			}
			got := s.Lines()
			if len(got) < len(want) {
				t.Fatalf("%d checks recorded, want at least %d:\n%s", len(got), len(want), lines(s))
			}
			for i, w := range want {
				checkStep(t, i, w, got[i], want)
			}
		})
	}
}

func checkStep(t *testing.T, i int, w contextStep, line []byte, all []contextStep) {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(line, &ev); err != nil {
		t.Fatal(err)
	}
	num := func(path string) uint64 {
		v, _ := jsonPath(ev, path)
		f, _ := v.(float64)
		return uint64(f)
	}
	binary, _ := jsonPath(ev, "process_kprobe.process.binary")
	errorf := func(format string, args ...any) {
		t.Errorf("step %d: "+format+"\n%s", append([]any{i}, append(args, line)...)...)
	}
	if got := num("process_kprobe.process.uid"); got != uint64(w.UID) {
		errorf("uid %d, want %d", got, w.UID)
	}
	if got := num("process_kprobe.capsrec.euid"); got != uint64(w.EUID) {
		errorf("euid %d, want %d", got, w.EUID)
	}
	if got := num("process_kprobe.process.ns.net.inum"); got != w.Net {
		errorf("net ns %d, want %d", got, w.Net)
	}
	if got := num("process_kprobe.process.ns.uts.inum"); got != w.UTS {
		errorf("uts ns %d, want %d", got, w.UTS)
	}
	pidc := num("process_kprobe.process.ns.pid_for_children.inum")
	switch {
	case w.PidForKids != 0 && pidc != w.PidForKids:
		errorf("pid_for_children ns %d, want %d", pidc, w.PidForKids)
	case w.PidForKids == 0 && (pidc == 0 || pidc == all[0].PidForKids):
		errorf("pid_for_children ns %d, want a new one", pidc)
	}
	if w.Cgroup != 0 {
		if got := num("process_kprobe.capsrec.cgroup_id"); got != w.Cgroup {
			errorf("cgroup id %d, want %d", got, w.Cgroup)
		}
	}
	if isWorker := strings.HasSuffix(fmt.Sprint(binary), filepath.Base(os.Args[0])); isWorker == w.Exec {
		errorf("binary %v after exec=%v", binary, w.Exec)
	}
}

// A ring buffer overflowing under a reader that does not read loses checks
// and contexts; what is printed still shows, every time, the context it was
// made under: a granted check euid 0 and its capabilities, a denied one
// euid 65534 and none.
func TestContextAfterLostRecords(t *testing.T) {
	testutil.RequireRoot(t)
	dmesgRestrict(t)
	for _, method := range methodsUnderTest(t) {
		t.Run(method, func(t *testing.T) {
			worker, start, _ := startWorker(t, "toggle", "CAPSREC_TEST_TOGGLES=20000")
			gate := make(chan struct{})
			s := testutil.RecordGated(t, gate, "--attach", method, "-o", "json", "--cap", "syslog", "--ring-buffer", "4",
				"--pid", strconv.Itoa(worker.Process.Pid))
			_, _ = start.Write([]byte("go\n"))
			start.Close()
			_ = worker.Wait()
			close(gate)
			s.Stop(syscall.SIGINT)
			if !strings.Contains(s.Stderr(), " lost") || strings.Contains(s.Stderr(), " 0 lost") {
				t.Errorf("the ring buffer did not overflow, so nothing was tested:\n%s", s.Stderr())
			}
			var granted, denied int
			for _, l := range s.Lines() {
				var ev map[string]any
				if err := json.Unmarshal(l, &ev); err != nil {
					t.Fatal(err)
				}
				ret, _ := jsonPath(ev, "process_kprobe.return.int_arg")
				euid, _ := jsonPath(ev, "process_kprobe.capsrec.euid")
				effective, _ := jsonPath(ev, "process_kprobe.process.cap.effective")
				list, _ := effective.([]any)
				hasCaps := len(list) > 0
				if ret == float64(0) {
					granted++
					if euid != float64(0) || !hasCaps {
						t.Fatalf("a granted check shown with euid %v, effective capabilities %v: %s", euid, hasCaps, l)
					}
				} else {
					denied++
					if euid != float64(65534) || hasCaps {
						t.Fatalf("a denied check shown with euid %v, effective capabilities %v: %s", euid, hasCaps, l)
					}
				}
			}
			if granted == 0 || denied == 0 {
				t.Errorf("%d granted and %d denied checks printed: want both", granted, denied)
			}
		})
	}
}
