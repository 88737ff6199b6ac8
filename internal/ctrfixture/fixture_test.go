package ctrfixture

import (
	"os"
	"strings"
	"testing"
	"time"
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

// A pod of its own network namespace: eth0 has the pod's address, its
// sysctls hold there (a low port binds with no capability), and nothing of
// it is left on the host once it goes.
func TestPodNetwork(t *testing.T) {
	c := Start(t)
	before, _ := os.ReadDir("/var/run/netns")
	pod := c.RunPodWith(PodOptions{Name: "web", Namespace: "default", OwnNetwork: true,
		Sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "80"}})
	id := c.RunContainer(pod, ContainerSpec{Name: "server", Caps: []string{},
		Command: []string{"/bin/sh", "-c", "echo ok > /tmp/index.html; httpd -p 80 -h /tmp; sleep 0.3; wget -q -O - http://127.0.0.1/index.html && grep -q eth0 /proc/net/dev"}})
	if code := c.WaitExit(id, 30*time.Second); code != 0 {
		t.Errorf("with the sysctl and no capability, the server did not answer on port 80 in the pod's own network: exit %d", code)
	}
	c.RemovePod(pod)
	if after, _ := os.ReadDir("/var/run/netns"); len(after) != len(before) {
		t.Errorf("network namespaces left on the host: %v, were %v", after, before)
	}
}
