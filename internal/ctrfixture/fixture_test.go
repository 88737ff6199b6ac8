package ctrfixture

import (
	"os"
	"strings"
	"testing"
)

// The fixture itself: a pod runs, exec works, and tear-down leaves no cgroup behind.
func TestPodRunsAndGoes(t *testing.T) {
	c := Start(t)
	pod := c.RunPod("xwing", "default", map[string]string{"app": "xwing"}, "spaceship")
	if code := c.Exec(pod.Containers["spaceship"], "/bin/sh", "-c", "exit 7"); code != 7 {
		t.Errorf("exec exit code %d, want 7", code)
	}
	procs, err := os.ReadFile("/sys/fs/cgroup/unified/kubepods/besteffort/pod" + pod.UID + "/" + pod.Containers["spaceship"] + "/cgroup.procs")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err == nil && strings.TrimSpace(string(procs)) == "" {
		t.Errorf("the container's cgroup v2 has no process")
	}
	c.RemovePod(pod)
	if _, err := os.Stat("/sys/fs/cgroup/memory/kubepods/besteffort/pod" + pod.UID); !os.IsNotExist(err) {
		t.Errorf("pod cgroup left behind: %v", err)
	}
}
