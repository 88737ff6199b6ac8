// Package fakecri is a small CRI runtime service for tests where no container
// runtime runs (the qemu guests): it describes containers whose processes and
// cgroups the test made itself, as containerd would.
package fakecri

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Container is one running container and its pod sandbox.
type Container struct {
	ID, Name, Image string
	PID             uint32
	// CgroupsPath is the OCI spec's linux.cgroupsPath, as the runtime's
	// verbose status gives it (systemd: "slice:prefix:name").
	CgroupsPath                    string
	SandboxID, Pod, Namespace, UID string
	Labels                         map[string]string
}

type server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	containers []Container
}

// Start serves containers on a unix socket until the test ends, and returns its endpoint.
func Start(t testing.TB, containers ...Container) string {
	t.Helper()
	sock := t.TempDir() + "/cri.sock"
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(g, &server{containers: containers})
	go func() { _ = g.Serve(l) }()
	t.Cleanup(func() { g.Stop(); _ = os.Remove(sock) })
	return "unix://" + sock
}

func (s *server) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "containerd", RuntimeVersion: "fakecri", RuntimeApiVersion: "v1"}, nil
}

func (s *server) ListContainers(context.Context, *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	var out []*runtimeapi.Container
	for _, c := range s.containers {
		out = append(out, &runtimeapi.Container{Id: c.ID, PodSandboxId: c.SandboxID, Metadata: &runtimeapi.ContainerMetadata{Name: c.Name},
			Image: &runtimeapi.ImageSpec{Image: c.Image}, State: runtimeapi.ContainerState_CONTAINER_RUNNING})
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

func (s *server) ContainerStatus(_ context.Context, r *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	for _, c := range s.containers {
		if c.ID != r.ContainerId {
			continue
		}
		info, _ := json.Marshal(map[string]any{
			"pid": c.PID, "sandboxID": c.SandboxID,
			"runtimeSpec": map[string]any{"linux": map[string]any{"cgroupsPath": c.CgroupsPath}},
		})
		return &runtimeapi.ContainerStatusResponse{
			Status: &runtimeapi.ContainerStatus{Id: c.ID, Metadata: &runtimeapi.ContainerMetadata{Name: c.Name},
				State: runtimeapi.ContainerState_CONTAINER_RUNNING, StartedAt: time.Now().UnixNano(),
				Image: &runtimeapi.ImageSpec{Image: c.Image}, ImageRef: c.Image},
			Info: map[string]string{"info": string(info)},
		}, nil
	}
	return nil, status.Errorf(codes.NotFound, "container %q not found", r.ContainerId)
}

func (s *server) PodSandboxStatus(_ context.Context, r *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	for _, c := range s.containers {
		if c.SandboxID == r.PodSandboxId {
			return &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{Id: c.SandboxID,
				Metadata: &runtimeapi.PodSandboxMetadata{Name: c.Pod, Namespace: c.Namespace, Uid: c.UID},
				State:    runtimeapi.PodSandboxState_SANDBOX_READY, Labels: c.Labels}}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "sandbox %q not found", r.PodSandboxId)
}
