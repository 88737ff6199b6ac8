package e2e

import (
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capsrec/capsrec/internal/ctrfixture"
	"github.com/capsrec/capsrec/internal/testutil"
)

// podEvent is the pod part of a JSON event.
type podEvent struct {
	ProcessKprobe struct {
		Process struct {
			PID    int    `json:"pid"`
			Binary string `json:"binary"`
			Docker string `json:"docker"`
			Pod    *struct {
				Namespace string            `json:"namespace"`
				Name      string            `json:"name"`
				UID       string            `json:"uid"`
				Labels    map[string]string `json:"pod_labels"`
				Container struct {
					ID    string `json:"id"`
					Name  string `json:"name"`
					PID   int    `json:"pid"`
					Image struct {
						ID   string `json:"id"`
						Name string `json:"name"`
					} `json:"image"`
					StartTime string `json:"start_time"`
				} `json:"container"`
			} `json:"pod"`
		} `json:"process"`
		Parent struct {
			Pod *struct {
				Name string `json:"name"`
			} `json:"pod"`
		} `json:"parent"`
		Args []struct {
			CapabilityArg *struct {
				Value int `json:"value"`
			} `json:"capability_arg"`
		} `json:"args"`
		Return struct {
			IntArg int `json:"int_arg"`
		} `json:"return"`
	} `json:"process_kprobe"`
}

func podOf(t *testing.T, line []byte) podEvent {
	t.Helper()
	var ev podEvent
	if err := json.Unmarshal(line, &ev); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	return ev
}

func (e podEvent) podName() string {
	if p := e.ProcessKprobe.Process.Pod; p != nil {
		return p.Namespace + "/" + p.Name
	}
	return ""
}

// hostDmesgAsNobody makes a host CAP_SYSLOG denial and returns its pid.
func hostDmesgAsNobody() int {
	cmd := exec.Command("dmesg")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	_ = cmd.Run()
	return cmd.Process.Pid
}

// The seed scenario: capsrec record --pod xwing, then `kubectl exec xwing -- dmesg`.
func TestPods(t *testing.T) {
	method := firstMethod(t)
	dmesgRestrict(t)
	c := ctrfixture.Start(t)
	xwing := c.RunPod("xwing", "default", map[string]string{"app": "xwing", "class": "xwing", "org": "alliance"}, "spaceship")
	tie := c.RunPod("tiefighter", "empire", map[string]string{"app": "tiefighter", "org": "empire"}, "cockpit", "gunner")
	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", c.Endpoint)

	t.Run("seed: --pod xwing", func(t *testing.T) {
		s := testutil.Record(t, "-o", "json", "--attach", method, "--pod", "xwing", "--cap", "syslog")
		if code := c.Exec(xwing.Containers["spaceship"], "dmesg"); code == 0 {
			t.Errorf("dmesg in the container succeeded; it should lack CAP_SYSLOG")
		}
		c.Exec(tie.Containers["cockpit"], "dmesg")
		hostPid := hostDmesgAsNobody()
		line := s.WaitFor("xwing's CAP_SYSLOG", func(l []byte) bool { return podOf(t, l).podName() == "default/xwing" })
		ev := podOf(t, line)
		pk := ev.ProcessKprobe
		pod := pk.Process.Pod
		id := xwing.Containers["spaceship"]
		if pk.Args[1].CapabilityArg.Value != 34 || pk.Return.IntArg != -1 || !strings.HasSuffix(pk.Process.Binary, "dmesg") {
			t.Errorf("check: cap %d, int_arg %d, binary %q", pk.Args[1].CapabilityArg.Value, pk.Return.IntArg, pk.Process.Binary)
		}
		if pod.Container.Name != "spaceship" || pod.Container.ID != "containerd://"+id || pk.Process.Docker != id[:31] || pod.UID != xwing.UID {
			t.Errorf("container: %+v, docker %q", pod.Container, pk.Process.Docker)
		}
		if pod.Labels["app"] != "xwing" || pod.Labels["class"] != "xwing" || pod.Labels["org"] != "alliance" || len(pod.Labels) != 3 {
			t.Errorf("pod_labels = %v", pod.Labels)
		}
		if pod.Container.Image.Name != ctrfixture.AppImage || !strings.HasPrefix(pod.Container.Image.ID, "capsrec.test/busybox@sha256:") {
			t.Errorf("image = %+v, want name %s and a repo digest", pod.Container.Image, ctrfixture.AppImage)
		}
		// Tetragon's container.pid: the pid inside the container's own pid namespace.
		if pod.Container.PID <= 0 || pod.Container.PID == pk.Process.PID || pod.Container.PID > 1000 {
			t.Errorf("container.pid = %d (host pid %d), want the pid in the container", pod.Container.PID, pk.Process.PID)
		}
		if pk.Parent.Pod == nil || pk.Parent.Pod.Name != "xwing" {
			t.Errorf("parent pod = %+v", pk.Parent.Pod)
		}
		s.Stop(syscall.SIGINT)
		for _, l := range s.Lines() {
			ev := podOf(t, l)
			if ev.podName() != "default/xwing" || ev.ProcessKprobe.Process.PID == hostPid {
				t.Errorf("--pod xwing printed a check of %q (pid %d)", ev.podName(), ev.ProcessKprobe.Process.PID)
			}
		}
	})

	filterCases := []struct {
		name  string
		args  []string
		match func(podEvent) bool
	}{
		{"--namespace", []string{"-n", "empire"}, func(e podEvent) bool { return e.podName() == "empire/tiefighter" }},
		{"--selector", []string{"-l", "org=alliance,app in (xwing)"}, func(e podEvent) bool { return e.podName() == "default/xwing" }},
		{"--container", []string{"--pod", "tie*", "--container", "gunner"}, func(e podEvent) bool {
			return e.podName() == "empire/tiefighter" && e.ProcessKprobe.Process.Pod.Container.Name == "gunner"
		}},
		{"--host", []string{"--host"}, func(e podEvent) bool { return e.ProcessKprobe.Process.Pod == nil }},
	}
	for _, fc := range filterCases {
		t.Run(fc.name, func(t *testing.T) {
			s := testutil.Record(t, append([]string{"-o", "json", "--attach", method, "--cap", "syslog"}, fc.args...)...)
			c.Exec(xwing.Containers["spaceship"], "dmesg")
			c.Exec(tie.Containers["cockpit"], "dmesg")
			c.Exec(tie.Containers["gunner"], "dmesg")
			hostDmesgAsNobody()
			s.WaitFor("a matching check", func(l []byte) bool { return fc.match(podOf(t, l)) })
			c.Exec(xwing.Containers["spaceship"], "true") // a last round trip before stopping
			s.Stop(syscall.SIGINT)
			for _, l := range s.Lines() {
				if !fc.match(podOf(t, l)) {
					t.Errorf("%s printed %s", fc.name, l)
				}
			}
		})
	}

	t.Run("compact shows namespace/pod/container", func(t *testing.T) {
		s := testutil.Record(t, "--attach", method, "--pod", "xwing", "--cap", "syslog")
		c.Exec(xwing.Containers["spaceship"], "dmesg")
		s.WaitFor("the line", func(l []byte) bool {
			return strings.Contains(string(l), "default/xwing/spaceship") && strings.Contains(string(l), "CAP_SYSLOG") && strings.Contains(string(l), "denied")
		})
		s.Stop(syscall.SIGINT)
	})

	// A container's first checks come microseconds after its exec, long before the
	// runtime can say whose it is: with pod filters the kernel keeps checks of
	// cgroups not known yet, and user space decides.
	t.Run("a container's first instruction, its pod started after the recorder", func(t *testing.T) {
		byName := testutil.Record(t, "-o", "json", "--attach", method, "--pod", "bwing", "--cap", "chown")
		bySelector := testutil.Record(t, "-o", "json", "--attach", method, "-l", "app=ywing", "--cap", "chown")
		c.Exec(xwing.Containers["spaceship"], "/bin/sh", "-c", "touch /tmp/x && chown 1234 /tmp/x") // not theirs
		for _, name := range []string{"bwing", "ywing"} {
			p := c.RunPod(name, "default", map[string]string{"app": name})
			// Exec'd directly, no shell: the container's first instruction is the chown.
			id := c.RunContainer(p, ctrfixture.ContainerSpec{Name: "first", Command: []string{"/bin/chown", "1234", "/etc/group"}})
			if code := c.WaitExit(id, 30*time.Second*testutil.Slow()); code != 0 {
				t.Fatalf("%s's chown exited %d", name, code)
			}
		}
		for name, s := range map[string]*testutil.Session{"bwing": byName, "ywing": bySelector} {
			s.WaitFor(name+"'s first CAP_CHOWN", func(l []byte) bool {
				ev := podOf(t, l)
				return ev.podName() == "default/"+name && strings.HasSuffix(ev.ProcessKprobe.Process.Binary, "chown")
			})
			s.Stop(syscall.SIGINT)
			for _, l := range s.Lines() {
				if ev := podOf(t, l); ev.podName() != "default/"+name {
					t.Errorf("the %s session printed a check of %q", name, ev.podName())
				}
			}
		}
	})

	t.Run("a pod started and removed during the session still resolves", func(t *testing.T) {
		s := testutil.Record(t, "-o", "json", "--attach", method, "--cap", "syslog")
		late := c.RunPod("awing", "default", map[string]string{"app": "awing"}, "pilot")
		c.Exec(late.Containers["pilot"], "dmesg")
		c.RemovePod(late)
		s.WaitFor("awing's check with pod fields", func(l []byte) bool { return podOf(t, l).podName() == "default/awing" })
		s.Stop(syscall.SIGINT)
	})
	testutil.AssertNothingLeft(t)
}

// Without a runtime, or with one that is dead or does not answer, checks still flow, with one warning.
func TestPodsWithoutRuntime(t *testing.T) {
	method := firstMethod(t)
	dmesgRestrict(t)
	dir := t.TempDir()
	silent := filepath.Join(dir, "silent.sock")
	l, err := net.Listen("unix", silent)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // accepts and never answers
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	dead := filepath.Join(dir, "dead.sock")
	if l2, err := net.Listen("unix", dead); err == nil {
		l2.(*net.UnixListener).SetUnlinkOnClose(false)
		l2.Close() // the file stays, nobody listens
	}
	for name, endpoint := range map[string]string{
		"absent": "unix://" + filepath.Join(dir, "nothing.sock"),
		"dead":   "unix://" + dead,
		"silent": "unix://" + silent,
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("CONTAINER_RUNTIME_ENDPOINT", endpoint)
			s := testutil.Record(t, "-o", "json", "--attach", method, "--cap", "syslog")
			pid := hostDmesgAsNobody()
			s.WaitFor("the host check", eventOf(t, pid, "CAP_SYSLOG"))
			s.Stop(syscall.SIGINT)
			if n := strings.Count(s.Stderr(), "warning"); n != 1 {
				t.Errorf("%d warnings, want 1:\n%s", n, s.Stderr())
			}
		})
	}
	t.Run("--pod without a runtime is an error", func(t *testing.T) {
		cmd := exec.Command(testutil.Binary(t), "--runtime-endpoint", "unix:///nonexistent.sock", "record", "--pod", "xwing")
		assertOneLineError(t, cmd, "pod filters need the container runtime")
	})
}
