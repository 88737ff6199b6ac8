package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capsrec/capsrec/internal/testutil"
)

const verifyMark = "capsrec.io/verify-original"

// verifyWeb is test/k8s/testdata/verify.yaml's Deployment as the API holds it.
type verifyWeb struct {
	Metadata struct {
		Generation  int64
		Annotations map[string]string
	}
	Spec struct {
		Template json.RawMessage
	}
}

func (c *k8sCluster) verifyWeb(t *testing.T) verifyWeb {
	t.Helper()
	out, err := c.kubectl("get", "deploy/verify-web", "-o", "json").Output()
	if err != nil {
		t.Fatalf("kubectl get deploy/verify-web: %v", err)
	}
	var d verifyWeb
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// assertNoMarkedRevision fails if a ReplicaSet of verify-web keeps the mark
// (the Deployment controller copies it there; kubectl rollout undo copies it back).
func (c *k8sCluster) assertNoMarkedRevision(t *testing.T) {
	t.Helper()
	out, err := c.kubectl("get", "rs", "-l", "app.kubernetes.io/name=verify-web", "-o", "jsonpath={range .items[*]}{.metadata.name} {.metadata.annotations}{\"\\n\"}{end}").Output()
	if err != nil {
		t.Fatalf("kubectl get rs: %v", err)
	}
	if strings.Contains(string(out), verifyMark) {
		t.Errorf("a ReplicaSet keeps the mark %s:\n%s", verifyMark, out)
	}
}

// grants is what a patch of verify-web sets in a template: the server
// container's securityContext.capabilities and the pod's sysctls (where
// containerd 2's profile grants the bind).
func grants(t *testing.T, template json.RawMessage) string {
	t.Helper()
	var tm struct {
		Spec struct {
			SecurityContext *struct{ Sysctls json.RawMessage }
			Containers      []struct {
				Name            string
				SecurityContext *struct{ Capabilities json.RawMessage }
			}
		}
	}
	if err := json.Unmarshal(template, &tm); err != nil {
		t.Fatal(err)
	}
	compact := func(raw json.RawMessage) string {
		var b bytes.Buffer
		if len(raw) > 0 {
			if err := json.Compact(&b, raw); err != nil {
				t.Fatal(err)
			}
		}
		return b.String()
	}
	var g string
	for _, c := range tm.Spec.Containers {
		if c.Name == "server" && c.SecurityContext != nil {
			g = compact(c.SecurityContext.Capabilities)
		}
	}
	if sc := tm.Spec.SecurityContext; sc != nil && len(sc.Sysctls) > 0 {
		g += " sysctls " + compact(sc.Sysctls)
	}
	return g
}

// kubectlTemplateHash names a template by its content.
func kubectlTemplateHash(t *testing.T, template json.RawMessage) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(template, &v); err != nil {
		t.Fatal(err)
	}
	canon, _ := json.Marshal(v)
	return string(canon)
}

// wrongPatch is a profile's patch with the low-port bind made impossible: no
// NET_BIND_SERVICE, and ip_unprivileged_port_start at the kernel's 1024
// where the patch set it (containerd 2's profile does).
func wrongPatch(patch string) string {
	patch = strings.Replace(patch, "add: [NET_BIND_SERVICE]", "add: []", 1)
	return strings.Replace(patch, "name: net.ipv4.ip_unprivileged_port_start\n          value: \"80\"", "name: net.ipv4.ip_unprivileged_port_start\n          value: \"1024\"", 1)
}

// TestKubectlVerify, on the real cluster: a web server on port 80 profiled
// with --restart --verify ends on its verified patch; the same patch made
// wrong on purpose (the bind's need left out) is seen refused, rolled back
// and named, and the workload is as before; a plugin killed mid-verify
// leaves a mark the next --verify restores the template from.
func TestKubectlVerify(t *testing.T) {
	c := k8sUp(t)
	c.pluginEnv(t)
	manifest := "test/k8s/testdata/verify.yaml"
	if out, err := c.kubectl("apply", "-f", manifest).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = c.kubectl("delete", "-f", manifest, "--wait=false").Run() })
	if out, err := c.kubectl("rollout", "status", "deploy/verify-web", "--timeout=90s").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}

	saved := filepath.Join(t.TempDir(), "recording.jsonl")
	out, errOut, err := c.plugin(t, "profile", "deploy/verify-web", "--restart", "--duration", "3s", "--save", saved, "--verify", "--verify-duration", "5s", "-o", "patch")
	if err != nil {
		t.Fatalf("profile --restart --verify: %v\n%s%s", err, out, errOut)
	}
	if !strings.Contains(out, "# verified: applied under recording to 1 pod (verify-web-") || !strings.Contains(out, "# verify: no need was denied") ||
		!strings.Contains(out, "by Ready (readiness probes) and no restarts") {
		t.Fatalf("the patch does not say what its verify proved:\n%s", out)
	}
	patched := c.verifyWeb(t)
	if _, marked := patched.Metadata.Annotations[verifyMark]; marked {
		t.Errorf("a verified workload keeps the mark %s", verifyMark)
	}
	if strings.Contains(errOut, "stays on a revision") {
		t.Errorf("the mark could not leave the ReplicaSets: %s", errOut)
	}
	c.assertNoMarkedRevision(t)
	caps := grants(t, patched.Spec.Template)
	if !strings.Contains(caps, `"drop":["ALL"]`) {
		t.Fatalf("the verified patch is not on the workload: %s", caps)
	}
	c.assertNoNodePods(t)

	t.Run("a saved recording", func(t *testing.T) {
		vout, verr, err := c.plugin(t, "profile", "deploy/verify-web", "--verify", "--recording", saved, "--verify-duration", "3s", "-o", "json")
		if err != nil || !strings.Contains(vout, `"verified": true`) {
			t.Fatalf("--verify --recording of the first run's --save: %v\n%s%s", err, vout, verr)
		}
		if got := grants(t, c.verifyWeb(t).Spec.Template); got != caps {
			t.Errorf("the saved recording's verified patch leaves %s, want %s as the first run's", got, caps)
		}
		c.assertNoNodePods(t)
	})

	t.Run("wrong patch rolls back", func(t *testing.T) {
		wrong := filepath.Join(t.TempDir(), "wrong.yaml")
		if err := os.WriteFile(wrong, []byte(wrongPatch(out)), 0o644); err != nil {
			t.Fatal(err)
		}
		before := c.verifyWeb(t)
		vout, verr, err := c.plugin(t, "profile", "deploy/verify-web", "--verify", "--patch-file", wrong, "--verify-duration", "5s", "--rollout-timeout", "60s", "-o", "json")
		if exitCode(err) != 1 {
			t.Fatalf("--verify of a patch without the bind's need: exit %d, want 1\n%s%s", exitCode(err), vout, verr)
		}
		if !strings.Contains(verr, "NET_BIND_SERVICE denied") || !strings.Contains(verr, "busybox; bind") {
			t.Errorf("the failure does not name the refused need: %s", verr)
		}
		var v struct {
			Verification struct {
				Verified   bool     `json:"verified"`
				RolledBack bool     `json:"rolled_back"`
				Denied     []string `json:"denied_needs"`
			} `json:"verification"`
		}
		if err := json.Unmarshal([]byte(vout), &v); err != nil || v.Verification.Verified || !v.Verification.RolledBack || len(v.Verification.Denied) == 0 {
			t.Errorf("-o json: %+v (%v), want not verified, rolled back, a denied need:\n%s", v, err, vout)
		}
		after := c.verifyWeb(t)
		if got, want := grants(t, after.Spec.Template), grants(t, before.Spec.Template); got != want {
			t.Errorf("after the roll back: %s, want those from before, %s", got, want)
		}
		if _, marked := after.Metadata.Annotations[verifyMark]; marked {
			t.Errorf("a rolled back workload keeps the mark %s", verifyMark)
		}
		c.assertNoMarkedRevision(t)
		if out, err := c.kubectl("rollout", "status", "deploy/verify-web", "--timeout=60s").CombinedOutput(); err != nil {
			t.Errorf("the rolled back workload does not run: %v: %s", err, out)
		}
		c.assertNoNodePods(t)
	})

	// waitPatched starts kubectl capsrec ARGS and waits until its verify has patched the workload.
	waitPatched := func(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
		t.Helper()
		cmd := c.pluginCmd(t, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(90 * time.Second * testutil.Slow())
		for !strings.Contains(c.verifyWeb(t).Metadata.Annotations[verifyMark], "patched_template") {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("the verify never patched the workload: %s", stderr.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
		return cmd, &stderr
	}
	good := filepath.Join(t.TempDir(), "good.yaml")
	if err := os.WriteFile(good, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("interrupted", func(t *testing.T) {
		before := c.verifyWeb(t)
		cmd, _ := waitPatched(t, "profile", "deploy/verify-web", "--verify", "--patch-file", good, "--verify-duration", "5m")
		_ = cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); exitCode(err) == 0 {
			t.Errorf("an interrupted verify exits 0")
		}
		after := c.verifyWeb(t)
		if _, marked := after.Metadata.Annotations[verifyMark]; marked || kubectlTemplateHash(t, after.Spec.Template) != kubectlTemplateHash(t, before.Spec.Template) {
			t.Errorf("after Ctrl-C: mark %v, template changed %v; want the template from before, unmarked", marked, kubectlTemplateHash(t, after.Spec.Template) != kubectlTemplateHash(t, before.Spec.Template))
		}
		c.assertNoNodePods(t)
	})

	t.Run("changed by someone else", func(t *testing.T) {
		cmd, stderr := waitPatched(t, "profile", "deploy/verify-web", "--verify", "--patch-file", good, "--verify-duration", "5m")
		theirs := `{"spec":{"template":{"metadata":{"labels":{"changed-by":"someone-else"}}}}}`
		if out, err := c.kubectl("patch", "deploy/verify-web", "-p", theirs).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if exitCode(err) == 0 || !strings.Contains(stderr.String(), "changed by someone else during the verify: it is left as they made it") {
				t.Errorf("a verify whose workload someone else changed: %v\n%s", err, stderr)
			}
		case <-time.After(60 * time.Second * testutil.Slow()):
			_ = cmd.Process.Kill()
			t.Fatalf("the verify did not stop when someone else changed the workload%s", stderr.String())
		}
		after := c.verifyWeb(t)
		if !strings.Contains(string(after.Spec.Template), "someone-else") {
			t.Errorf("their change was overwritten: %s", after.Spec.Template)
		}
		if _, marked := after.Metadata.Annotations[verifyMark]; !marked {
			t.Errorf("the mark is gone: nothing tells the next run the template was not verified")
		}
		if out, err := c.kubectl("annotate", "deploy/verify-web", verifyMark+"-").CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		c.assertNoNodePods(t)
	})

	t.Run("killed mid-verify", func(t *testing.T) {
		wrong := filepath.Join(t.TempDir(), "wrong.yaml")
		if err := os.WriteFile(wrong, []byte(wrongPatch(out)), 0o644); err != nil {
			t.Fatal(err)
		}
		before := c.verifyWeb(t)
		cmd, _ := waitPatched(t, "profile", "deploy/verify-web", "--verify", "--patch-file", wrong, "--verify-duration", "5m", "--rollout-timeout", "5m")
		_ = cmd.Process.Kill() // SIGKILL: nothing of the plugin runs on
		_ = cmd.Wait()
		c.assertNoNodePods(t)
		assertNoSpools(t)
		if left := c.verifyWeb(t); grants(t, left.Spec.Template) == grants(t, before.Spec.Template) {
			t.Fatalf("the killed verify's patch is not on the workload: nothing tests the restore")
		}
		// The next verify restores the template from before, says so, and goes on.
		vout, verr, err := c.plugin(t, "profile", "deploy/verify-web", "--verify", "--patch-file", good, "--verify-duration", "3s")
		if err != nil || !strings.Contains(verr, "did not end: restoring its template from before") || !strings.Contains(vout, "verified: ") {
			t.Fatalf("the next --verify: %v\n%s%s", err, vout, verr)
		}
		after := c.verifyWeb(t)
		if _, marked := after.Metadata.Annotations[verifyMark]; marked || grants(t, after.Spec.Template) != grants(t, before.Spec.Template) {
			t.Errorf("after the next verify: mark %v, %s, want no mark and %s", marked, grants(t, after.Spec.Template), grants(t, before.Spec.Template))
		}
		c.assertNoMarkedRevision(t)
		c.assertNoNodePods(t)
	})
}

// assertNoSpools: a killed plugin leaves none of its recorders' spool files.
func assertNoSpools(t *testing.T) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(os.TempDir(), "capsrec-spool-*"))
	for _, f := range left {
		os.Remove(f)
	}
	if len(left) > 0 {
		t.Errorf("spool files left behind: %v", left)
	}
}

// templateCaps is each container's capabilities in a workload's template, by name.
func (c *k8sCluster) templateCaps(t *testing.T, ref string) map[string]string {
	t.Helper()
	out, err := c.kubectl("get", ref, "-o", "jsonpath={range .spec.template.spec.initContainers[*]}{.name}={.securityContext.capabilities.add}{\"\\n\"}{end}{range .spec.template.spec.containers[*]}{.name}={.securityContext.capabilities.add}{\"\\n\"}{end}").Output()
	if err != nil {
		t.Fatalf("kubectl get %s: %v", ref, err)
	}
	caps := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, add, _ := strings.Cut(l, "=")
		caps[name] = add
	}
	return caps
}

// TestKubectlMinimize, on the real cluster: a StatefulSet whose init
// container chowns a pid file and tolerates the refusal. Its profile adds
// CHOWN to the init container (it was used); --minimize finds it optional,
// with the refused check it tolerated, and the StatefulSet ends without it,
// working. The server's bind below 1024 (on containerd 1.6: NET_BIND_SERVICE)
// is found needed, through a try that crashes and is rolled back (a
// StatefulSet's forced roll back), and kept.
func TestKubectlMinimize(t *testing.T) {
	c := k8sUp(t)
	c.pluginEnv(t)
	manifest := "test/k8s/testdata/tolerant.yaml"
	if out, err := c.kubectl("apply", "-f", manifest).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = c.kubectl("delete", "-f", manifest, "--wait=false").Run() })
	for _, ref := range []string{"sts/tolerant", "ds/tolerant-ds"} {
		if out, err := c.kubectl("rollout", "status", ref, "--timeout=90s").CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	out, errOut, err := c.plugin(t, "profile", "sts/tolerant", "--restart", "--duration", "3s", "--verify", "--minimize", "--verify-duration", "5s", "--rollout-timeout", "60s", "-o", "patch")
	if err != nil {
		t.Fatalf("profile --verify --minimize: %v\n%s%s", err, out, errOut)
	}
	t.Logf("the minimized patch:\n%s", out)
	if !strings.Contains(out, "# minimize: CHOWN of container prepare is optional: healthy without it for 5s; refused and tolerated: CAP_CHOWN denied") {
		t.Fatalf("--minimize does not find the init container's CHOWN optional, with the refusal it tolerated:\n%s%s", out, errOut)
	}
	if add := addList(out, "prepare"); len(add) != 0 {
		t.Errorf("the minimized patch adds %v to prepare, want nothing:\n%s", add, out)
	}
	caps := c.templateCaps(t, "sts/tolerant")
	if strings.Contains(caps["prepare"], "CHOWN") {
		t.Errorf("the StatefulSet's init container keeps CHOWN: %v", caps)
	}
	if strings.Contains(out, "NET_BIND_SERVICE of container server") {
		// containerd 1.6: the bind makes a check; without it the server crashes.
		if !strings.Contains(out, "# minimize: NET_BIND_SERVICE of container server is needed: without it CAP_NET_BIND_SERVICE denied") ||
			!strings.Contains(caps["server"], "NET_BIND_SERVICE") {
			t.Errorf("NET_BIND_SERVICE is not found needed and kept: %v\n%s", caps, out)
		}
	}
	if out, err := c.kubectl("rollout", "status", "sts/tolerant", "--timeout=60s").CombinedOutput(); err != nil {
		t.Errorf("the minimized StatefulSet does not run: %v: %s", err, out)
	}
	c.assertNoNodePods(t)

	// A DaemonSet with an init container, its plugin killed mid-verify: the
	// next --restart puts its template from before back before it profiles.
	before := c.templateCaps(t, "ds/tolerant-ds")
	cmd := c.pluginCmd(t, "profile", "ds/tolerant-ds", "--restart", "--duration", "2s", "--verify", "--verify-duration", "5m", "-o", "patch")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(120 * time.Second * testutil.Slow())
	for {
		out, _ := c.kubectl("get", "ds/tolerant-ds", "-o", "jsonpath={.metadata.annotations.capsrec\\.io/verify-original}").Output()
		if strings.Contains(string(out), "patched_template") {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatal("the verify never patched the DaemonSet")
		}
		time.Sleep(200 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	c.assertNoNodePods(t)
	assertNoSpools(t)
	if got := c.templateCaps(t, "ds/tolerant-ds"); got["prepare"] == before["prepare"] && got["server"] == before["server"] {
		t.Fatalf("the killed verify's patch is not on the DaemonSet (%v): nothing tests the restore", got)
	}
	if out, err := c.kubectl("rollout", "status", "ds/tolerant-ds", "--timeout=60s").CombinedOutput(); err != nil {
		t.Fatalf("the killed verify's patch does not roll out: %v: %s", err, out)
	}
	out, errOut, err = c.plugin(t, "profile", "ds/tolerant-ds", "--duration", "1s")
	if err != nil || !strings.Contains(errOut, "runs the patch of a --verify that did not end") {
		t.Errorf("a profile of the marked DaemonSet does not warn: %v\n%s%s", err, out, errOut)
	}
	out, errOut, err = c.plugin(t, "profile", "ds/tolerant-ds", "--restart", "--duration", "2s", "-o", "patch")
	if err != nil || !strings.Contains(errOut, "did not end: restoring its template from before") {
		t.Fatalf("the next --restart: %v\n%s%s", err, out, errOut)
	}
	if got := c.templateCaps(t, "ds/tolerant-ds"); got["prepare"] != before["prepare"] || got["server"] != before["server"] {
		t.Errorf("after the restore the DaemonSet's capabilities are %v, want those from before, %v", got, before)
	}
	if ann, _ := c.kubectl("get", "ds/tolerant-ds", "-o", "jsonpath={.metadata.annotations}").Output(); strings.Contains(string(ann), verifyMark) {
		t.Errorf("the DaemonSet keeps the mark after the restore: %s", ann)
	}
	c.assertNoNodePods(t)
}
