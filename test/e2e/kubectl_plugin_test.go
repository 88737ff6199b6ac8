package e2e

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/capsrec/capsrec/internal/testutil"
)

// kubectl capsrec on the real single-node cluster of test/k8s/up.sh, from
// outside the node as a laptop would: through the API server only.

// pluginBinary is capsrec under the name kubectl runs plugins by.
func pluginBinary(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubectl-capsrec")
	if err := os.Symlink(testutil.Binary(t), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// pluginEnv makes the cluster's kubeconfig the default, as on a laptop.
func (c *k8sCluster) pluginEnv(t *testing.T) {
	t.Setenv("KUBECONFIG", c.env["KUBECONFIG"])
	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", "") // the node's socket is the plugin's to find
}

func (c *k8sCluster) plugin(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := c.pluginCmd(t, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// pluginCmd is kubectl capsrec ARGS, not started.
func (c *k8sCluster) pluginCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	return exec.Command(pluginBinary(t), args...)
}

var (
	testImageOnce sync.Once
	testImageErr  error
)

// testImage is `make image` of the binary under test, imported into the node's containerd.
const testImage = "ghcr.io/capsrec/capsrec:test"

func (c *k8sCluster) importImage(t *testing.T) string {
	t.Helper()
	testImageOnce.Do(func() {
		tar := filepath.Join(os.TempDir(), "capsrec-test-image.tar")
		defer os.Remove(tar)
		mk := exec.Command("go", "run", "./tools/mkimage", "-binary", testutil.Binary(t), "-tag", testImage, "-o", tar)
		mk.Dir = testutil.Root()
		if out, err := mk.CombinedOutput(); err != nil {
			testImageErr = errors.New("mkimage: " + err.Error() + ": " + string(out))
			return
		}
		imp := exec.Command("ctr", "--address", c.env["CRI_SOCK"], "-n", "k8s.io", "images", "import", tar)
		if out, err := imp.CombinedOutput(); err != nil || !strings.Contains(string(out), testImage) {
			testImageErr = errors.New("ctr images import: " + string(out))
		}
	})
	if testImageErr != nil {
		t.Fatal(testImageErr)
	}
	return testImage
}

// assertNoNodePods waits for every recorder Job and pod to be gone, and then
// for their programs to leave the kernel.
func (c *k8sCluster) assertNoNodePods(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second * testutil.Slow())
	var left string
	for time.Now().Before(deadline) {
		out, err := c.kubectl("get", "jobs,pods", "-A", "-l", "app.kubernetes.io/component=node-recorder", "-o", "name").CombinedOutput()
		if left = strings.TrimSpace(string(out)); err == nil && left == "" {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if left != "" {
		t.Fatalf("recorder jobs or pods left behind: %s", left)
	}
	for time.Now().Before(deadline) {
		if progs, err := testutil.LeftoverPrograms(); err == nil && len(progs) == 0 {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	testutil.AssertNothingLeft(t)
}

// The seed scenario from outside the node: `kubectl capsrec record xwing`
// while `kubectl exec xwing -- dmesg` prints only dmesg's CAP_SYSLOG denials,
// with capsrec copied into the pod's own image; and the same with -o json
// from `make image`'s image holds Tetragon's key paths.
func TestKubectlSeedScenario(t *testing.T) {
	c := k8sUp(t)
	c.pluginEnv(t)
	dmesgRestrict(t)
	image := c.importImage(t)
	plugin := pluginBinary(t)
	readyDir := t.TempDir()
	compact := testutil.StartReady(t, nil, filepath.Join(readyDir, "compact"), plugin,
		"record", "xwing", "--ready-file", filepath.Join(readyDir, "compact"))
	jsonOut := testutil.StartReady(t, nil, filepath.Join(readyDir, "json"), plugin,
		"record", "-n", "default", "xwing", "-c", "spaceship", "-o", "json", "--image", image, "--image-pull-policy", "Never",
		"--ready-file", filepath.Join(readyDir, "json"))

	if out, err := c.kubectl("exec", "xwing", "-c", "spaceship", "--", "dmesg").CombinedOutput(); err == nil {
		t.Fatalf("kubectl exec xwing -- dmesg succeeded: %s", out)
	}
	compact.WaitFor("dmesg's CAP_SYSLOG denial", func(l []byte) bool {
		return strings.Contains(string(l), "default/xwing/spaceship") && strings.Contains(string(l), " dmesg[") &&
			strings.Contains(string(l), "CAP_SYSLOG") && strings.Contains(string(l), "denied")
	})
	line := jsonOut.WaitFor("dmesg's CAP_SYSLOG event", func(l []byte) bool { return bytes.Contains(l, []byte("CAP_SYSLOG")) })
	compact.Stop(syscall.SIGINT)
	jsonOut.Stop(syscall.SIGINT)

	for _, l := range compact.Lines() {
		if !strings.Contains(string(l), " dmesg[") || !strings.Contains(string(l), "CAP_SYSLOG") {
			t.Errorf("more than dmesg's CAP_SYSLOG denials: %s", l)
		}
	}
	for _, s := range []*testutil.Session{compact, jsonOut} {
		if !strings.Contains(s.Stderr(), " seen, ") || !strings.Contains(s.Stderr(), "runtime setup and") {
			t.Errorf("the node's summary line did not reach stderr:\n%s", s.Stderr())
		}
	}
	var ev map[string]any
	if err := json.Unmarshal(line, &ev); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	// Tetragon's key paths; nil: present, any value.
	for path, want := range map[string]any{
		"process_kprobe.function_name":                    "cap_capable",
		"process_kprobe.process.pod.namespace":            "default",
		"process_kprobe.process.pod.name":                 "xwing",
		"process_kprobe.process.pod.container.name":       "spaceship",
		"process_kprobe.process.binary":                   "/bin/dmesg",
		"process_kprobe.args.1.capability_arg.name":       "CAP_SYSLOG",
		"process_kprobe.return.int_arg":                   float64(-1),
		"process_kprobe.process.pod.pod_labels.org":       "alliance",
		"process_kprobe.process.pod.container.image.name": "docker.io/library/xwing-test:1",
		"node_name":                                       c.env["NODE_NAME"],
		"process_kprobe.capsrec.class":                    "need",
		"process_kprobe.process.pod.container.pid":        nil,
		"process_kprobe.process.ns.pid.inum":              nil,
		"process_kprobe.args.0.user_ns_arg.ns.is_host":    true,
		"process_kprobe.process.cap.effective.0":          "CAP_CHOWN",
		"process_kprobe.parent.binary":                    nil, // runc, or the shim once runc exec has exited
		"process_kprobe.process.pod.container.id":         nil,
		"process_kprobe.process.pod.container.image.id":   nil,
		"process_kprobe.action":                           "KPROBE_ACTION_POST",
		"process_kprobe.process.exec_id":                  nil,
		"process_kprobe.process.start_time":               nil,
		"process_kprobe.capsrec.syscall_name":             "syslog",
		"process_kprobe.process.pod.container.start_time": nil,
		"process_kprobe.process.pod.uid":                  c.env["XWING_POD_UID"],
		"process_kprobe.process.docker":                   nil,
		"process_kprobe.process.cwd":                      "/",
		"process_kprobe.process.flags":                    nil,
		"process_kprobe.process.tid":                      nil,
		"process_kprobe.process.uid":                      float64(0),
		"process_kprobe.capsrec.call_site":                "do_syslog",
		"process_kprobe.capsrec.attach":                   nil,
		"time":                                            nil,
		"process_kprobe.policy_name":                      "capsrec",
	} {
		got, ok := jsonPath(ev, path)
		if !ok {
			t.Errorf("%s: missing in %s", path, line)
		} else if want != nil && got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	c.assertNoNodePods(t)
}

func jsonPath(v any, path string) (any, bool) {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[k]; !ok {
				return nil, false
			}
		case []any:
			i := int(k[0] - '0')
			if len(k) != 1 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// A plugin killed with SIGKILL leaves nothing: the runtime closes the
// recorder's stdin when the attach ends, the recorder stops, and the Job's
// TTL deletes the Job and its pod.
func TestKubectlKilledPluginLeavesNothing(t *testing.T) {
	c := k8sUp(t)
	c.pluginEnv(t)
	ready := filepath.Join(t.TempDir(), "ready")
	s := testutil.StartReady(t, nil, ready, pluginBinary(t), "record", "xwing", "--ready-file", ready)
	s.Kill()
	c.assertNoNodePods(t)
}

// kubectl capsrec profile on a Deployment whose code needs exactly CAP_CHOWN:
// the profile says add [CHOWN]; --check against its own manifest finds the
// runtime's defaults granted and never needed; and the loop is closed: the
// Deployment runs with drop ALL + add CHOWN, and fails without CHOWN.
func TestKubectlProfileDeployment(t *testing.T) {
	c := k8sUp(t)
	c.pluginEnv(t)
	manifest := "test/k8s/testdata/tiefighter.yaml"
	if out, err := c.kubectl("apply", "-f", manifest).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = c.kubectl("delete", "-f", manifest, "--wait=false").Run() })
	c.rollout(t)

	out, errOut, err := c.plugin(t, "profile", "deploy/tiefighter", "--duration", "4s", "-o", "yaml")
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, errOut)
	}
	if !strings.Contains(out, "drop: [ALL]\n  add: [CHOWN]\n") || !strings.Contains(out, "workload: tiefighter, container: engine") {
		t.Errorf("the profile does not say drop ALL, add CHOWN for tiefighter's engine:\n%s", out)
	}
	if !strings.Contains(errOut, "deployment/tiefighter in namespace default recorded on "+c.env["NODE_NAME"]+" (2 pods)") {
		t.Errorf("the profile does not name the nodes it covers: %s", errOut)
	}

	c.profileWithGhostNode(t)
	c.profileMixedArchitectures(t)

	// Without --duration, Ctrl-C ends the recording and the profile is printed.
	interrupted := exec.Command(pluginBinary(t), "profile", "deploy/tiefighter", "-o", "json")
	var iout, ierr bytes.Buffer
	interrupted.Stdout, interrupted.Stderr = &iout, &ierr
	if err := interrupted.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(8 * time.Second * testutil.Slow())
	_ = interrupted.Process.Signal(syscall.SIGINT)
	if err := interrupted.Wait(); err != nil || !strings.Contains(iout.String(), `"CAP_CHOWN"`) {
		t.Errorf("profile ended by Ctrl-C: %v\n%s%s", err, iout.String(), ierr.String())
	}

	out, errOut, err = c.plugin(t, "profile", "deploy/tiefighter", "--duration", "3s", "--check", manifest)
	if exitCode(err) != 2 || !strings.Contains(out, "grants capabilities it never needed: DAC_OVERRIDE") || strings.Contains(out, "CHOWN") {
		t.Errorf("--check %s: exit %v, want 2 (partial: cannot decide) and the runtime's defaults less CHOWN:\n%s%s", manifest, err, out, errOut)
	}

	// Close the loop: exactly the add list works, one less fails.
	c.setCapabilities(t, `["CHOWN"]`, "chown")
	time.Sleep(3 * time.Second) // a few rounds of chown
	c.assertRunning(t, "chown")
	exact := filepath.Join(t.TempDir(), "exact.yaml")
	m, _ := os.ReadFile(manifest)
	withCaps := strings.Replace(string(m), "        command:", "        securityContext: {capabilities: {drop: [ALL], add: [CHOWN]}}\n        command:", 1)
	if err := os.WriteFile(exact, []byte(withCaps), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = c.plugin(t, "profile", "deploy/tiefighter", "--restart", "--duration", "3s", "--check", exact)
	if err != nil || !strings.Contains(out, "grants what the profile needs, and no more") {
		t.Errorf("--check of drop ALL + add CHOWN: %v\n%s%s", err, out, errOut)
	}
	c.setCapabilities(t, `[]`, "none")
	c.waitCrash(t, "none")
	c.assertNoNodePods(t)
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func (c *k8sCluster) rollout(t *testing.T) {
	t.Helper()
	if out, err := c.kubectl("rollout", "status", "deploy/tiefighter", "--timeout=90s").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// setCapabilities gives tiefighter's engine drop ALL + add, with a label that
// tells its new pods apart.
func (c *k8sCluster) setCapabilities(t *testing.T, add, label string) {
	t.Helper()
	patch := `{"spec":{"template":{"metadata":{"labels":{"proof":"` + label + `"}},"spec":{"containers":[{"name":"engine","securityContext":{"capabilities":{"drop":["ALL"],"add":` + add + `}}}]}}}}`
	if out, err := c.kubectl("patch", "deploy/tiefighter", "-p", patch).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if label != "none" {
		c.rollout(t)
	}
}

type podList struct {
	Items []struct {
		Metadata struct{ Name string }
		Status   struct {
			Phase             string
			ContainerStatuses []struct {
				RestartCount int
				State        map[string]any
				LastState    map[string]any
			}
		}
	}
}

func (c *k8sCluster) pods(t *testing.T, label string) podList {
	t.Helper()
	out, err := c.kubectl("get", "pods", "-l", "proof="+label, "-o", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var l podList
	if err := json.Unmarshal(out, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

func (c *k8sCluster) assertRunning(t *testing.T, label string) {
	t.Helper()
	l := c.pods(t, label)
	if len(l.Items) == 0 {
		t.Fatalf("no pod with proof=%s", label)
	}
	for _, p := range l.Items {
		if p.Status.Phase != "Running" || len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].RestartCount != 0 {
			logs, _ := c.kubectl("logs", p.Metadata.Name).CombinedOutput()
			t.Errorf("pod %s with drop ALL + add CHOWN: %+v\n%s", p.Metadata.Name, p.Status, logs)
		}
	}
}

// waitCrash waits for a pod without CHOWN to fail its chown.
func (c *k8sCluster) waitCrash(t *testing.T, label string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second * testutil.Slow())
	for time.Now().Before(deadline) {
		for _, p := range c.pods(t, label).Items {
			for _, st := range p.Status.ContainerStatuses {
				if st.RestartCount > 0 || st.State["terminated"] != nil {
					logs, _ := c.kubectl("logs", p.Metadata.Name, "--previous").CombinedOutput()
					if !strings.Contains(string(logs), "chown failed") {
						logs, _ = c.kubectl("logs", p.Metadata.Name).CombinedOutput()
					}
					if !strings.Contains(string(logs), "chown failed") {
						t.Fatalf("pod %s without CHOWN ended, but not at chown: %s", p.Metadata.Name, logs)
					}
					return
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("a pod without CHOWN did not fail within %s", 60*time.Second*testutil.Slow())
}

// Each fault gives one line that names it, a non-zero exit and no pod left.
func TestKubectlFaults(t *testing.T) {
	c := k8sUp(t)
	c.pluginEnv(t)
	otherRecording := "testdata/tetragon-cap_capable-event.json" // pod default/xwing
	emptyPatch := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(emptyPatch, []byte("# no containers in this profile\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rbac := `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: capsrec-test-viewer, namespace: default}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}, {apiGroups: [apps], resources: [deployments], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: capsrec-test-viewer, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: capsrec-test-viewer}
subjects: [{kind: User, name: viewer}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: capsrec-test-viewer}
rules: [{apiGroups: [""], resources: [nodes], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: capsrec-test-viewer}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: capsrec-test-viewer}
subjects: [{kind: User, name: viewer}]
---
apiVersion: v1
kind: Namespace
metadata: {name: capsrec-test-quota}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: no-pods, namespace: capsrec-test-quota}
spec: {hard: {pods: "0"}}
---
apiVersion: v1
kind: Pod
metadata: {name: ghost, namespace: default}
spec:
  hostNetwork: true
  containers: [{name: c, image: docker.io/library/no-such-image:0, imagePullPolicy: Never}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: badimage, namespace: default}
spec:
  selector: {matchLabels: {app: badimage}}
  template:
    metadata: {labels: {app: badimage}}
    spec:
      hostNetwork: true
      containers: [{name: c, image: docker.io/library/no-such-image:0, imagePullPolicy: Never}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: nowhere, namespace: default}
spec:
  selector: {matchLabels: {app: nowhere}}
  template:
    metadata: {labels: {app: nowhere}}
    spec:
      hostNetwork: true
      nodeSelector: {capsrec-test: no-such-node}
      containers: [{name: c, image: docker.io/library/xwing-test:1, imagePullPolicy: Never}]
`
	fixtures := filepath.Join(t.TempDir(), "faults.yaml")
	if err := os.WriteFile(fixtures, []byte(rbac), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := c.kubectl("apply", "-f", fixtures).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = c.kubectl("delete", "-f", fixtures, "--wait=false", "--grace-period=0", "--force").Run() })
	unreachable := filepath.Join(t.TempDir(), "unreachable.kubeconfig")
	kc, _ := os.ReadFile(c.env["KUBECONFIG"])
	if err := os.WriteFile(unreachable, []byte(strings.Replace(string(kc), "server: https://127.0.0.1:", "server: https://127.0.0.1:1#", 1)), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no kubeconfig", []string{"KUBECONFIG=", "HOME=" + t.TempDir()}, []string{"record", "xwing"}, "no kubeconfig: set KUBECONFIG or pass --kubeconfig"},
		{"kubeconfig missing", []string{"KUBECONFIG=/nonexistent", "HOME=" + t.TempDir()}, []string{"record", "xwing"}, "KUBECONFIG names /nonexistent, which does not exist"},
		{"unreachable API server", nil, []string{"--kubeconfig", unreachable, "record", "xwing"}, "cannot reach the API server at https://127.0.0.1:1"},
		{"no such pod", nil, []string{"record", "ywing"}, `pod default/ywing: pods "ywing" not found`},
		{"pod not running", nil, []string{"record", "ghost"}, "pod default/ghost is Pending, not Running"},
		{"no such container", nil, []string{"record", "xwing", "-c", "cockpit"}, `pod default/xwing has no container "cockpit" (it has spaceship)`},
		{"forbidden", nil, []string{"record", "xwing", "--kubeconfig", c.env["VIEWER_KUBECONFIG"]}, `forbidden (jobs.batch is forbidden: User "viewer" cannot create resource "jobs"`},
		{"image not pullable", nil, []string{"record", "xwing", "--image", "registry.invalid/capsrec:1"}, "cannot pull image registry.invalid/capsrec:1"},
		{"never ready", nil, []string{"record", "xwing", "--runtime-endpoint", "/no/such/dir/cri.sock", "--ready-timeout", "4s"}, "did not run within 4s: it waits in ContainerCreating"},
		{"node pod refused", nil, []string{"record", "xwing", "--node-pod-namespace", "capsrec-test-quota"}, "was refused: Error creating: pods"},
		{"profile of nothing", nil, []string{"profile", "-l", "app=no-such-app", "--duration", "1s"}, "no pod runs (0 found)"},
		{"profile of a bad kind", nil, []string{"profile", "cronjob/x", "--duration", "1s"}, `kind "cronjob" is not deploy, ds, sts or rs`},
		{"restart of bare pods", nil, []string{"profile", "-l", "app.kubernetes.io/name=xwing", "--restart", "--duration", "1s"}, "use --wait"},
		{"restart that no node admits", nil, []string{"profile", "deploy/nowhere", "--restart", "--duration", "1s"}, "no Ready node admits its pods"},
		{"restart never rolled out", nil, []string{"profile", "deploy/badimage", "--restart", "--duration", "1s"}, "the rollout of deployment/badimage in namespace default failed: pod badimage-"},
		{"restart forbidden", nil, []string{"profile", "deploy/badimage", "--restart", "--duration", "1s", "--kubeconfig", c.env["VIEWER_KUBECONFIG"]}, "forbidden: we cannot patch deployment/badimage"},
		{"verify forbidden", nil, []string{"profile", "deploy/badimage", "--verify", "--patch-file", emptyPatch, "--kubeconfig", c.env["VIEWER_KUBECONFIG"]}, "forbidden: we cannot patch deployment/badimage in namespace default, which --restart and --verify do"},
		{"verify without a patch", nil, []string{"profile", "deploy/badimage", "--verify"}, "--verify needs a patch: profile with --restart, or give --patch-file or --recording"},
		{"verify of a recording of another workload", nil, []string{"profile", "deploy/badimage", "--verify", "--recording", otherRecording}, "holds no container of deployment/badimage"},
		{"verify of two patches", nil, []string{"profile", "deploy/badimage", "--verify", "--recording", otherRecording, "--patch-file", emptyPatch}, "--verify verifies one patch"},
		{"verify of bare pods", nil, []string{"profile", "-l", "app.kubernetes.io/name=xwing", "--verify", "--patch-file", emptyPatch}, "--restart and --verify roll out a Deployment, DaemonSet or StatefulSet"},
		{"verify of a patch of nothing", nil, []string{"profile", "deploy/badimage", "--verify", "--patch-file", emptyPatch}, "the patch sets no spec: there is nothing to verify"},
		{"minimize without restart", nil, []string{"profile", "deploy/badimage", "--verify", "--minimize", "--patch-file", emptyPatch}, "--minimize tries the profile's capabilities: profile with --restart, or give --recording"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(pluginBinary(t), tc.args...)
			cmd.Env = append(os.Environ(), tc.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			if exitCode(err) == 0 || len(lines) != 1 || !strings.Contains(lines[0], tc.want) || !strings.HasPrefix(lines[0], "kubectl capsrec: ") {
				t.Errorf("exit %v; want one line with %q, got:\n%s", err, tc.want, stderr.String())
			}
			c.assertNoNodePods(t)
		})
	}
}

// deploy/'s standing recorder runs with its fewest privileges (no privileged,
// four capabilities) and logs the seed scenario's denial as JSON.
func TestKubectlStandingRecorder(t *testing.T) {
	c := k8sUp(t)
	dmesgRestrict(t)
	image := c.importImage(t)
	m, err := os.ReadFile("deploy/capsrec-daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The test cluster's socket is not in /run/containerd, its images are local, it has no pod network.
	ds := strings.ReplaceAll(string(m), "/run/containerd", filepath.Dir(c.env["CRI_SOCK"]))
	ds = strings.Replace(ds, "image: ghcr.io/capsrec/capsrec:dev", "image: "+image+"\n        imagePullPolicy: Never", 1)
	ds = strings.Replace(ds, "hostPID: true", "hostPID: true\n      hostNetwork: true", 1)
	if strings.Count(ds, image) != 1 || !strings.Contains(ds, "hostNetwork") || strings.Contains(ds, "privileged: true") {
		t.Fatalf("deploy/capsrec-daemonset.yaml changed shape:\n%s", ds)
	}
	path := filepath.Join(t.TempDir(), "ds.yaml")
	if err := os.WriteFile(path, []byte(ds), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := c.kubectl("apply", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() {
		_ = c.kubectl("delete", "-f", path, "--wait=true", "--timeout=60s").Run()
		testutil.AssertNothingLeft(t)
	})
	if out, err := c.kubectl("-n", "capsrec", "rollout", "status", "ds/capsrec", "--timeout=90s").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second * testutil.Slow())
	var logs []byte
	for time.Now().Before(deadline) {
		_ = c.kubectl("exec", "xwing", "--", "dmesg").Run()
		logs, _ = c.kubectl("-n", "capsrec", "logs", "ds/capsrec").CombinedOutput()
		for _, l := range bytes.Split(logs, []byte("\n")) {
			var ev map[string]any
			if json.Unmarshal(l, &ev) != nil {
				continue
			}
			name, _ := jsonPath(ev, "process_kprobe.process.pod.name")
			capName, _ := jsonPath(ev, "process_kprobe.args.1.capability_arg.name")
			if name == "xwing" && capName == "CAP_SYSLOG" {
				return
			}
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("the standing recorder logged no CAP_SYSLOG check of xwing:\n%.4000s", logs)
}

// --count, --duration and a reader that goes away (| head) end a remote
// record as they end a local one: by itself, exit 0, nothing left behind.
func TestKubectlRecordEnds(t *testing.T) {
	c := k8sUp(t)
	c.pluginEnv(t)
	dmesgRestrict(t)
	plugin := pluginBinary(t)
	dir := t.TempDir()

	count := testutil.StartReady(t, nil, filepath.Join(dir, "count"), plugin, "record", "xwing", "--count", "1", "--ready-file", filepath.Join(dir, "count"))
	_ = c.kubectl("exec", "xwing", "--", "dmesg").Run()
	count.Wait()
	if n := len(count.Lines()); n != 1 {
		t.Errorf("--count 1 printed %d lines", n)
	}

	start := time.Now()
	out, errOut, err := c.plugin(t, "record", "xwing", "--duration", "2s")
	if err != nil || !strings.Contains(errOut, " seen, ") || time.Since(start) > 60*time.Second {
		t.Errorf("--duration 2s: %v after %s\n%s%s", err, time.Since(start), out, errOut)
	}

	// | head -1: the pipe closes after the first line.
	cmd := exec.Command(plugin, "record", "xwing", "--all", "--ready-file", filepath.Join(dir, "head"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 600; i++ {
		if _, err := os.Stat(filepath.Join(dir, "head")); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = c.kubectl("exec", "xwing", "--", "dmesg").Run() // runc's setup: many lines with --all
	buf := make([]byte, 1)
	for buf[0] != '\n' {
		if _, err := stdout.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	stdout.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("| head: exit %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("| head: the plugin did not end\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), " seen, ") {
		t.Errorf("| head: no summary line from the node:\n%s", stderr.String())
	}
	c.assertNoNodePods(t)
}

// ghostNode adds a Node object of arch with no kubelet behind it, and a
// running pod of the tiefighter workload on it; the returned func removes both.
func (c *k8sCluster) ghostNode(t *testing.T, node, arch string) func() {
	t.Helper()
	ghost := `
apiVersion: v1
kind: Node
metadata: {name: ` + node + `, labels: {kubernetes.io/hostname: ` + node + `, kubernetes.io/arch: ` + arch + `}}
---
apiVersion: v1
kind: Pod
metadata: {name: tiefighter-` + node + `, namespace: default, labels: {org: empire}}
spec:
  nodeName: ` + node + `
  containers: [{name: engine, image: docker.io/library/xwing-test:1}]
`
	path := filepath.Join(t.TempDir(), "ghost.yaml")
	if err := os.WriteFile(path, []byte(ghost), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := c.kubectl("apply", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	remove := func() {
		_ = c.kubectl("delete", "pod", "tiefighter-"+node, "--grace-period=0", "--force").Run()
		_ = c.kubectl("delete", "node", node).Run()
	}
	for _, patch := range [][]string{
		{"node", node, `{"status":{"nodeInfo":{"operatingSystem":"linux","architecture":"` + arch + `","kernelVersion":"6.12.0"}}}`},
		{"pod", "tiefighter-" + node, `{"status":{"phase":"Running"}}`},
	} {
		if out, err := c.kubectl("patch", patch[0], patch[1], "--subresource=status", "-p", patch[2]).CombinedOutput(); err != nil {
			remove()
			t.Fatalf("%v: %s", err, out)
		}
	}
	return remove
}

// profileWithGhostNode profiles a workload with a pod on a second node that
// has no kubelet (a Node object and a pod whose status says Running): the
// profile covers the real node, names the other as failed, and exits 1.
func (c *k8sCluster) profileWithGhostNode(t *testing.T) {
	t.Helper()
	defer c.ghostNode(t, "ghost-node", runtime.GOARCH)()
	out, errOut, err := c.plugin(t, "profile", "-l", "org=empire", "--duration", "3s", "--ready-timeout", "5s")
	if exitCode(err) != 1 || !strings.Contains(out, "CAP_CHOWN") ||
		!strings.Contains(errOut, "node ghost-node failed: the recorder pod on node ghost-node did not run within 5s") ||
		!strings.Contains(errOut, "recorded on "+c.env["NODE_NAME"]+" (2 pods)") ||
		!strings.Contains(errOut, "the profile lacks nodes ghost-node, which failed") {
		t.Errorf("profile over two nodes, one without a kubelet: exit %v\n%s%s", err, out, errOut)
	}
	c.assertNoNodePods(t)
}

// profileMixedArchitectures profiles a workload with a pod on a node of the
// other architecture (a Node object without a kubelet): in copy mode it needs
// a binary of that architecture, refused in one line without one; with
// --binary-for or --image its recorder pod is made (and never runs there).
func (c *k8sCluster) profileMixedArchitectures(t *testing.T) {
	t.Helper()
	other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
	defer c.ghostNode(t, "other-arch", other)()
	dir := t.TempDir()
	// Only the ELF header is read before the copy: the pod never runs on a node without a kubelet.
	machine := map[string]elf.Machine{"arm64": elf.EM_AARCH64, "amd64": elf.EM_X86_64}[other]
	otherBinary := testutil.FakeELF(t, filepath.Join(dir, "capsrec-linux-"+other), machine, false)
	profileArgs := []string{"profile", "-l", "org=empire", "--duration", "3s", "--ready-timeout", "5s"}
	for _, mode := range []struct {
		args []string
		want string
	}{
		{nil, "node other-arch failed: node other-arch is linux/" + other + " and this capsrec is linux/" + runtime.GOARCH + ": pass --binary-for linux/" + other + "=PATH"},
		{[]string{"--binary-for", "linux/" + other + "=" + otherBinary}, "node other-arch failed: the recorder pod on node other-arch did not run within 5s"},
		{[]string{"--image", c.importImage(t)}, "node other-arch failed: the recorder pod on node other-arch did not run within 5s"},
	} {
		out, errOut, err := c.plugin(t, append(profileArgs, mode.args...)...)
		if exitCode(err) != 1 || !strings.Contains(out, "CAP_CHOWN") || !strings.Contains(errOut, mode.want) ||
			!strings.Contains(errOut, "recorded on "+c.env["NODE_NAME"]+" (2 pods)") {
			t.Errorf("profile %q with a node of %s: exit %v, want %q\n%s%s", mode.args, other, err, mode.want, out, errOut)
		}
		c.assertNoNodePods(t)
	}
}
