package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capsrec/capsrec/internal/testutil"
)

// waitManifest writes test/k8s/testdata/wait.yaml.tmpl with a name suffix and,
// per container (chowner, idler, maker), drop ALL + add caps, or nothing for nil.
func waitManifest(t *testing.T, suffix string, caps map[string][]string) string {
	t.Helper()
	tmpl := mustRead(t, "test/k8s/testdata/wait.yaml.tmpl")
	repl := []string{"{{SUFFIX}}", suffix}
	for _, name := range []string{"chowner", "idler", "maker"} {
		sc := ""
		if add, ok := caps[name]; ok {
			sc = "securityContext: {capabilities: {drop: [ALL], add: [" + strings.Join(add, ", ") + "]}}"
		}
		repl = append(repl, "{{CAPS_"+strings.ToUpper(name)+"}}", sc)
	}
	path := filepath.Join(t.TempDir(), "wait"+suffix+".yaml")
	if err := os.WriteFile(path, []byte(strings.NewReplacer(repl...).Replace(tmpl)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// podPhases waits until every pod labelled capsrec-test=wait<suffix> has ended
// (3 of them), and returns each container's pod phase.
func (c *k8sCluster) podPhases(t *testing.T, suffix string) map[string]string {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second * testutil.Slow())
	for {
		out, err := c.kubectl("get", "pods", "-l", "capsrec-test=wait"+suffix, "-o", "json").Output()
		if err != nil {
			t.Fatal(err)
		}
		var l struct {
			Items []struct {
				Spec struct {
					Containers []struct{ Name string }
				}
				Status struct{ Phase string }
			}
		}
		if err := json.Unmarshal(out, &l); err != nil {
			t.Fatal(err)
		}
		phases := map[string]string{}
		for _, p := range l.Items {
			if p.Status.Phase == "Succeeded" || p.Status.Phase == "Failed" {
				phases[p.Spec.Containers[0].Name] = p.Status.Phase
			}
		}
		if len(phases) == 3 {
			return phases
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pods of wait%s did not all end: %s", suffix, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestKubectlProfileWait: recorders ready first, then a bare Pod, an idle
// bare Pod and a Job are created; each is profiled from its start (the Job's
// container and the idle one included, add []), and each profile replayed
// works, while one capability less fails.
func TestKubectlProfileWait(t *testing.T) {
	c := k8sUp(t)
	c.pluginEnv(t)
	cmd := exec.Command(pluginBinary(t), "profile", "-l", "capsrec-test=wait", "--wait", "--duration", "15s", "-o", "json")
	var stdout bytes.Buffer
	stderr := &lockedBuffer{} // the command writes it while the test reads it
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for deadline := time.Now().Add(90 * time.Second * testutil.Slow()); !strings.Contains(stderr.String(), "now\n"); time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-exited:
			t.Fatalf("profile --wait ended before it was ready: %v: %s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the recorders were not ready: %s", stderr.String())
		}
	}
	manifest := waitManifest(t, "", nil)
	if out, err := c.kubectl("apply", "-f", manifest).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = c.kubectl("delete", "-f", manifest, "--wait=false").Run() })
	if err := <-exited; err != nil {
		t.Fatalf("profile --wait: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	var prof profileJSON
	if err := json.Unmarshal(stdout.Bytes(), &prof); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	want := map[string][]string{"chowner": {"CHOWN"}, "idler": {}, "maker": {"MKNOD"}}
	got := map[string][]string{}
	for _, s := range prof.Subjects {
		if s.Container == "" {
			continue
		}
		got[s.Container] = s.Recommendation.Add
		if !s.Coverage.StartObserved {
			t.Errorf("%s: start not observed with --wait", s.Container)
		}
	}
	for name, add := range want {
		if !slices.Equal(got[name], add) {
			t.Errorf("%s's add = %v, want %v\n%s", name, got[name], add, stderr.String())
		}
	}

	// Replay: exactly the add lists succeed; one less fails.
	exact := waitManifest(t, "-exact", want)
	if out, err := c.kubectl("apply", "-f", exact).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = c.kubectl("delete", "-f", exact, "--wait=false").Run() })
	for name, phase := range c.podPhases(t, "-exact") {
		if phase != "Succeeded" {
			t.Errorf("%s with drop ALL + add %v: %s", name, want[name], phase)
		}
	}
	less := waitManifest(t, "-less", map[string][]string{"chowner": {}, "idler": {}, "maker": {}})
	if out, err := c.kubectl("apply", "-f", less).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = c.kubectl("delete", "-f", less, "--wait=false").Run() })
	for name, phase := range c.podPhases(t, "-less") {
		if (phase == "Succeeded") != (len(want[name]) == 0) {
			t.Errorf("%s with drop ALL and not %v: %s", name, want[name], phase)
		}
	}
	c.assertNoNodePods(t)
}

// lockedBuffer is written by a command while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
