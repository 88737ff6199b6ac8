// Package runtimes finds the container runtime binaries on the node (runc,
// crun, youki, the containerd shims, conmon) by identity, so that the kernel
// can tell a runtime setting a container up from the container's own code.
package runtimes

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

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

// Find lists the runtime binaries present, extra paths first, one per identity:
// on $PATH and in Dirs, then in Dirs and the PATH of each of roots (a runtime
// server's root and environment: see ServerRoot).
func Find(extra []string, roots ...Root) []Binary {
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
	local := len(paths)
	for _, r := range roots {
		for _, name := range Names {
			for _, d := range append(r.Path, Dirs...) {
				if filepath.IsAbs(d) {
					paths = append(paths, r.Dir+filepath.Join(d, name))
				}
			}
		}
	}
	var found []Binary
	seen := map[[2]uint64]bool{}
	for i, p := range paths {
		var st unix.Stat_t
		if unix.Stat(p, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
			continue
		}
		id := [2]uint64{st.Dev, st.Ino}
		if seen[id] {
			continue
		}
		seen[id] = true
		real := p
		if i >= local {
			real = "/" + strings.SplitN(p, "/", 5)[4] // /proc/PID/root/usr/bin/x: symlinks would resolve in our root
		} else {
			if r, err := filepath.EvalSymlinks(p); err == nil {
				real = r
			}
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

// Root is where a runtime server (containerd, CRI-O) finds its binaries.
type Root struct {
	Dir  string   // /proc/PID/root
	Path []string // its $PATH
}

// ServerRoot finds the process listening on a runtime's unix socket by the
// kernel's record of it (SO_PEERCRED), not by name: its root and PATH are
// where it runs runc from, also when we run in a pod whose image has none.
func ServerRoot(socket string) (Root, error) {
	conn, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return Root{}, err
	}
	defer conn.Close()
	raw, err := conn.(*net.UnixConn).SyscallConn()
	if err != nil {
		return Root{}, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return Root{}, err
	}
	if cerr != nil {
		return Root{}, cerr
	}
	if cred.Pid <= 0 {
		return Root{}, fmt.Errorf("%s: the server's pid is not in our pid namespace", socket)
	}
	proc := "/proc/" + strconv.Itoa(int(cred.Pid))
	r := Root{Dir: proc + "/root"}
	if env, err := os.ReadFile(proc + "/environ"); err == nil {
		for _, kv := range strings.Split(string(env), "\x00") {
			if p, ok := strings.CutPrefix(kv, "PATH="); ok {
				r.Path = filepath.SplitList(p)
			}
		}
	}
	return r, nil
}
