package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capsrec/capsrec/internal/testutil"
)

// applyAndRollOut applies a manifest, removes it at the end, and waits for its rollout.
func (c *k8sCluster) applyAndRollOut(t *testing.T, manifest, workload string) {
	t.Helper()
	if out, err := c.kubectl("apply", "-f", manifest).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = c.kubectl("delete", "-f", manifest, "--wait=false").Run() })
	if out, err := c.kubectl("rollout", "status", workload, "--timeout=90s").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// patchRollsOut applies a patch file to workload, its pods labelled
// proof=label, and tells whether they come up: all Ready, none restarted or
// failed (a failed start crash-loops long before any progress deadline).
func (c *k8sCluster) patchRollsOut(t *testing.T, workload, patch, label string) (bool, string) {
	t.Helper()
	text := strings.Replace(mustRead(t, patch), "  template:\n", "  template:\n    metadata:\n      labels:\n        proof: "+label+"\n", 1)
	labelled := filepath.Join(t.TempDir(), label+".yaml")
	if err := os.WriteFile(labelled, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := c.kubectl("patch", workload, "--patch-file", labelled).CombinedOutput(); err != nil {
		t.Fatalf("kubectl patch %s --patch-file: %v: %s\n%s", workload, err, out, text)
	}
	deadline := time.Now().Add(90 * time.Second * testutil.Slow())
	var readySince time.Time
	for {
		out, err := c.kubectl("get", "pods", "-l", "proof="+label, "-o", "json").Output()
		if err != nil {
			t.Fatal(err)
		}
		type containerStatus struct {
			RestartCount int
			State        struct {
				Terminated *struct{ ExitCode int }
				Waiting    *struct{ Reason string }
			}
		}
		var l struct {
			Items []struct {
				Status struct {
					Conditions            []struct{ Type, Status string }
					ContainerStatuses     []containerStatus
					InitContainerStatuses []containerStatus
				}
			}
		}
		if err := json.Unmarshal(out, &l); err != nil {
			t.Fatal(err)
		}
		ready := 0
		for _, p := range l.Items {
			for i, st := range append(p.Status.ContainerStatuses, p.Status.InitContainerStatuses...) {
				main := i < len(p.Status.ContainerStatuses) // an init container ends, with 0
				if st.RestartCount > 0 || (st.State.Terminated != nil && (main || st.State.Terminated.ExitCode != 0)) ||
					(st.State.Waiting != nil && st.State.Waiting.Reason == "CrashLoopBackOff") {
					return false, string(out)
				}
			}
			for _, cond := range p.Status.Conditions {
				if cond.Type == "Ready" && cond.Status == "True" {
					ready++
				}
			}
		}
		// Ready, and still up 3 seconds later: a start that fails comes quickly.
		if len(l.Items) > 0 && ready == len(l.Items) {
			if readySince.IsZero() {
				readySince = time.Now()
			} else if time.Since(readySince) > 3*time.Second {
				return true, ""
			}
		} else {
			readySince = time.Time{}
		}
		if time.Now().After(deadline) {
			return false, "not ready in time: " + string(out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// addList reads the add list of a patch's container.
func addList(patch, container string) []string {
	_, rest, ok := strings.Cut(patch, `- name: "`+container+`"`)
	if !ok {
		return nil
	}
	_, rest, _ = strings.Cut(rest, "add: [")
	list, _, _ := strings.Cut(rest, "]")
	if list == "" {
		return []string{}
	}
	return strings.Split(list, ", ")
}

// TestKubectlProfileRestart: a web server whose needs are all at start
// (chown its data directory, bind port 987, switch to uid 1234), running
// before capsrec starts. Profiled as it runs, the profile says its start was
// not observed and --check fails; with --restart its add list is exact, and
// replayed with kubectl patch --patch-file it rolls out and serves, while
// any one capability less fails the rollout.
func TestKubectlProfileRestart(t *testing.T) {
	c := k8sUp(t)
	c.pluginEnv(t)
	c.applyAndRollOut(t, "test/k8s/testdata/web.yaml", "deploy/web")
	want := []string{"CHOWN", "SETGID", "SETUID", "NET_BIND_SERVICE"} // in capability order

	out, errOut, err := c.plugin(t, "profile", "deploy/web", "--duration", "3s", "-o", "yaml")
	if err != nil || !strings.Contains(out, "start not observed") || !strings.Contains(errOut, "start not observed") {
		t.Errorf("a profile of the running server must say its start was not observed: %v\n%s%s", err, out, errOut)
	}
	out, errOut, err = c.plugin(t, "profile", "deploy/web", "--duration", "3s", "--check", "test/k8s/testdata/web.yaml")
	if exitCode(err) != 2 || !strings.Contains(out, "the profile is partial") {
		t.Errorf("--check of a profile that did not see the start: exit %v, want 2 (cannot decide) and partial:\n%s%s", err, out, errOut)
	}

	patch := filepath.Join(t.TempDir(), "web.patch.yaml")
	out, errOut, err = c.plugin(t, "profile", "deploy/web", "--restart", "--duration", "3s", "-o", "patch")
	if err != nil {
		t.Fatalf("profile --restart: %v\n%s%s", err, out, errOut)
	}
	if err := os.WriteFile(patch, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := addList(out, "server"); !slices.Equal(got, want) || !strings.Contains(out, "start observed in 1 of 1 pods") {
		t.Fatalf("--restart -o patch: add %v, want %v, start observed:\n%s%s", got, want, out, errOut)
	}

	// Replay: exactly the add list rolls out and serves; one less does not roll out.
	if ok, status := c.patchRollsOut(t, "deploy/web", patch, "exact"); !ok {
		t.Fatalf("the profile's own patch did not roll out: %s", status)
	}
	if conn, err := net.DialTimeout("tcp", "127.0.0.1:987", 5*time.Second); err != nil {
		t.Errorf("the server does not serve with drop ALL + add %v: %v", want, err)
	} else {
		conn.Close()
	}
	for i := range want {
		less := slices.Delete(slices.Clone(want), i, i+1)
		variant := filepath.Join(t.TempDir(), fmt.Sprintf("less-%d.yaml", i))
		text := strings.Replace(out, "add: ["+strings.Join(want, ", ")+"]", "add: ["+strings.Join(less, ", ")+"]", 1)
		if err := os.WriteFile(variant, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if ok, _ := c.patchRollsOut(t, "deploy/web", variant, fmt.Sprintf("less-%d", i)); ok {
			t.Errorf("drop ALL + add %v rolled out: %s was not needed", less, want[i])
		}
	}
	c.assertNoNodePods(t)
}

// TestKubectlProfileRestartInitContainers: a DaemonSet and a StatefulSet,
// each with an init container that needs what its main container does not.
// --restart -o patch gives each container its own add list, init containers
// under initContainers; the patches roll out, and one capability less fails.
func TestKubectlProfileRestartInitContainers(t *testing.T) {
	c := k8sUp(t)
	c.pluginEnv(t)
	if out, err := c.kubectl("apply", "-f", "test/k8s/testdata/agent-db.yaml").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = c.kubectl("delete", "-f", "test/k8s/testdata/agent-db.yaml", "--wait=false").Run() })
	for _, w := range []struct {
		ref, label       string
		init, main       string
		initAdd, mainAdd []string
	}{
		{"ds/agent", "agent", "prep", "run", []string{"CHOWN"}, []string{"MKNOD"}},
		{"sts/db", "db", "init", "main", []string{"SYS_CHROOT"}, []string{"DAC_OVERRIDE"}},
	} {
		t.Run(w.ref, func(t *testing.T) {
			if out, err := c.kubectl("rollout", "status", w.ref, "--timeout=90s").CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			out, errOut, err := c.plugin(t, "profile", w.ref, "--restart", "--duration", "3s", "-o", "patch")
			if err != nil {
				t.Fatalf("profile --restart: %v\n%s%s", err, out, errOut)
			}
			containers, inits, _ := strings.Cut(out, "initContainers:")
			if got := addList(inits, w.init); !slices.Equal(got, w.initAdd) {
				t.Errorf("%s: init container %s add %v, want %v under initContainers:\n%s", w.ref, w.init, got, w.initAdd, out)
			}
			if got := addList(containers, w.main); !slices.Equal(got, w.mainAdd) {
				t.Errorf("%s: container %s add %v, want %v:\n%s", w.ref, w.main, got, w.mainAdd, out)
			}
			patch := filepath.Join(t.TempDir(), "patch.yaml")
			if err := os.WriteFile(patch, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			if ok, status := c.patchRollsOut(t, w.ref, patch, w.label+"-exact"); !ok {
				t.Fatalf("the profile's patch did not roll out: %s", status)
			}
			for i, remove := range []string{w.initAdd[0], w.mainAdd[0]} {
				variant := filepath.Join(t.TempDir(), fmt.Sprintf("less-%d.yaml", i))
				if err := os.WriteFile(variant, []byte(strings.Replace(out, "add: ["+remove+"]", "add: []", 1)), 0o644); err != nil {
					t.Fatal(err)
				}
				if ok, _ := c.patchRollsOut(t, w.ref, variant, fmt.Sprintf("%s-less-%d", w.label, i)); ok {
					pods, _ := c.kubectl("get", "pods", "-o", "wide", "--show-labels").CombinedOutput()
					t.Errorf("%s without %s rolled out: it was not needed\n%s\n%s", w.ref, remove, mustRead(t, variant), pods)
				}
				// A StatefulSet does not replace a pod that never came up: delete it.
				_ = c.kubectl("delete", "pods", "-l", "app.kubernetes.io/name="+w.label, "--wait=false").Run()
			}
		})
	}
	c.assertNoNodePods(t)
}
