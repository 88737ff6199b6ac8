package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// k8sUpContainerd2 is the cluster, when its node runs containerd 2 (RUNTIME=containerd2 test/k8s/up.sh up):
// user-namespace pods need it. CAPSREC_REQUIRE_K8S_RUNTIME=containerd2 makes the skip a failure.
func k8sUpContainerd2(t *testing.T) *k8sCluster {
	t.Helper()
	c := k8sUp(t)
	if c.env["RUNTIME"] != "containerd2" {
		if os.Getenv("CAPSREC_REQUIRE_K8S_RUNTIME") == "containerd2" {
			t.Fatalf("CAPSREC_REQUIRE_K8S_RUNTIME=containerd2, but the node runs %q", c.env["RUNTIME"])
		}
		t.Skipf("the node runs %q: user-namespace pods need RUNTIME=containerd2 test/k8s/up.sh up", c.env["RUNTIME"])
	}
	return c
}

type readinessJSON struct {
	Subjects []struct {
		Workload       string `json:"workload"`
		Container      string `json:"container"`
		Recommendation struct {
			Add    []string
			UserNS *struct {
				Ready, Decided, Already bool
				Reasons                 []string
			} `json:"user_namespace"`
		}
	}
}

// TestKubectlUserNSReadiness, on the containerd 2 node: capsrec says which
// workload would run with hostUsers: false, and running them proves it.
// userns-ready's patch with --userns sets hostUsers: false and rolls out
// with its add list; profiled again in its own user namespace its needs are
// the same add list, checked there. userns-mknod is not ready, because
// CAP_MKNOD is checked against the host's user namespace (capable()); its
// patch leaves hostUsers alone, and with hostUsers: false it fails to start.
func TestKubectlUserNSReadiness(t *testing.T) {
	c := k8sUpContainerd2(t)
	c.pluginEnv(t)
	manifest := "test/k8s/testdata/userns.yaml"
	if out, err := c.kubectl("apply", "-f", manifest).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = c.kubectl("delete", "-f", manifest, "--wait=false").Run() })
	for _, w := range []struct {
		ref   string
		add   []string
		ready bool
	}{
		{"deploy/userns-ready", []string{"CHOWN", "SYS_CHROOT"}, true},
		{"deploy/userns-mknod", []string{"MKNOD"}, false},
	} {
		t.Run(w.ref, func(t *testing.T) {
			if out, err := c.kubectl("rollout", "status", w.ref, "--timeout=90s").CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			out, errOut, err := c.plugin(t, "profile", w.ref, "--restart", "--duration", "3s", "-o", "patch", "--userns")
			if err != nil {
				t.Fatalf("profile: %v\n%s%s", err, out, errOut)
			}
			if add := addList(out, "app"); !slices.Equal(add, w.add) || strings.Contains(out, "hostUsers: false\n") != w.ready {
				t.Fatalf("-o patch --userns: add %v, want %v; hostUsers: false set: want %v:\n%s%s", add, w.add, w.ready, out, errOut)
			}
			if !w.ready && !strings.Contains(out, "CAP_MKNOD at vfs_mknod (through capable()) by /bin/busybox: checked against the host's user namespace") {
				t.Errorf("the patch does not say why userns-mknod is not ready:\n%s", out)
			}
			text := out
			if !w.ready { // what capsrec advised against, to see it fail as it said
				text = strings.Replace(out, "    spec:\n", "    spec:\n      hostUsers: false\n", 1)
			}
			patch := filepath.Join(t.TempDir(), "patch.yaml")
			if err := os.WriteFile(patch, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			label := strings.TrimPrefix(w.ref, "deploy/")
			if ok, status := c.patchRollsOut(t, w.ref, patch, label+"-userns"); ok != w.ready {
				t.Fatalf("with hostUsers: false and add %v: rolled out %v, want %v: %s", w.add, ok, w.ready, status)
			}
			if !w.ready {
				return
			}
			// In its own user namespace now: the same needs, from checks made there.
			out, errOut, err = c.plugin(t, "profile", w.ref, "--restart", "--duration", "3s", "-o", "json")
			if err != nil {
				t.Fatalf("profile: %v\n%s%s", err, out, errOut)
			}
			var prof readinessJSON
			if err := json.Unmarshal([]byte(out), &prof); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if len(prof.Subjects) != 1 || !slices.Equal(prof.Subjects[0].Recommendation.Add, w.add) ||
				prof.Subjects[0].Recommendation.UserNS == nil || !prof.Subjects[0].Recommendation.UserNS.Already {
				t.Errorf("profiled with hostUsers: false: want add %v, in a user namespace of its own:\n%s", w.add, out)
			}
		})
	}
	c.assertNoNodePods(t)
}
