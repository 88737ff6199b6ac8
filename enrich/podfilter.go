package enrich

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/capsrec/capsrec/bpf"
	"github.com/capsrec/capsrec/filter"
	"github.com/capsrec/capsrec/recorder"
)

// PodFilter is record's --pod, --namespace, --container, --selector and --host.
type PodFilter struct {
	Pods, Namespaces, Containers []string // globs
	Selector                     labels.Selector
	Host                         bool // only processes in no container
}

// NewPodFilter validates the flags.
func NewPodFilter(pods, namespaces, containers []string, selector string, host bool) (*PodFilter, error) {
	f := &PodFilter{Pods: pods, Namespaces: namespaces, Containers: containers, Host: host}
	for _, list := range [][]string{pods, namespaces, containers} {
		for _, p := range list {
			if _, err := path.Match(p, ""); err != nil || p == "" {
				return nil, fmt.Errorf("%q is not a name or glob", p)
			}
		}
	}
	if selector != "" {
		sel, err := labels.Parse(selector)
		if err != nil {
			return nil, fmt.Errorf("--selector: %w", err)
		}
		f.Selector = sel
	}
	if host && f.selectsPods() {
		return nil, errors.New("--host selects processes in no container: it excludes --pod, --namespace, --container and --selector")
	}
	return f, nil
}

func (f *PodFilter) selectsPods() bool {
	return len(f.Pods)+len(f.Namespaces)+len(f.Containers) > 0 || f.Selector != nil
}

// Active tells whether any pod flag was given.
func (f *PodFilter) Active() bool { return f.Host || f.selectsPods() }

// KernelMode is how the kernel's cgroup filter serves this filter.
func (f *PodFilter) KernelMode() bpf.CgroupFilter {
	switch {
	case f.Host:
		return bpf.CgroupsExclude
	case f.selectsPods():
		return bpf.CgroupsOnly
	}
	return bpf.CgroupsAll
}

// Matches tells whether a check in ctr (nil: the host) passes.
func (f *PodFilter) Matches(ctr *recorder.Container) bool {
	if f.Host {
		return ctr == nil
	}
	if !f.selectsPods() {
		return true
	}
	if ctr == nil || ctr.Pod == nil {
		return false
	}
	p := ctr.Pod
	return filter.AnyGlob(f.Pods, p.Name) && filter.AnyGlob(f.Namespaces, p.Namespace) && filter.AnyGlob(f.Containers, ctr.Name) &&
		(f.Selector == nil || f.Selector.Matches(labels.Set(p.Labels)))
}

// Kernel reports whether the kernel must keep a container's cgroup in its set:
// the pods selected, or for --host every container.
func (f *PodFilter) Kernel(ctr *recorder.Container) bool {
	if f.Host {
		return true
	}
	return f.Matches(ctr)
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
