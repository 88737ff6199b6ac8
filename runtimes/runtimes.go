// Package runtimes finds the container runtime binaries on the node (runc,
// crun, youki, the containerd shims, conmon) by identity, so that the kernel
// can tell a runtime setting a container up from the container's own code.
package runtimes

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Names are the runtime executables looked for.
var Names = []string{
	"runc", "crun", "youki", "runsc", "conmon", "conmonrs",
	"containerd-shim", "containerd-shim-runc-v1", "containerd-shim-runc-v2",
	"containerd-shim-runsc-v1", "containerd-shim-kata-v2",
}

// Dirs are searched besides $PATH: where distributions and CRI-O put them.
var Dirs = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin",
	"/usr/libexec/crio", "/usr/lib/cri-o-runc/sbin", "/usr/libexec/podman", "/opt/containerd/bin"}

// Binary is one runtime executable and its identity as the kernel sees it.
type Binary struct {
	Path string
	Ino  uint64
	Dev  uint32 // the kernel's dev_t (major << 20 | minor), as super_block.s_dev
}

// KernelDev turns stat's st_dev into the kernel's internal dev_t.
func KernelDev(stDev uint64) uint32 {
	return unix.Major(stDev)<<20 | unix.Minor(stDev)
}

// Find lists the runtime binaries present, extra paths first, one per identity.
func Find(extra []string) []Binary {
	var paths []string
	paths = append(paths, extra...)
	dirs := append(filepath.SplitList(os.Getenv("PATH")), Dirs...)
	for _, name := range Names {
		for _, d := range dirs {
			if d != "" {
				paths = append(paths, filepath.Join(d, name))
			}
		}
	}
	var found []Binary
	seen := map[[2]uint64]bool{}
	for _, p := range paths {
		var st unix.Stat_t
		if unix.Stat(p, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
			continue
		}
		id := [2]uint64{st.Dev, st.Ino}
		if seen[id] {
			continue
		}
		seen[id] = true
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			real = p
		}
		found = append(found, Binary{Path: real, Ino: st.Ino, Dev: KernelDev(st.Dev)})
		if len(found) == 63 { // the kernel's mark is a byte: 1 + index
			break
		}
	}
	return found
}

// Running finds the processes that run a runtime binary now (the shims live
// long), as tgid -> 1 + the binary's index.
func Running(bins []Binary) map[uint32]uint8 {
	byID := map[[2]uint64]uint8{}
	for i, b := range bins {
		byID[[2]uint64{uint64(b.Dev), b.Ino}] = uint8(i + 1)
	}
	running := map[uint32]uint8{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return running
	}
	for _, e := range entries {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name()+"/exe", &st) != nil {
			continue
		}
		if mark, ok := byID[[2]uint64{uint64(KernelDev(st.Dev)), st.Ino}]; ok {
			running[uint32(pid)] = mark
		}
	}
	return running
}

// Paths are the binaries' paths, indexed like their marks less one.
func Paths(bins []Binary) []string {
	p := make([]string, len(bins))
	for i, b := range bins {
		p[i] = b.Path
	}
	return p
}
