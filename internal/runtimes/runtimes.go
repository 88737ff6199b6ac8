// Package runtimes finds the container runtime's process tree on the node, so
// that the kernel can tell a runtime setting a container up from the
// container's own code. Only the runtime server (containerd, CRI-O), proven by
// a CRI call over its socket, starts the tree: the runtime binaries are those
// the server runs (found in its root, on its PATH), and a runtime binary run by
// anyone else is an ordinary process.
package runtimes

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/capsrec/capsrec/internal/procfs"
)

// Names are the runtime executables looked for.
var Names = []string{
	"runc", "crun", "youki", "runsc", "conmon", "conmonrs",
	"containerd-shim", "containerd-shim-runc-v1", "containerd-shim-runc-v2",
	"containerd-shim-runsc-v1", "containerd-shim-kata-v2",
}

// Dirs are searched in the server's root besides its $PATH: where
// distributions and CRI-O put them. All are root's to write.
var Dirs = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin",
	"/usr/libexec/crio", "/usr/lib/cri-o-runc/sbin", "/usr/libexec/podman", "/opt/containerd/bin"}

// The kernel's marks (capsrec.h's MARK_*).
const (
	MarkServer = 0xff // the runtime server: passes the mark on, its own checks are not setup
	MarkClone  = 0x40 // a runtime's re-exec of an unlinked copy of itself (runc init)
	MarkIndex  = 0x3f // 1 + the runtime binary's index
)

// MaxBinaries is how many runtime binaries a mark can name.
const MaxBinaries = MarkIndex

// Binary is one runtime executable and its identity as the kernel sees it.
type Binary struct {
	Path string
	Ino  uint64
	Dev  uint32 // the kernel's dev_t (major << 20 | minor), as super_block.s_dev
	Size int64  // an unlinked copy of this size is the runtime's re-exec of itself
}

// KernelDev turns stat's st_dev into the kernel's internal dev_t.
func KernelDev(stDev uint64) uint32 {
	return unix.Major(stDev)<<20 | unix.Minor(stDev)
}

// Server is a container runtime server that answered a CRI call on its socket.
type Server struct {
	PID  int      // in our pid namespace (SO_PEERCRED of the connection the call went over)
	Dir  string   // its root as we see it: /proc/PID/root
	Path []string // its $PATH
}

// NewServer describes the server process pid: its root and PATH are where it runs
// its runtimes from, also when we run in a pod whose image has none.
func NewServer(pid int) Server {
	proc := "/proc/" + strconv.Itoa(pid)
	s := Server{PID: pid, Dir: proc + "/root"}
	if env, err := os.ReadFile(proc + "/environ"); err == nil {
		for _, kv := range strings.Split(string(env), "\x00") {
			if p, ok := strings.CutPrefix(kv, "PATH="); ok {
				s.Path = filepath.SplitList(p)
			}
		}
	}
	return s
}

// Find lists the runtime binaries, one per identity: extra first (--runtime-binary,
// each of which must be a regular file), then those in each server's root, on
// its PATH and in Dirs. capsrec's own PATH is never read: whoever runs capsrec
// may not be whoever set it.
func Find(extra []string, servers ...Server) ([]Binary, error) {
	var found []Binary
	seen := map[[2]uint64]bool{}
	add := func(p, shown string) bool {
		var st unix.Stat_t
		if unix.Stat(p, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
			return false
		}
		if id := [2]uint64{st.Dev, st.Ino}; !seen[id] && len(found) < MaxBinaries {
			seen[id] = true
			found = append(found, Binary{Path: shown, Ino: st.Ino, Dev: KernelDev(st.Dev), Size: st.Size})
		}
		return true
	}
	for _, p := range extra {
		// Stat, never open: a FIFO would block, a device would act.
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil, fmt.Errorf("--runtime-binary %s: %w", p, err)
		}
		if !add(real, real) {
			return nil, fmt.Errorf("--runtime-binary %s: not a regular file", p)
		}
	}
	for _, s := range servers {
		for _, name := range Names {
			for _, d := range append(s.Path, Dirs...) {
				if filepath.IsAbs(d) {
					// Symlinks would resolve in our root, not the server's: shown as the server sees it.
					add(s.Dir+filepath.Join(d, name), filepath.Join(d, name))
				}
			}
		}
	}
	return found, nil
}

// Paths are the binaries' paths, indexed like their marks less one.
func Paths(bins []Binary) []string {
	p := make([]string, len(bins))
	for i, b := range bins {
		p[i] = b.Path
	}
	return p
}

// proc is what Marks reads of one running process.
type proc struct {
	ppid     uint32
	id       [2]uint64 // kernel dev, inode of its executable
	size     int64
	unlinked bool
}

// Marks are the kernel's marks (MarkServer, 1 + index, | MarkClone) for the
// processes of the servers' trees that run now: each server; each runtime
// binary that is the parent of a process the runtime reported as a container's
// or a pod sandbox's (shims, reparented away from the server long ago); and
// below those, what the kernel's rules would have marked (runtime binaries,
// a runtime's unlinked copy of itself, forked children).
func Marks(bins []Binary, servers []Server, runtimePIDs []uint32) map[uint32]uint8 {
	marks := map[uint32]uint8{}
	if len(servers) == 0 {
		return marks
	}
	byID := map[[2]uint64]int{}
	for i, b := range bins {
		byID[[2]uint64{uint64(b.Dev), b.Ino}] = i
	}
	procs := readProcs()
	for _, s := range servers {
		marks[uint32(s.PID)] = MarkServer
	}
	for _, pid := range runtimePIDs {
		shim := procs[pid].ppid
		if p, ok := procs[shim]; ok && marks[shim] == 0 {
			if i, ok := byID[p.id]; ok {
				marks[shim] = uint8(i + 1)
			}
		}
	}
	// Down the tree, as the kernel would have marked it at each exec and fork:
	// a pass per generation; a runtime's tree is a few deep.
	for range 8 {
		changed := false
		for pid, p := range procs {
			parent, ok := marks[p.ppid]
			if _, done := marks[pid]; done || !ok {
				continue
			}
			if m := childMark(parent, p, procs[p.ppid], byID, bins); m != 0 {
				marks[pid] = m
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	return marks
}

// childMark is what a process running p, child of a process marked parent
// running pp, would carry: the kernel's mark_runtime_exec, and fork.
func childMark(parent uint8, p, pp proc, byID map[[2]uint64]int, bins []Binary) uint8 {
	clone := parent != MarkServer && parent&MarkClone != 0
	switch i, isRuntime := byID[p.id]; {
	case p.id == pp.id && p.id != [2]uint64{}:
		return parent // forked, not exec'd
	case isRuntime && !clone:
		return uint8(i + 1)
	case p.unlinked && parent != MarkServer && !clone:
		if i := int(parent&MarkIndex) - 1; i >= 0 && i < len(bins) && bins[i].Size == p.size {
			return parent | MarkClone
		}
	}
	return 0
}

func readProcs() map[uint32]proc {
	procs := map[uint32]proc{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return procs
	}
	for _, e := range entries {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		dir := "/proc/" + e.Name()
		var p proc
		if p.ppid = ppidOf(dir); p.ppid == 0 && pid != 1 {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(dir+"/exe", &st) == nil {
			p.id, p.size = [2]uint64{uint64(KernelDev(st.Dev)), st.Ino}, st.Size
			link, _ := os.Readlink(dir + "/exe")
			p.unlinked = strings.HasSuffix(link, " (deleted)")
		}
		procs[uint32(pid)] = p
	}
	return procs
}

func ppidOf(dir string) uint32 {
	st, _ := procfs.ReadStat(dir)
	return st.PPid
}
