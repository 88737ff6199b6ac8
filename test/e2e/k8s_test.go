package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/capsrec/capsrec/internal/testutil"
)

// K8sEnvVar names the env file test/k8s/up.sh writes (KUBECONFIG, KUBECTL,
// CRI_SOCK, ...); .ci/run brings the cluster up and sets it, and then a test
// that needs the cluster fails rather than skips when it is missing.
const K8sEnvVar = "CAPSREC_K8S_ENV"

type k8sCluster struct {
	env map[string]string
}

func k8sUp(t *testing.T) *k8sCluster {
	t.Helper()
	testutil.RequireRoot(t)
	path := os.Getenv(K8sEnvVar)
	if path == "" {
		if os.Getenv("CAPSREC_REQUIRE_K8S") != "" {
			t.Fatalf("CAPSREC_REQUIRE_K8S is set, but %s is not: the cluster did not come up", K8sEnvVar)
		}
		t.Skipf("no Kubernetes cluster: run `bash test/k8s/up.sh up` and set %s to its env file", K8sEnvVar)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", K8sEnvVar, err)
	}
	defer f.Close()
	c := &k8sCluster{env: map[string]string{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			c.env[k] = v
		}
	}
	for _, k := range []string{"KUBECONFIG", "KUBECTL", "CRI_SOCK"} {
		if c.env[k] == "" {
			t.Fatalf("%s lacks %s", path, k)
		}
	}
	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", "unix://"+c.env["CRI_SOCK"])
	return c
}

func (c *k8sCluster) kubectl(args ...string) *exec.Cmd {
	cmd := exec.Command(c.env["KUBECTL"], append([]string{"--kubeconfig", c.env["KUBECONFIG"]}, args...)...)
	return cmd
}

// The seed scenario on a real node: `kubectl exec xwing -- dmesg` while
// `capsrec record --pod xwing` runs prints dmesg's CAP_SYSLOG denials and
// nothing else; --all adds runc's setup of the exec and the kernel's probes,
// marked.
func TestK8sSeedScenario(t *testing.T) {
	c := k8sUp(t)
	dmesgRestrict(t)

	s := testutil.Record(t, "--color", "never", "--pod", "xwing")
	all := testutil.Record(t, "--color", "never", "--pod", "xwing", "--all")
	out, err := c.kubectl("exec", "xwing", "-c", "spaceship", "--", "dmesg").CombinedOutput()
	if err == nil {
		t.Fatalf("kubectl exec xwing -- dmesg succeeded: %s", out)
	}
	isDmesgDenial := func(l []byte) bool {
		return strings.Contains(string(l), "default/xwing/spaceship") && strings.Contains(string(l), " dmesg[") &&
			strings.Contains(string(l), "CAP_SYSLOG") && strings.Contains(string(l), "denied")
	}
	s.WaitFor("dmesg's CAP_SYSLOG denial", isDmesgDenial)
	all.WaitFor("dmesg's CAP_SYSLOG denial", isDmesgDenial)
	// A last exec, after dmesg: its checks come after dmesg's in each stream.
	_ = c.kubectl("exec", "xwing", "-c", "spaceship", "--", "true").Run()
	s.Stop(syscall.SIGINT)
	all.Stop(syscall.SIGINT)

	for _, l := range s.Lines() {
		line := string(l)
		if strings.Contains(line, " true[") {
			continue // the last exec's own needs, if any
		}
		if !isDmesgDenial(l) || strings.Contains(line, "(") {
			t.Errorf("the default view printed more than dmesg's CAP_SYSLOG denials: %s", line)
		}
	}
	marks := map[string]int{}
	for _, l := range all.Lines() {
		line := string(l)
		for _, m := range []string{"(runtime)", "(probe)"} {
			if strings.HasSuffix(line, m) {
				marks[m]++
				if m == "(runtime)" && !strings.Contains(line, "runc[") && !strings.Contains(line, "containerd-shim") {
					t.Errorf("a runtime check not shown as runc: %s", line)
				}
			}
		}
		if fields := strings.Fields(line); len(fields) > 2 && (strings.HasPrefix(fields[2], "5[") || strings.HasPrefix(fields[2], "6[")) {
			t.Errorf("a process shown by its fd number: %s", line)
		}
	}
	if marks["(runtime)"] == 0 || marks["(probe)"] == 0 {
		t.Errorf("--all showed %v; want runc's setup of the exec and probes, marked:\n%s", marks, all.Stderr())
	}
	if !strings.Contains(s.Stderr(), "runtime setup and") {
		t.Errorf("the summary does not count what it hid: %s", s.Stderr())
	}
	testutil.AssertNothingLeft(t)
}
