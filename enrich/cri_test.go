package enrich

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/capsrec/capsrec/internal/fakecri"
)

// The CRI client over a CRI server (fakecri, as containerd answers): the
// runtime named, containers described with their pods, what it does not know
// an error, endpoints it cannot use refused with their reason.
func TestCRIDescribes(t *testing.T) {
	id := strings.Repeat("c", 64)
	endpoint := fakecri.Start(t, fakecri.Container{ID: id, Name: "nginx", Image: "nginx:1", PID: uint32(os.Getpid()),
		SandboxID: "sb1", Pod: "web-1", Namespace: "prod", UID: "u-1",
		Labels: map[string]string{"app": "web", "io.kubernetes.pod.name": "web-1"}})
	cri, err := DialCRI([]string{"unix:///nonexistent/cri.sock", endpoint}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cri.Close()
	if cri.RuntimeName != "containerd" || cri.Endpoint != endpoint || cri.ServerPID != os.Getpid() {
		t.Errorf("dialed %s %s, server pid %d; want containerd at %s, pid %d", cri.RuntimeName, cri.Endpoint, cri.ServerPID, endpoint, os.Getpid())
	}
	infos, err := cri.List(context.Background())
	if err != nil || len(infos) != 1 {
		t.Fatalf("List: %v, %v", infos, err)
	}
	ctr := infos[0].Container
	if ctr.ID != id || ctr.Name != "nginx" || ctr.ImageName != "nginx:1" || ctr.Runtime != "containerd" || ctr.HostPID != uint32(os.Getpid()) || ctr.StartTime.IsZero() {
		t.Errorf("container %+v", ctr)
	}
	if p := ctr.Pod; p == nil || p.Namespace != "prod" || p.Name != "web-1" || p.UID != "u-1" || len(p.Labels) != 1 || p.Labels["app"] != "web" {
		t.Errorf("pod %+v: want prod/web-1 with its own labels only", ctr.Pod)
	}
	if infos[0].CgroupV2 == 0 && cgroup2Mounted() {
		t.Errorf("no cgroup found for pid %d", os.Getpid())
	}
	if _, err := cri.Lookup(context.Background(), strings.Repeat("d", 64)); err == nil {
		t.Errorf("Lookup of a container the runtime does not know answered")
	}

	for _, bad := range []struct{ endpoint, want string }{
		{"tcp://127.0.0.1:1", "only unix:// sockets"},
		{"/nonexistent/cri.sock", "no such file or directory"},
	} {
		if _, err := DialCRI([]string{bad.endpoint}, time.Second); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("DialCRI(%s) = %v, want %q", bad.endpoint, err, bad.want)
		}
	}
	if !AnySocket([]string{"/nonexistent", endpoint}) || AnySocket([]string{"unix:///nonexistent"}) {
		t.Errorf("AnySocket does not tell a socket that exists")
	}
}

func cgroup2Mounted() bool {
	_, err := cgroup2Root()
	return err == nil
}

func TestRuntimePrefix(t *testing.T) {
	for name, want := range map[string]string{"containerd": "containerd", "io.containerd.runc.v2": "containerd", "cri-o": "cri-o", "": "containerd", "docker": "docker"} {
		if got := runtimePrefix(name); got != want {
			t.Errorf("runtimePrefix(%q) = %q, want %q", name, got, want)
		}
	}
}
