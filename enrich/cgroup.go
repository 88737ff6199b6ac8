// Package enrich maps a check's cgroup to its container and pod, through the
// node's container runtime (CRI), without the Kubernetes API.
package enrich

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// CgroupID is the cgroup v2 id (the inode of its directory) of a container's
// cgroup: by the path its runtime spec names, else by its first process's
// /proc/PID/cgroup. The spec comes first: in a pod with a cgroup namespace of
// its own (kubectl capsrec's, on cgroup v2 nodes) /proc gives paths relative
// to that namespace (/../../kubepods.slice/...).
func (in *Info) CgroupID() (uint64, error) {
	root, err := cgroup2Root()
	if err != nil {
		return 0, err
	}
	var st syscall.Stat_t
	if p := SpecCgroupPath(in.CgroupsPath); p != "" && syscall.Stat(filepath.Join(root, p), &st) == nil {
		return st.Ino, nil
	}
	return cgroupOfPID(in.HostPID)
}

// cgroupOfPID is the cgroup (v2) id of a process, from /proc/PID/cgroup.
func cgroupOfPID(pid uint32) (uint64, error) {
	root, err := cgroup2Root()
	if err != nil {
		return 0, err
	}
	p, err := ProcCgroup(pid)
	if err != nil {
		return 0, err
	}
	if strings.HasPrefix(p, "/..") {
		return 0, fmt.Errorf("cgroup %s of pid %d is outside our cgroup namespace", p, pid)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(root, p), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// SpecCgroupPath turns an OCI linux.cgroupsPath into a path under the cgroup
// root: cgroupfs paths are that already; the systemd driver's
// "slice:prefix:name" is the scope prefix-name.scope in the slice, and a slice
// a-b.slice lives in a.slice.
func SpecCgroupPath(p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	parts := strings.Split(p, ":")
	if len(parts) != 3 || !strings.HasSuffix(parts[0], ".slice") || parts[2] == "" {
		return ""
	}
	slice, prefix, name := parts[0], parts[1], parts[2]
	var path string
	if slice != "-.slice" {
		base := strings.TrimSuffix(slice, ".slice")
		for i := range len(base) {
			if base[i] == '-' {
				path += "/" + base[:i] + ".slice"
			}
		}
		path += "/" + slice
	}
	if strings.HasSuffix(name, ".slice") {
		return path + "/" + name
	}
	if prefix != "" {
		name = prefix + "-" + name
	}
	return path + "/" + name + ".scope"
}

// cgroup2Root is where the cgroup v2 hierarchy is mounted, read once: the pod
// watcher asks each second, for every container, and mounts stay put.
var cgroup2Root = sync.OnceValues(readCgroup2Root)

// readCgroup2Root finds where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup,
// or .../unified when hybrid). The last mount wins: in a node pod the host's
// hierarchy is mounted over the container's own (whose root is the container's
// cgroup, on v1 and v2 alike).
func readCgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	var root string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, fl := range fields {
			if fl == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" {
				root = fields[4]
			}
		}
	}
	if root == "" {
		return "", errors.New("no cgroup2 mount")
	}
	return root, nil
}
