package main

import (
	"bytes"
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
	cmd := exec.Command(pluginBinary(t), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
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
		_, file, _, _ := runtime.Caller(0)
		mk := exec.Command("go", "run", "./tools/mkimage", "-binary", testutil.Binary(t), "-tag", testImage, "-o", tar)
		mk.Dir = filepath.Dir(file)
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
		if !strings.Contains(s.Stderr(), "checks seen") || !strings.Contains(s.Stderr(), "runtime setup and") {
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
		"process_kprobe.parent.binary":                    "/usr/sbin/runc",
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
