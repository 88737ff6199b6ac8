// Package enrich maps a check's cgroup to its container and pod, through the
// node's container runtime (CRI), without the Kubernetes API.
package enrich

import (
	"os"
	"regexp"
	"strconv"
	"strings"
)

// CgroupRef is what a cgroup path says about a container.
type CgroupRef struct {
	ID      string // 64 hex
	Runtime string // "containerd", "cri-o", "docker", "podman", or "" when the path does not say
	PodUID  string // with dashes, when the path holds it
}

var (
	// The last container id in a path: nested containers (kind) end with the innermost.
	scopeRE  = regexp.MustCompile(`(?:(cri-containerd|crio|docker|libpod)-)([0-9a-f]{64})\.scope$`)
	runcRE   = regexp.MustCompile(`:(cri-containerd|crio|docker|libpod):([0-9a-f]{64})$`)
	plainRE  = regexp.MustCompile(`(?:^|/)([0-9a-f]{64})$`)
	podUIDRE = regexp.MustCompile(`pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})`)
)

var runtimeOfPrefix = map[string]string{"cri-containerd": "containerd", "crio": "cri-o", "docker": "docker", "libpod": "podman"}

// ParseCgroup reads a container id from a cgroup path or from its last
// component alone (the kernel's cgroup name): cgroupfs
// /kubepods/<qos>/pod<uid>/<id>, systemd kubepods-<qos>-pod<uid>.slice/cri-containerd-<id>.scope,
// runc's slice:cri-containerd:<id>, crio-, docker- and libpod- scopes, and nested ones.
func ParseCgroup(path string) (CgroupRef, bool) {
	path = strings.TrimRight(strings.TrimSpace(path), "/")
	var ref CgroupRef
	if m := scopeRE.FindStringSubmatch(path); m != nil {
		ref.ID, ref.Runtime = m[2], runtimeOfPrefix[m[1]]
	} else if m := runcRE.FindStringSubmatch(path); m != nil {
		ref.ID, ref.Runtime = m[2], runtimeOfPrefix[m[1]]
	} else if m := plainRE.FindStringSubmatch(path); m != nil {
		ref.ID = m[1]
	} else {
		return CgroupRef{}, false
	}
	if all := podUIDRE.FindAllStringSubmatch(path, -1); all != nil {
		ref.PodUID = strings.ReplaceAll(all[len(all)-1][1], "_", "-")
	}
	return ref, true
}

// ProcCgroup is the cgroup v2 path of a process (the "0::" line of /proc/PID/cgroup), the fallback
// when the kernel's cgroup name says nothing.
func ProcCgroup(pid uint32) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/cgroup")
	if err != nil {
		return "", err
	}
	var last string
	for line := range strings.SplitSeq(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, nil
		}
		if _, p, ok := strings.Cut(line, ":"); ok {
			if _, p, ok = strings.Cut(p, ":"); ok {
				last = p
			}
		}
	}
	return last, nil
}
