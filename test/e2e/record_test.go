package e2e

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf/rlimit"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/capops"
	"github.com/capsrec/capsrec/internal/testutil"
	"github.com/capsrec/capsrec/session"
)

// The test binary doubles as a process that makes capability checks on cue:
// CAPSREC_HELPER=syslog:N makes N syslog(SIZE_BUFFER) calls (one CAP_SYSLOG check
// each under dmesg_restrict) and CAPSREC_HELPER=chown:PATH chowns PATH to uid 1234;
// both wait for a line on stdin first, so that the test knows the pid beforehand.
func TestMain(m *testing.M) {
	if h := os.Getenv("CAPSREC_HELPER"); h != "" {
		os.Exit(runHelper(h))
	}
	// Paths in these tests (testdata/, test/k8s/) are the repository's.
	if err := os.Chdir(testutil.Root()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func runHelper(spec string) int {
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	for action := range strings.SplitSeq(spec, ",") {
		parts := strings.Split(action, ":")
		switch parts[0] {
		case "syslog":
			n, _ := strconv.Atoi(parts[1])
			for range n {
				_, _, _ = syscall.Syscall(syscall.SYS_SYSLOG, 10, 0, 0)
			}
		case "chown":
			if err := os.Chown(parts[1], 1234, -1); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		case "seccomp", "inheritable": // see internal/capops
			op := map[string]func() error{"seccomp": capops.SeccompFilter, "inheritable": capops.RaiseInheritable}[parts[0]]
			if err := op(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		case "capsetrace": // capsetrace:N:FILE, see capops.RaiseInheritableRacing; FILE gets the raises that took
			n, _ := strconv.Atoi(parts[1])
			raised, err := capops.RaiseInheritableRacing(n)
			if err == nil {
				err = os.WriteFile(parts[2], []byte(strconv.Itoa(raised)), 0o644)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		case "execthread": // execthread:FILE: chown FILE, exec'd from a thread that is not the leader
			fmt.Fprintln(os.Stderr, execFromThread("chown", "65534", parts[1]))
			return 1
		case "listen": // accept and hang up on a unix socket until stdin closes
			l, err := net.Listen("unix", parts[1])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			_, _ = io.Copy(io.Discard, os.Stdin)
		}
	}
	return 0
}

// execFromThread execs argv from a thread other than the process's leader:
// the kernel then kills the leader, gives its pid to this thread, and goes on.
func execFromThread(argv ...string) error {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	done := make(chan error)
	var onThread func()
	onThread = func() {
		runtime.LockOSThread() // never unlocked: no other goroutine runs here
		if syscall.Gettid() == os.Getpid() {
			go onThread() // the leader: held here, try another thread
			select {}
		}
		done <- syscall.Exec(path, argv, os.Environ())
	}
	go onThread()
	return <-done
}

// helper is a started helper process, waiting for its cue.
type helper struct {
	cmd   *exec.Cmd
	stdin *os.File
}

// helperBinary copies the test binary to a world-readable place as name, so
// that uid 65534 can run it; the kernel's comm and binary are that name.
func helperBinary(t testing.TB, name string) string {
	t.Helper()
	if name == "" {
		name = "capsrec-helper"
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := filepath.Dir(dir); d != "/"; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				t.Fatal(err)
			}
		}
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func startHelper(t testing.TB, name string, uid uint32, actions string, env ...string) *helper {
	t.Helper()
	path := helperBinary(t, name)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path)
	cmd.Env = append(append(os.Environ(), "CAPSREC_HELPER="+actions), env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r, os.Stderr, os.Stderr
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	h := &helper{cmd: cmd, stdin: w}
	t.Cleanup(func() { w.Close(); _ = cmd.Wait() })
	return h
}

func (h *helper) pid() int { return h.cmd.Process.Pid }

// run cues the helper and waits for it to finish.
func (h *helper) run(t testing.TB) {
	t.Helper()
	fmt.Fprintln(h.stdin, "go")
	h.stdin.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

// dmesgRestrict sets kernel.dmesg_restrict=1 for the test, so that reading the
// kernel log needs CAP_SYSLOG even for root.
func dmesgRestrict(t testing.TB) {
	t.Helper()
	const knob = "/proc/sys/kernel/dmesg_restrict"
	old, err := os.ReadFile(knob)
	if err != nil {
		testutil.Skip(t, "no %s: %v", knob, err)
	}
	if err := os.WriteFile(knob, []byte("1"), 0o644); err != nil {
		t.Fatalf("setting dmesg_restrict: %v", err)
	}
	t.Cleanup(func() { _ = os.WriteFile(knob, old, 0o644) })
}

// methodsUnderTest are $CAPSREC_TEST_METHODS, or else every method that works here.
func methodsUnderTest(t *testing.T) []string {
	t.Helper()
	testutil.RequireRoot(t)
	if env := os.Getenv("CAPSREC_TEST_METHODS"); env != "" {
		return strings.Split(env, ",")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	var works []string
	for _, m := range core.Methods {
		if session.TryAttach(nil, m, false) == nil {
			works = append(works, string(m))
		}
	}
	if len(works) == 0 {
		testutil.Skip(t, "no attach method works on this kernel")
	}
	return works
}

// event is the part of a JSON event the tests look at.
type event struct {
	ProcessKprobe struct {
		Process struct {
			ExecID       string `json:"exec_id"`
			PID          int    `json:"pid"`
			UID          int    `json:"uid"`
			Binary       string `json:"binary"`
			Arguments    string `json:"arguments"`
			Cwd          string `json:"cwd"`
			ParentExecID string `json:"parent_exec_id"`
		} `json:"process"`
		Parent struct {
			ExecID string `json:"exec_id"`
			PID    int    `json:"pid"`
			Binary string `json:"binary"`
		} `json:"parent"`
		Args []struct {
			CapabilityArg *struct {
				Value int    `json:"value"`
				Name  string `json:"name"`
			} `json:"capability_arg"`
		} `json:"args"`
		Return struct {
			IntArg *int `json:"int_arg"`
		} `json:"return"`
		Capsrec map[string]any `json:"capsrec"`
	} `json:"process_kprobe"`
}

func decode(t *testing.T, line []byte) event {
	t.Helper()
	var ev event
	if err := json.Unmarshal(line, &ev); err != nil {
		t.Fatalf("bad JSON line %q: %v", line, err)
	}
	return ev
}

func (e event) cap() string {
	for _, a := range e.ProcessKprobe.Args {
		if a.CapabilityArg != nil {
			return a.CapabilityArg.Name
		}
	}
	return ""
}

func eventOf(t *testing.T, pid int, capName string) func([]byte) bool {
	return func(line []byte) bool {
		ev := decode(t, line)
		return ev.ProcessKprobe.Process.PID == pid && ev.cap() == capName
	}
}

func TestRecordDmesgAsNobodyIsDenied(t *testing.T) {
	for _, method := range methodsUnderTest(t) {
		t.Run(method, func(t *testing.T) {
			dmesgRestrict(t)
			s := testutil.Record(t, "-o", "json", "--attach", method, "--cap", "syslog,chown")
			dmesg := exec.Command("dmesg", "-r")
			dmesg.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			_ = dmesg.Run() // it fails: that is the point
			line := s.WaitFor("dmesg's CAP_SYSLOG", eventOf(t, dmesg.Process.Pid, "CAP_SYSLOG"))
			ev := decode(t, line)
			pk := ev.ProcessKprobe
			if pk.Return.IntArg == nil || *pk.Return.IntArg != -1 {
				t.Errorf("int_arg = %v, want -1 (denied)", pk.Return.IntArg)
			}
			if pk.Args[1].CapabilityArg.Value != 34 {
				t.Errorf("capability value = %d, want 34", pk.Args[1].CapabilityArg.Value)
			}
			if !strings.HasSuffix(pk.Process.Binary, "dmesg") || pk.Process.Arguments != "-r" || pk.Process.UID != 65534 {
				t.Errorf("process = %+v, want binary .../dmesg, arguments -r, uid 65534", pk.Process)
			}
			if pk.Parent.PID != os.Getpid() || pk.Process.ParentExecID != pk.Parent.ExecID || pk.Parent.ExecID == "" {
				t.Errorf("parent = %+v (process parent_exec_id %q), want the test process %d", pk.Parent, pk.Process.ParentExecID, os.Getpid())
			}
			if got := pk.Capsrec["attach"]; got != method {
				t.Errorf("capsrec.attach = %v, want %s", got, method)
			}
			// opts reach fexit and kprobe only: audit is reported there and left out on the tracepoint.
			if _, hasAudit := pk.Capsrec["audit"]; hasAudit != (method != "tracepoint") {
				t.Errorf("capsrec.audit present = %v on %s", hasAudit, method)
			}
			assertTetragonKeyPaths(t, line)
			assertSameShapeAsHost(t, line)

			// A granted check: root chowning a file to another uid.
			file := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(file, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			chown := exec.Command("chown", "1234", file)
			if out, err := chown.CombinedOutput(); err != nil {
				t.Fatalf("chown: %v %s", err, out)
			}
			ev = decode(t, s.WaitFor("chown's CAP_CHOWN", eventOf(t, chown.Process.Pid, "CAP_CHOWN")))
			if r := ev.ProcessKprobe.Return.IntArg; r == nil || *r != 0 {
				t.Errorf("chown int_arg = %v, want 0 (granted)", r)
			}
			if !strings.HasSuffix(ev.ProcessKprobe.Process.Binary, "chown") {
				t.Errorf("chown binary = %q", ev.ProcessKprobe.Process.Binary)
			}
			s.Stop(syscall.SIGINT)
			testutil.AssertNothingLeft(t)
		})
	}
}

var updateShape = flag.Bool("update-shape", false, "rewrite testdata/dmesg-event.shape from this kernel's event")

// methodSpecific are key paths that differ by attach method or by run, as the
// docs/record.md documents: opts reach fexit and kprobe only, arguments vary, and
// executable is there only where the binary was run by another name (busybox).
var methodSpecific = regexp.MustCompile(`^process_kprobe\.capsrec\.(audit|insetid|executable)$|\.arguments$`)

// assertSameShapeAsHost compares the event's key paths and types with those the
// host's tracepoint path produced (testdata/dmesg-event.shape), so that every
// kernel and method gives the same JSON.
func assertSameShapeAsHost(t *testing.T, line []byte) {
	t.Helper()
	var doc any
	if err := json.Unmarshal(line, &doc); err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{}
	keyPaths("", doc, paths)
	var lines []string
	for p, typ := range paths {
		if !methodSpecific.MatchString(p) {
			lines = append(lines, p+" "+typ)
		}
	}
	slices.Sort(lines)
	got := strings.Join(lines, "\n") + "\n"
	const golden = "testdata/dmesg-event.shape"
	if *updateShape {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("the event's shape differs from the host's (%s):\n%s", golden, lineDiff(string(want), got))
	}
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var d []string
	for _, l := range w {
		if !slices.Contains(g, l) {
			d = append(d, "- "+l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			d = append(d, "+ "+l)
		}
	}
	return strings.Join(d, "\n")
}

// keyPaths maps every key path of a JSON document ("process_kprobe.args[].capability_arg.name") to its JSON type.
func keyPaths(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		out[prefix] = "object"
		for k, child := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			keyPaths(p, child, out)
		}
	case []any:
		out[prefix] = "array"
		for _, child := range x {
			keyPaths(prefix+"[]", child, out)
		}
	case string:
		out[prefix] = "string"
	case float64:
		out[prefix] = "number"
	case bool:
		out[prefix] = "bool"
	case nil:
		out[prefix] = "null"
	}
}

// Fields of Tetragon's event capsrec cannot know for a host process:
// pod and docker exist only inside containers, and refcnt is Tetragon's own
// reference count of its process cache.
var notKnowableOnHost = regexp.MustCompile(`^process_kprobe\.(process|parent)\.(pod|docker|refcnt)(\.|$)`)

// assertTetragonKeyPaths checks that every key path of Tetragon's real event
// is in capsrec's event with the same JSON type, so jq programs carry over.
func assertTetragonKeyPaths(t *testing.T, line []byte) {
	t.Helper()
	ref, err := os.ReadFile("testdata/tetragon-cap_capable-event.json")
	if err != nil {
		t.Fatal(err)
	}
	var refDoc, gotDoc any
	if err := json.Unmarshal(ref, &refDoc); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(line, &gotDoc); err != nil {
		t.Fatal(err)
	}
	want, got := map[string]string{}, map[string]string{}
	keyPaths("", refDoc, want)
	keyPaths("", gotDoc, got)
	var missing []string
	for p, typ := range want {
		if notKnowableOnHost.MatchString(p) {
			continue
		}
		if got[p] != typ {
			missing = append(missing, fmt.Sprintf("%s (%s, got %q)", p, typ, got[p]))
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("Tetragon key paths missing or of another type in capsrec's event:\n%s\nevent: %s", strings.Join(missing, "\n"), line)
	}
}

// --btf: a kernel without /sys/kernel/btf/vmlinux gets its BTF from a file (BTFHub's);
// then kprobe and raw tracepoints carry the session. A copy of the running kernel's
// BTF stands in for BTFHub's here.
func TestRecordWithExternalBTF(t *testing.T) {
	if !slices.Contains(methodsUnderTest(t), "kprobe") {
		t.Skip("kprobe is not among the methods under test on this kernel")
	}
	data, err := os.ReadFile("/sys/kernel/btf/vmlinux")
	if err != nil {
		testutil.Skip(t, "no kernel BTF to copy: %v", err)
	}
	file := filepath.Join(t.TempDir(), "vmlinux.btf")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dmesgRestrict(t)
	t.Setenv("CAPSREC_BTF", file) // --btf's environment variable
	s := testutil.Record(t, "-o", "json", "--cap", "syslog")
	dmesg := exec.Command("dmesg")
	dmesg.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	_ = dmesg.Run()
	ev := decode(t, s.WaitFor("dmesg's CAP_SYSLOG", eventOf(t, dmesg.Process.Pid, "CAP_SYSLOG")))
	pk := ev.ProcessKprobe
	if pk.Capsrec["attach"] != "kprobe" || !strings.HasSuffix(pk.Process.Binary, "dmesg") || pk.Parent.PID != os.Getpid() {
		t.Errorf("with --btf: attach %v, binary %q, parent %d", pk.Capsrec["attach"], pk.Process.Binary, pk.Parent.PID)
	}
	s.Stop(syscall.SIGINT)
	testutil.AssertNothingLeft(t)
}
