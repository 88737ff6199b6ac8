package enrich

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/capsrec/capsrec/core"
)

// DefaultEndpoints are tried in order when neither --runtime-endpoint nor
// CONTAINER_RUNTIME_ENDPOINT names one, as crictl does.
var DefaultEndpoints = []string{"unix:///run/containerd/containerd.sock", "unix:///run/crio/crio.sock"}

// CRI asks the node's container runtime about containers and pods.
type CRI struct {
	Endpoint       string
	RuntimeName    string
	RuntimeVersion string
	// ServerPID is the process that answered Version, as the kernel names the
	// socket's peer (SO_PEERCRED) in our pid namespace; 0 when outside it.
	ServerPID int
	conn      *grpc.ClientConn
	rt        runtimeapi.RuntimeServiceClient
	timeout   time.Duration
}

// DialCRI connects to the first endpoint that answers Version within timeout.
func DialCRI(endpoints []string, timeout time.Duration) (*CRI, error) {
	var errs []error
	for _, ep := range endpoints {
		c, err := dial(ep, timeout)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// AnySocket tells whether any of the endpoints' socket files exists.
func AnySocket(endpoints []string) bool {
	for _, ep := range endpoints {
		if _, err := os.Stat(strings.TrimPrefix(ep, "unix://")); err == nil {
			return true
		}
	}
	return false
}

// SocketPath is a runtime endpoint's socket: unix://PATH, or a bare path as crictl takes it.
func SocketPath(endpoint string) (string, bool) {
	if path, ok := strings.CutPrefix(endpoint, "unix://"); ok {
		return path, true
	}
	return endpoint, strings.HasPrefix(endpoint, "/")
}

func dial(endpoint string, timeout time.Duration) (*CRI, error) {
	path, ok := SocketPath(endpoint)
	if !ok {
		return nil, fmt.Errorf("runtime endpoint %q: only unix:// sockets (or a socket's path) are supported", endpoint)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("runtime endpoint %s: %w", endpoint, err)
	}
	var peer atomic.Int32 // the pid behind the connection grpc dialed last
	dialer := func(ctx context.Context, _ string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, "unix", path)
		if err == nil {
			peer.Store(peerPID(conn))
		}
		return conn, err
	}
	conn, err := grpc.NewClient("passthrough:///"+path, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dialer))
	if err != nil {
		return nil, fmt.Errorf("runtime endpoint %s: %w", endpoint, err)
	}
	c := &CRI{Endpoint: endpoint, conn: conn, rt: runtimeapi.NewRuntimeServiceClient(conn), timeout: timeout}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	v, err := c.rt.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("runtime endpoint %s does not answer: %w", endpoint, err)
	}
	c.RuntimeName, c.RuntimeVersion = v.RuntimeName, v.RuntimeVersion
	c.ServerPID = int(peer.Load())
	return c, nil
}

// peerPID is the pid of a unix socket's peer, 0 when unknown or outside our pid namespace.
func peerPID(conn net.Conn) int32 {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return 0
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0
	}
	var cred *unix.Ucred
	if raw.Control(func(fd uintptr) { cred, _ = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }) != nil || cred == nil {
		return 0
	}
	return cred.Pid
}

// RuntimePIDs are the host pids of every container's and pod sandbox's first
// process the runtime reports, whatever its state (created, running, ready,
// or a sandbox still being set up): their parents are the runtime's shims.
func (c *CRI) RuntimePIDs(ctx context.Context) []uint32 {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var pids []uint32
	add := func(info map[string]string) {
		var vi verboseInfo
		if raw, ok := info["info"]; ok && json.Unmarshal([]byte(raw), &vi) == nil && vi.PID > 0 {
			pids = append(pids, vi.PID)
		}
	}
	if ctrs, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{}); err == nil {
		for _, ctr := range ctrs.Containers {
			if st, err := c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: ctr.Id, Verbose: true}); err == nil {
				add(st.Info)
			}
		}
	}
	if pods, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
		for _, p := range pods.Items {
			if st, err := c.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: p.Id, Verbose: true}); err == nil {
				add(st.Info)
			}
		}
	}
	return pids
}

// TaskDir is where the runtime keeps its tasks' bundles, as its own root
// names it (containerd's STATE/io.containerd.runtime.v2.task, STATE from the
// CRI plugin's configuration); "" when it does not say.
func (c *CRI) TaskDir(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	st, err := c.rt.Status(ctx, &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		return ""
	}
	var cfg struct {
		StateDir string `json:"stateDir"`
	}
	if json.Unmarshal([]byte(st.Info["config"]), &cfg) != nil || !strings.HasPrefix(cfg.StateDir, "/") {
		return ""
	}
	return filepath.Join(filepath.Dir(cfg.StateDir), "io.containerd.runtime.v2.task")
}

// Close hangs up.
func (c *CRI) Close() error { return c.conn.Close() }

// Info is a container as the runtime describes it, with what capsrec needs to filter on it.
type Info struct {
	Container *core.Container
	// HostPID is the container's first process on the host, to find its cgroup.
	HostPID uint32
	// CgroupsPath is the runtime spec's linux.cgroupsPath: the cgroup by
	// name, whatever cgroup namespace we run in.
	CgroupsPath string
	// CgroupV2 is the cgroup (v2 id) the runtime gave the container; 0 unknown.
	CgroupV2 uint64
}

// List returns every running container with its pod.
func (c *CRI) List(ctx context.Context) ([]*Info, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}},
	})
	if err != nil {
		return nil, fmt.Errorf("ListContainers: %w", err)
	}
	pods := map[string]*core.Pod{}
	var out []*Info
	for _, ctr := range resp.Containers {
		info, err := c.lookup(ctx, ctr.Id, pods)
		if err != nil {
			continue // gone meanwhile
		}
		out = append(out, info)
	}
	return out, nil
}

// Lookup describes one container; id may be a prefix.
func (c *CRI) Lookup(ctx context.Context, id string) (*Info, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.lookup(ctx, id, map[string]*core.Pod{})
}

// verboseInfo is the part of ContainerStatus's verbose info["info"] capsrec reads.
type verboseInfo struct {
	PID         uint32 `json:"pid"`
	SandboxID   string `json:"sandboxID"`
	RuntimeSpec struct {
		Linux struct {
			CgroupsPath string `json:"cgroupsPath"`
			Namespaces  []struct {
				Type string `json:"type"`
				Path string `json:"path"`
			} `json:"namespaces"`
		} `json:"linux"`
	} `json:"runtimeSpec"`
}

func (c *CRI) lookup(ctx context.Context, id string, pods map[string]*core.Pod) (*Info, error) {
	st, err := c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return nil, err
	}
	s := st.Status
	var vi verboseInfo
	if raw, ok := st.Info["info"]; ok {
		_ = json.Unmarshal([]byte(raw), &vi)
	}
	ctr := &core.Container{
		ID:      s.Id,
		Runtime: runtimePrefix(c.RuntimeName),
		ImageID: s.ImageRef,
		ImageName: func() string {
			if s.Image != nil {
				return s.Image.Image
			}
			return ""
		}(),
	}
	if s.Metadata != nil {
		ctr.Name = s.Metadata.Name
	}
	if s.StartedAt > 0 {
		ctr.StartTime = time.Unix(0, s.StartedAt).UTC()
	}
	ctr.HostPID = vi.PID
	sandbox := vi.SandboxID
	if sandbox == "" {
		sandbox = s.Labels["io.kubernetes.sandbox.id"]
	}
	if sandbox != "" {
		pod, ok := pods[sandbox]
		if !ok {
			pod = c.pod(ctx, sandbox)
			pods[sandbox] = pod
		}
		ctr.Pod = pod
	}
	ctr.UserNS = userNSOf(vi)
	info := &Info{Container: ctr, HostPID: vi.PID, CgroupsPath: vi.RuntimeSpec.Linux.CgroupsPath}
	info.CgroupV2, _ = info.CgroupID()
	return info, nil
}

// userNSOf is the user namespace the runtime's spec gives a container: the
// one it joins (a pod's, by the sandbox's /proc path), or the one made for
// its first process; 0 when the spec has none (the node's).
func userNSOf(vi verboseInfo) uint32 {
	for _, ns := range vi.RuntimeSpec.Linux.Namespaces {
		if ns.Type != "user" {
			continue
		}
		path := ns.Path
		if path == "" && vi.PID != 0 {
			path = "/proc/" + strconv.FormatUint(uint64(vi.PID), 10) + "/ns/user"
		}
		var st unix.Stat_t
		if path != "" && unix.Stat(path, &st) == nil {
			return uint32(st.Ino)
		}
	}
	return 0
}

func (c *CRI) pod(ctx context.Context, sandbox string) *core.Pod {
	ps, err := c.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sandbox})
	if err != nil || ps.Status == nil || ps.Status.Metadata == nil {
		return nil
	}
	m := ps.Status.Metadata
	pod := &core.Pod{Namespace: m.Namespace, Name: m.Name, UID: m.Uid, Labels: map[string]string{}}
	// The sandbox's labels are the pod's own plus kubelet's io.kubernetes.pod.* ones.
	for k, v := range maps.All(ps.Status.Labels) {
		if !strings.HasPrefix(k, "io.kubernetes.pod.") {
			pod.Labels[k] = v
		}
	}
	return pod
}

// runtimePrefix is Tetragon's container.id prefix for a runtime name.
func runtimePrefix(name string) string {
	switch {
	case strings.Contains(name, "containerd"):
		return "containerd"
	case strings.Contains(name, "cri-o"):
		return "cri-o"
	case name == "":
		return "containerd"
	}
	return name
}
