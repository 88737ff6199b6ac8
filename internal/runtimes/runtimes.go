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

	"github.com/capsrec/capsrec/core"
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

// The kernel's marks (capsrec.h's enum runtime_mark_bits).
const (
	MarkServer = core.MarkServer // the runtime server: passes the mark on, its own checks are not setup
	MarkClone  = core.MarkClone  // a runtime's re-exec of a sealed copy of itself (runc init)
	MarkIndex  = core.MarkIndex  // 1 + the runtime binary's index
)

// MaxBinaries is how many runtime binaries a mark can name.
const MaxBinaries = int(MarkIndex)

// Binary is one runtime executable and its identity as the kernel sees it.
type Binary struct {
	Path string
	Ino  uint64
	Dev  uint32 // the kernel's dev_t (major << 20 | minor), as super_block.s_dev
	Size int64  // a sealed copy of this size is the runtime's re-exec of itself
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
	uid      uint32    // real uid, read only for shims
	start    uint64    // clock ticks since boot: a mark holds only for this process
	id       [2]uint64 // kernel dev, inode of its executable
	size     int64
	unlinked bool
	// pid, mntID: its executable's mount, for sealed (is it in no mount
	// namespace: runc 1.2+'s sealed copy of itself).
	pid   uint32
	mntID uint64
	args  []string // argv, read only for processes that run a shim
}

// sealed tells an executable no path reaches: deleted, or on a mount its own
// process's mount namespace does not list (detached, or fsmount's anonymous
// namespace), as runc 1.2+ seals its copy of itself (the kernel's unreachable()).
func (p proc) sealed() bool {
	if p.unlinked {
		return true
	}
	if p.mntID == 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(p.pid), 10) + "/mountinfo")
	if err != nil {
		return false
	}
	id := strconv.FormatUint(p.mntID, 10) + " "
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, id) {
			return false
		}
	}
	return true
}

// Mark is a process's kernel mark (MarkServer, 1 + index, | MarkClone), valid
// only while the process that started at Start (clock ticks since boot) runs.
type Mark struct {
	Mark  uint8
	Start uint64
}

// Tree is what the runtime server says of its own tree: where its containers'
// processes are, and where it keeps its tasks' bundles.
type Tree struct {
	Servers []Server
	// PIDs are the host pids of the containers' and pod sandboxes' first
	// processes, in any state the runtime reports (created, running, ready,
	// not ready): their parents are the runtime's shims.
	PIDs []uint32
	// TaskDirs hold one bundle per task (containerd's
	// io.containerd.runtime.v2.task/NAMESPACE/ID), as the server's root names
	// them: root's, in a directory only root can write.
	TaskDirs []string
}

// IsShim tells a runtime binary that supervises containers (a containerd
// shim, conmon) from one that creates them (runc, crun): a shim is the
// parent of its containers' first processes and never re-execs a copy of
// itself, so no child of a shim is ever that copy.
func IsShim(path string) bool {
	base := filepath.Base(path)
	return strings.Contains(base, "shim") || strings.HasPrefix(base, "conmon")
}

// Marks are the kernel's marks for the processes of the servers' trees that
// run now: each server; each shim (a runtime binary that is the parent of a
// process the runtime reported, or of a bundle's init process, or that serves
// a bundle of the server's, run by root); and below those, what the kernel's
// rules would have marked (runtime binaries, a runtime's sealed copy of
// itself, forked children). Marks is called once the exec, fork and exit
// hooks are attached: what changes after it read /proc, the kernel marks.
func Marks(bins []Binary, tree Tree) map[uint32]Mark {
	marks := map[uint32]Mark{}
	if len(tree.Servers) == 0 {
		return marks
	}
	byID := map[[2]uint64]int{}
	for i, b := range bins {
		byID[[2]uint64{uint64(b.Dev), b.Ino}] = i
	}
	procs := readProcs(func(id [2]uint64) bool {
		i, ok := byID[id]
		return ok && IsShim(bins[i].Path)
	})
	for _, s := range tree.Servers {
		if p, ok := procs[uint32(s.PID)]; ok {
			marks[uint32(s.PID)] = Mark{MarkServer, p.start}
		}
	}
	markShim := func(pid uint32) {
		if p, ok := procs[pid]; ok && marks[pid].Mark == 0 {
			if i, ok := byID[p.id]; ok && IsShim(bins[i].Path) {
				marks[pid] = Mark{uint8(i + 1), p.start}
			}
		}
	}
	pids, bundles := append([]uint32(nil), tree.PIDs...), map[string]bool{}
	for _, dir := range tree.TaskDirs {
		for id, pid := range readBundles(dir) {
			bundles[id] = true
			if pid != 0 {
				pids = append(pids, pid)
			}
		}
	}
	for _, pid := range pids {
		markShim(procs[pid].ppid)
	}
	// A shim between its start and its first container's init (running runc
	// create): root's, serving a bundle of the server's.
	for pid, p := range procs {
		if p.uid == 0 && bundles[flagValue(p.args, "-id")] {
			markShim(pid)
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
			if m := childMark(parent.Mark, p, procs[p.ppid], byID, bins); m != 0 {
				marks[pid] = Mark{m, p.start}
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
// running pp, would carry: the kernel's mark_runtime_exec, and fork. The start-up
// scan sees only what runs now, not how it came to run: a shim's child may be
// a container's first process, reparented to it, so it is never a runtime's
// copy of itself, whatever file it runs (a memfd the size of the shim).
func childMark(parent uint8, p, pp proc, byID map[[2]uint64]int, bins []Binary) uint8 {
	clone := parent != MarkServer && parent&MarkClone != 0
	switch i, isRuntime := byID[p.id]; {
	case p.id == pp.id && p.id != [2]uint64{}:
		return parent // forked, not exec'd
	case isRuntime && !clone:
		return uint8(i + 1)
	case parent != MarkServer && !clone:
		i := int(parent&MarkIndex) - 1
		if i >= 0 && i < len(bins) && !IsShim(bins[i].Path) && bins[i].Size == p.size && p.sealed() {
			return parent | MarkClone
		}
	}
	return 0
}

// readBundles lists a task directory's bundles (containerd's
// NAMESPACE/ID/init.pid): each task's id and its init's pid, 0 when the
// shim has not written it yet.
func readBundles(dir string) map[string]uint32 {
	found := map[string]uint32{}
	namespaces, _ := os.ReadDir(dir)
	for _, ns := range namespaces {
		tasks, _ := os.ReadDir(filepath.Join(dir, ns.Name()))
		for _, task := range tasks {
			var pid uint64
			if b, err := os.ReadFile(filepath.Join(dir, ns.Name(), task.Name(), "init.pid")); err == nil {
				pid, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
			}
			found[task.Name()] = uint32(pid)
		}
	}
	return found
}

// flagValue is the argument after flag in args ("" when absent).
func flagValue(args []string, flag string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			return args[i+1]
		}
	}
	return ""
}

// readProcs reads every process; the arguments only of those running an
// executable withArgs says yes to.
func readProcs(withArgs func(id [2]uint64) bool) map[uint32]proc {
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
		ps, ok := procfs.ReadStat(dir)
		if p.ppid, p.start = ps.PPid, ps.StartTicks; !ok || (p.ppid == 0 && pid != 1) {
			continue
		}
		p.uid = ^uint32(0) // read below only for shims: unknown, never root's
		var st unix.Stat_t
		if unix.Stat(dir+"/exe", &st) == nil {
			p.id, p.size = [2]uint64{uint64(KernelDev(st.Dev)), st.Ino}, st.Size
			link, _ := os.Readlink(dir + "/exe")
			p.unlinked = strings.HasSuffix(link, " (deleted)")
			var stx unix.Statx_t
			if unix.Statx(unix.AT_FDCWD, dir+"/exe", 0, unix.STATX_MNT_ID, &stx) == nil && stx.Mask&unix.STATX_MNT_ID != 0 {
				p.pid, p.mntID = uint32(pid), stx.Mnt_id
			}
		}
		if withArgs(p.id) {
			if uid, ok := procfs.RealUID(dir); ok {
				p.uid = uid
			}
			if b, err := os.ReadFile(dir + "/cmdline"); err == nil {
				p.args = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
			}
		}
		procs[uint32(pid)] = p
	}
	return procs
}
