// Package ctrfixture runs a real containerd for tests, with its own config,
// root, state and socket, images built locally (no registry), and pods made
// through the CRI as kubelet would. Facts it relies on are in
// ../shared/notes/containerd-fixture.md, summarized in the comments.
package ctrfixture

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/capsrec/capsrec/internal/testutil"
)

// Images the fixture builds and imports.
const (
	PauseImage = "capsrec.test/pause:1"
	AppImage   = "capsrec.test/busybox:1"
)

// Containerd is a running containerd with the CRI plugin.
type Containerd struct {
	t        testing.TB
	Dir      string
	Socket   string
	Endpoint string // unix://Socket, for --runtime-endpoint
	CRI      runtimeapi.RuntimeServiceClient
	Images   runtimeapi.ImageServiceClient
	cmd      *exec.Cmd
	conn     *grpc.ClientConn
	pods     []*Pod
	shimDirs []string
}

// Start runs containerd and imports the images; everything is undone at cleanup.
func Start(t testing.TB) *Containerd {
	t.Helper()
	testutil.RequireRoot(t)
	for _, bin := range []string{"containerd", "ctr", "runc", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(bin); err != nil {
			testutil.Skip(t, "%s is not installed (apt-get install containerd runc)", bin)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		testutil.Skip(t, "busybox-static is not installed")
	}
	dir, err := os.MkdirTemp("", "capsrec-containerd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{t: t, Dir: dir, Socket: filepath.Join(dir, "containerd.sock")}
	c.Endpoint = "unix://" + c.Socket
	c.shimDirs, _ = filepath.Glob("/run/containerd/s/*")
	t.Cleanup(c.stop)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(config(dir, cniBin(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cniConfig(dir); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	c.cmd = exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.waitSocket()
	c.conn, err = grpc.NewClient(c.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c.CRI = runtimeapi.NewRuntimeServiceClient(c.conn)
	c.Images = runtimeapi.NewImageServiceClient(c.conn)
	c.importImages()
	return c
}

func config(dir, cniBin string) string {
	// restrict_oom_score_adj: the machine lacks CAP_SYS_RESOURCE, and runc fails
	// on the sandbox's negative oom_score_adj otherwise. SystemdCgroup = false: no systemd here.
	return fmt.Sprintf(`version = 2
root = "%[1]s/root"
state = "%[1]s/state"
oom_score = 0
[grpc]
  address = "%[1]s/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%[2]s"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "%[3]s"
    conf_dir = "%[1]s/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "%[1]s/runc"
`, dir, PauseImage, cniBin)
}

func (c *Containerd) waitSocket() {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if err := exec.Command("ctr", "--address", c.Socket, "version").Run(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(c.Dir, "containerd.log"))
	c.t.Fatalf("containerd did not answer on %s:\n%s", c.Socket, log)
}

func (c *Containerd) importImages() {
	t := c.t
	_, self, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-o", c.Dir+"/", "./pause", "./capop")
	build.Dir = filepath.Dir(self)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building pause and capop: %v\n%s", err, out)
	}
	pause, err := os.ReadFile(filepath.Join(c.Dir, "pause"))
	if err != nil {
		t.Fatal(err)
	}
	capop, err := os.ReadFile(filepath.Join(c.Dir, "capop"))
	if err != nil {
		t.Fatal(err)
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	app := map[string]file{"bin/busybox": {data: busybox, mode: 0o755}, "bin/capop": {data: capop, mode: 0o755}, "tmp/.keep": {mode: 0o644},
		"etc/passwd": {data: []byte("root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"), mode: 0o644},
		"etc/group":  {data: []byte("root:x:0:\nnogroup:x:65534:\n"), mode: 0o644}}
	for _, applet := range []string{"sh", "sleep", "dmesg", "chown", "cat", "ls", "touch", "id", "true", "chmod", "mknod", "chroot", "su", "kill", "unshare", "mount", "httpd", "wget", "sysctl"} {
		app["bin/"+applet] = file{symlink: "busybox"}
	}
	for _, img := range []struct {
		tag   string
		files map[string]file
		cmd   []string
	}{
		{PauseImage, map[string]file{"pause": {data: pause, mode: 0o755}}, []string{"/pause"}},
		{AppImage, app, []string{"/bin/sleep", "3600"}},
	} {
		tarPath := filepath.Join(c.Dir, strings.NewReplacer("/", "_", ":", "_").Replace(img.tag)+".tar")
		if err := writeImage(tarPath, img.tag, img.files, img.cmd); err != nil {
			t.Fatal(err)
		}
		repo, _, _ := strings.Cut(img.tag, ":")
		out, err := exec.Command("ctr", "-a", c.Socket, "-n", "k8s.io", "images", "import", "--snapshotter", "overlayfs",
			"--digests", "--base-name", repo, tarPath).CombinedOutput()
		if err != nil {
			t.Fatalf("importing %s: %v\n%s", img.tag, err, out)
		}
		c.waitImage(img.tag)
	}
}

// waitImage polls ImageStatus: the CRI sees imported images asynchronously.
func (c *Containerd) waitImage(tag string) {
	for range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.Images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: tag}})
		cancel()
		if err == nil && st.Image != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("the CRI never saw image %s", tag)
}

// Pod is a running pod and its containers.
type Pod struct {
	Name, Namespace, UID string
	SandboxID            string
	Containers           map[string]string // name -> id
	config               *runtimeapi.PodSandboxConfig
	network              runtimeapi.NamespaceMode
	mu                   sync.Mutex // Containers, for tests that start containers at once
}

// ContainerSpec is a container to run: its command, and its capabilities.
type ContainerSpec struct {
	Name    string
	Command []string
	// Caps, when not nil, makes the securityContext drop ALL and add these
	// (Kubernetes spelling: CHOWN); nil keeps the runtime's defaults.
	Caps []string
}

// RunPod makes a host-network pod with one app container per name, as kubelet would.
func (c *Containerd) RunPod(name, namespace string, labels map[string]string, containers ...string) *Pod {
	c.t.Helper()
	return c.RunPodWith(PodOptions{Name: name, Namespace: namespace, Labels: labels}, containers...)
}

// PodOptions are a pod's: OwnNetwork gives it a network namespace of its own
// (else the node's), Sysctls its securityContext.sysctls.
type PodOptions struct {
	Name, Namespace string
	Labels          map[string]string
	OwnNetwork      bool
	Sysctls         map[string]string
}

// RunPodWith makes a pod, with one app container per name, as kubelet would.
func (c *Containerd) RunPodWith(o PodOptions, containers ...string) *Pod {
	t := c.t
	t.Helper()
	name, namespace, labels := o.Name, o.Namespace, o.Labels
	network := runtimeapi.NamespaceMode_NODE
	if o.OwnNetwork {
		network = runtimeapi.NamespaceMode_POD
	}
	uid := fmt.Sprintf("%08x-0000-4000-8000-%012x", time.Now().UnixNano()&0xffffffff, len(c.pods)+1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sandboxLabels := map[string]string{"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace, "io.kubernetes.pod.uid": uid}
	for k, v := range labels {
		sandboxLabels[k] = v
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: namespace, Uid: uid},
		Labels:       sandboxLabels,
		LogDirectory: filepath.Join(c.Dir, "logs", name),
		// No hostname: a host-network pod cannot set one.
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/besteffort/pod" + uid,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: network},
			},
			Sysctls: o.Sysctls,
		},
	}
	run, err := c.CRI.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		c.fatalWithLog("RunPodSandbox %s: %v", name, err)
	}
	pod := &Pod{Name: name, Namespace: namespace, UID: uid, SandboxID: run.PodSandboxId, Containers: map[string]string{}, config: cfg, network: network}
	c.pods = append(c.pods, pod)
	for _, ctrName := range containers {
		c.RunContainer(pod, ContainerSpec{Name: ctrName, Command: []string{"/bin/sleep", "3600"}})
	}
	return pod
}

// RunContainer creates and starts a container in pod p and returns its id.
func (c *Containerd) RunContainer(p *Pod, spec ContainerSpec) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sc := &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Network: p.network}}
	if spec.Caps != nil {
		sc.Capabilities = &runtimeapi.Capability{DropCapabilities: []string{"ALL"}, AddCapabilities: spec.Caps}
	}
	created, err := c.CRI.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId:  p.SandboxID,
		SandboxConfig: p.config,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: spec.Name},
			Image:    &runtimeapi.ImageSpec{Image: AppImage},
			Command:  spec.Command,
			LogPath:  spec.Name + ".log",
			Labels:   map[string]string{"io.kubernetes.container.name": spec.Name, "io.kubernetes.pod.name": p.Name, "io.kubernetes.pod.namespace": p.Namespace},
			Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: sc},
		},
	})
	if err != nil {
		c.fatalWithLog("CreateContainer %s/%s: %v", p.Name, spec.Name, err)
	}
	if _, err := c.CRI.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		c.fatalWithLog("StartContainer %s/%s: %v", p.Name, spec.Name, err)
	}
	p.mu.Lock()
	p.Containers[spec.Name] = created.ContainerId
	p.mu.Unlock()
	return created.ContainerId
}

// WaitExit waits for a container to exit and returns its exit code.
func (c *Containerd) WaitExit(id string, timeout time.Duration) int32 {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := c.CRI.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		cancel()
		if err != nil {
			c.t.Fatalf("ContainerStatus %s: %v", id, err)
		}
		if st.Status.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st.Status.ExitCode
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("container %s did not exit within %s", id, timeout)
	return -1
}

func (c *Containerd) fatalWithLog(format string, args ...any) {
	log, _ := os.ReadFile(filepath.Join(c.Dir, "containerd.log"))
	lines := strings.Split(string(log), "\n")
	c.t.Fatalf(format+"\ncontainerd log (tail):\n%s", append(args, strings.Join(lines[max(0, len(lines)-30):], "\n"))...)
}

// Exec runs cmd in a container through the CRI, as kubectl exec does, and returns its exit code.
func (c *Containerd) Exec(containerID string, cmd ...string) int32 {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.CRI.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: containerID, Cmd: cmd, Timeout: 20})
	if err != nil {
		c.t.Fatalf("ExecSync %v: %v", cmd, err)
	}
	return resp.ExitCode
}

// RemovePod stops and removes a pod.
func (c *Containerd) RemovePod(p *Pod) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = c.CRI.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.SandboxID})
	_, _ = c.CRI.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: p.SandboxID})
	c.pods = slices.DeleteFunc(c.pods, func(q *Pod) bool { return q == p })
	removePodCgroups(p.UID)
}

// Stop kills containerd, leaving the socket dead (for the dead-socket tests).
func (c *Containerd) Stop() {
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-done
		}
		c.cmd = nil
	}
}

// stop undoes everything Start did: pods, containerd, its shims, mounts, cgroups, sockets, files.
func (c *Containerd) stop() {
	for _, p := range slices.Clone(c.pods) {
		c.RemovePod(p)
	}
	if c.conn != nil {
		c.conn.Close()
	}
	c.Stop()
	// Shims outlive containerd: kill those of this socket, by pid.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), "containerd-shim") || !strings.Contains(string(b), c.Socket) {
			continue
		}
		var pid int
		fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	unmountUnder(c.Dir)
	// The parents runc made for the pods, where no one else uses them (rmdir fails on a busy one).
	parents, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods/besteffort")
	for _, d := range append(parents, "/sys/fs/cgroup/kubepods/besteffort") {
		_ = syscall.Rmdir(d)
		_ = syscall.Rmdir(filepath.Dir(d))
	}
	after, _ := filepath.Glob("/run/containerd/s/*")
	for _, s := range after {
		if !slices.Contains(c.shimDirs, s) {
			_ = os.RemoveAll(s)
		}
	}
	_ = os.RemoveAll(c.Dir)
}

func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir) {
			points = append(points, fields[4])
		}
	}
	f.Close()
	// Deepest first.
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// removePodCgroups kills what is left in a pod's cgroups and removes them in every hierarchy.
func removePodCgroups(uid string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods/besteffort/pod" + uid)
	if d := "/sys/fs/cgroup/kubepods/besteffort/pod" + uid; exists(d) {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		subs, _ := filepath.Glob(d + "/*/cgroup.procs")
		for _, procsFile := range append(subs, d+"/cgroup.procs") {
			b, _ := os.ReadFile(procsFile)
			for _, pid := range strings.Fields(string(b)) {
				var n int
				fmt.Sscanf(pid, "%d", &n)
				if n > 0 {
					_ = syscall.Kill(n, syscall.SIGKILL)
				}
			}
		}
		children, _ := filepath.Glob(d + "/*")
		for _, ch := range children {
			if fi, err := os.Stat(ch); err == nil && fi.IsDir() {
				removeRetry(ch)
			}
		}
		removeRetry(d)
	}
}

func removeRetry(dir string) {
	for range 50 {
		if err := syscall.Rmdir(dir); err == nil || os.IsNotExist(err) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
