package e2e

import (
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

	"github.com/capsrec/capsrec/internal/fakecri"
	"github.com/capsrec/capsrec/internal/testutil"
)

// Production nodes are mostly pure cgroup v2 with kubelet's systemd driver.
// vmtest boots a kernel with cgroup v2 only and sets CAPSREC_REQUIRE_CGROUP2;
// this machine's cgroups are v1 (hybrid), where the test cannot run.
func requireCgroup2(t *testing.T) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return
	}
	if os.Getenv("CAPSREC_REQUIRE_CGROUP2") != "" {
		t.Fatal("CAPSREC_REQUIRE_CGROUP2 is set, but /sys/fs/cgroup is not cgroup v2")
	}
	t.Skip("/sys/fs/cgroup is not pure cgroup v2 here: vmtest runs this test in a cgroup v2 guest")
}

// A process in a systemd-driver pod path, described by a small CRI server:
// pod identity, --pod filtering in the kernel and the profile work as with
// containerd on cgroupfs; also for a recorder in a cgroup namespace of its
// own, as kubectl capsrec's node pod is on such nodes.
func TestPureCgroupV2Pod(t *testing.T) {
	testutil.RequireRoot(t)
	requireCgroup2(t)
	const root = "/sys/fs/cgroup"
	podUID := "0b6e1c4a-8d4b-4c53-9a7e-2f1d3c5b7a90"
	id := strings.Repeat("5f3c9a7e", 8)
	slice := "kubepods-besteffort-pod" + strings.ReplaceAll(podUID, "-", "_") + ".slice"
	scope := filepath.Join(root, "kubepods.slice", "kubepods-besteffort.slice", slice, "cri-containerd-"+id+".scope")
	recorderCg := filepath.Join(root, "capsrec-recorder")
	for _, d := range []string{scope, recorderCg} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{scope, filepath.Dir(scope), filepath.Dir(filepath.Dir(scope)), filepath.Join(root, "kubepods.slice"), recorderCg} {
			_ = os.Remove(d)
		}
	})
	// The container's first process, as the runtime reports it.
	first := exec.Command("sleep", "600")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Process.Kill(); _ = first.Wait() })
	moveTo(t, scope, first.Process.Pid)
	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", fakecri.Start(t, fakecri.Container{
		ID: id, Name: "spaceship", Image: "docker.io/library/xwing-test:1", PID: uint32(first.Process.Pid),
		CgroupsPath: slice + ":cri-containerd:" + id, SandboxID: strings.Repeat("ab", 32),
		Pod: "xwing", Namespace: "default", UID: podUID, Labels: map[string]string{"app.kubernetes.io/name": "xwing"},
	}))

	for _, mode := range []struct{ name, nsRoot string }{{"host cgroup namespace", ""}, {"own cgroup namespace", recorderCg}} {
		t.Run(mode.name, func(t *testing.T) {
			compact := recordIn(t, mode.nsRoot, "--pod", "xwing", "--color", "never")
			events := recordIn(t, mode.nsRoot, "--pod", "xwing", "-o", "json")
			// The pod's workload: dmesg (CAP_SYSLOG) and a chown (CAP_CHOWN); the same outside the pod must not show.
			dir := t.TempDir() // a new file: rewriting one that uid 1 owns would need CAP_DAC_OVERRIDE
			runIn(t, scope, "dmesg >/dev/null; echo x >"+dir+"/pod; chown 1 "+dir+"/pod")
			runIn(t, "", "dmesg >/dev/null; echo x >"+dir+"/host; chown 1 "+dir+"/host")
			compact.WaitFor("the pod's chown", func(l []byte) bool {
				return strings.Contains(string(l), "default/xwing/spaceship") && strings.Contains(string(l), "CAP_CHOWN")
			})
			events.WaitFor("the pod's chown", func(l []byte) bool { return strings.Contains(string(l), "CAP_CHOWN") })
			compact.Stop(syscall.SIGINT)
			events.Stop(syscall.SIGINT)
			var sawSyslog bool
			for _, l := range compact.Lines() {
				if !strings.Contains(string(l), "default/xwing/spaceship") {
					t.Errorf("a check outside the pod passed --pod xwing: %s", l)
				}
				// busybox's sh runs its applets through /proc/self/exe: dmesg shows as exe.
				sawSyslog = sawSyslog || strings.Contains(string(l), "CAP_SYSLOG")
			}
			if !sawSyslog {
				t.Errorf("no CAP_SYSLOG check of the pod's dmesg:\n%s", lines(compact))
			}
			file := filepath.Join(t.TempDir(), "events.json")
			if err := os.WriteFile(file, []byte(lines(events)), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(testutil.Binary(t), "profile", "-o", "yaml", file).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "namespace: default, workload: xwing, container: spaceship") ||
				!strings.Contains(string(out), "add: [CHOWN, SYSLOG]") {
				t.Errorf("profile: %v; want xwing's spaceship to add CHOWN and SYSLOG:\n%s", err, out)
			}
		})
	}
}

func moveTo(t *testing.T, cgroup string, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(cgroup, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatalf("moving %d to %s: %v", pid, cgroup, err)
	}
}

// recordIn starts capsrec record; with nsRoot, in that cgroup and in a cgroup
// namespace rooted there.
func recordIn(t *testing.T, nsRoot string, args ...string) *testutil.Session {
	t.Helper()
	if nsRoot == "" {
		return testutil.Record(t, args...)
	}
	ready := filepath.Join(t.TempDir(), "ready")
	// The shell moves itself, then this test binary unshares the cgroup namespace and execs capsrec.
	script := `echo $$ >"$1/cgroup.procs" && shift && exec "$@"`
	t.Setenv(cgroupnsExecEnv, "1")
	full := append([]string{"-c", script, "sh", nsRoot, os.Args[0], testutil.Binary(t), "record", "--ready-file", ready}, args...)
	return testutil.StartReady(t, nil, ready, "sh", full...)
}

// cgroupnsExecEnv makes this test binary a tiny unshare -C (busybox's has no
// -C): it enters a new cgroup namespace, rooted at its cgroup, and execs its arguments.
const cgroupnsExecEnv = "CAPSREC_TEST_CGROUPNS_EXEC"

func init() {
	if os.Getenv(cgroupnsExecEnv) == "" || len(os.Args) < 2 {
		return
	}
	runtime.LockOSThread() // the namespace is this thread's, and exec keeps it
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		fmt.Fprintln(os.Stderr, "unshare(CLONE_NEWCGROUP):", err)
		os.Exit(1)
	}
	os.Unsetenv(cgroupnsExecEnv)
	err := syscall.Exec(os.Args[1], os.Args[1:], os.Environ())
	fmt.Fprintln(os.Stderr, "exec:", err)
	os.Exit(1)
}

// runIn runs a shell command in cgroup ("" : where the test is), moved there before it starts.
func runIn(t *testing.T, cgroup, command string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", "read go; "+command)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if cgroup != "" {
		moveTo(t, cgroup, cmd.Process.Pid)
	}
	_, _ = stdin.Write([]byte("go\n"))
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v %s", command, err, out.String())
	}
}

func lines(s *testutil.Session) string {
	var b strings.Builder
	for _, l := range s.Lines() {
		b.Write(l)
		b.WriteByte('\n')
	}
	return b.String()
}
