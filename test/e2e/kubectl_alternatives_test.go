package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKubectlProfileAlternatives: web servers on port 80 in pods of their
// own network, on the real cluster. web80's patch with --alternatives sets
// ip_unprivileged_port_start=80 and adds nothing, and rolls out; without
// the sysctl it does not. preset's namespace already lets port 80 pass (as
// containerd 2 does for every pod): its profile adds nothing but sets the
// sysctl, which is what keeps it working on a runtime that does not (CRI-O).
func TestKubectlProfileAlternatives(t *testing.T) {
	c := k8sUp(t)
	c.pluginEnv(t)
	manifest := "test/k8s/testdata/web80.yaml"
	if out, err := c.kubectl("apply", "-f", manifest).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = c.kubectl("delete", "-f", manifest, "--wait=false").Run() })
	const sysctl = "        sysctls:\n        - name: net.ipv4.ip_unprivileged_port_start\n          value: \"80\"\n"
	for _, w := range []struct {
		ref  string
		args []string
	}{
		{"deploy/web80", []string{"--alternatives"}},
		{"deploy/preset", nil},
	} {
		t.Run(w.ref, func(t *testing.T) {
			if out, err := c.kubectl("rollout", "status", w.ref, "--timeout=90s").CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			args := append([]string{"profile", w.ref, "--restart", "--duration", "3s", "-o", "patch"}, w.args...)
			out, errOut, err := c.plugin(t, args...)
			if err != nil {
				t.Fatalf("profile: %v\n%s%s", err, out, errOut)
			}
			if add := addList(out, "server"); len(add) != 0 || !strings.Contains(out, sysctl) {
				t.Fatalf("%s -o patch %v: add %v, want none and %s=80:\n%s%s", w.ref, w.args, add, "ip_unprivileged_port_start", out, errOut)
			}
			patch := filepath.Join(t.TempDir(), "patch.yaml")
			if err := os.WriteFile(patch, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			label := strings.TrimPrefix(w.ref, "deploy/")
			if ok, status := c.patchRollsOut(t, w.ref, patch, label+"-exact"); !ok {
				t.Fatalf("the profile's patch did not roll out: %s", status)
			}
			// The same patch at the kernel's default, 1024 (CRI-O's; containerd 2 would set 0 without it).
			without := filepath.Join(t.TempDir(), "without.yaml")
			if err := os.WriteFile(without, []byte(strings.Replace(out, sysctl, strings.Replace(sysctl, `"80"`, `"1024"`, 1), 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			if ok, _ := c.patchRollsOut(t, w.ref, without, label+"-without"); ok {
				t.Errorf("%s rolled out with neither NET_BIND_SERVICE nor the sysctl below port 80", w.ref)
			}
		})
	}
	c.assertNoNodePods(t)
}
