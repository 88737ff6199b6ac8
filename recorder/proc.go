package recorder

import (
	"bytes"
	"encoding/base64"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/capsrec/capsrec/bpf"
	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/procfs"
	"github.com/capsrec/capsrec/internal/runtimes"
)

// Clock turns kernel CLOCK_BOOTTIME nanoseconds into wall-clock time.
type Clock struct{ bootEpoch int64 }

// NewClock measures where boot time 0 falls on the wall clock.
func NewClock() Clock {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return Clock{bootEpoch: time.Now().UnixNano() - ts.Nano()}
}

// Wall converts boot-time ns to UTC wall time.
func (c Clock) Wall(boot uint64) time.Time { return time.Unix(0, c.bootEpoch+int64(boot)).UTC() }

// ProcCache maps tgids to Processes. An exited process stays while a check can
// still ask for it: while children it forked live (their checks name it as
// parent), then for a short grace (checks of its other threads, and the
// enricher's wait, come after its exit record). The map is bounded: when full,
// exited and then arbitrary entries go, counted in Evicted.
type ProcCache struct {
	node   string
	clock  Clock
	grace  time.Duration
	max    int
	procs  map[uint32]*core.Process
	exited []*core.Process // in exit order (or order of last child's exit)
	// exitedAt is when each process in exited exited (or its last child did).
	exitedAt map[*core.Process]time.Time
	// kids counts, by tgid, the forked children seen that have not exited;
	// forkedBy is each such child's parent.
	kids     map[uint32]int
	forkedBy map[uint32]uint32
	now      func() time.Time
	// runtimes are the runtime binaries by the kernel's index (exec_event.runtime - 1).
	runtimes []string
	// Evicted counts processes forgotten before their time because the cache
	// was full: exited ones within their grace period, then running ones.
	Evicted uint64
}

// NewProcCache makes an empty cache; node names exec IDs as Tetragon's node_name does.
func NewProcCache(node string, clock Clock, grace time.Duration, max int) *ProcCache {
	return &ProcCache{node: node, clock: clock, grace: grace, max: max, procs: map[uint32]*core.Process{},
		exitedAt: map[*core.Process]time.Time{}, kids: map[uint32]int{}, forkedBy: map[uint32]uint32{}, now: time.Now}
}

// Len is the number of processes held, exited ones in their grace period included.
func (pc *ProcCache) Len() int { return len(pc.procs) }

func (pc *ProcCache) execID(ktime uint64, tgid uint32) string {
	return base64.StdEncoding.EncodeToString([]byte(pc.node + ":" + strconv.FormatUint(ktime, 10) + ":" + strconv.FormatUint(uint64(tgid), 10)))
}

func (pc *ProcCache) put(p *core.Process) {
	if _, ok := pc.procs[p.Tgid]; !ok && len(pc.procs) >= pc.max {
		pc.makeRoom()
	}
	pc.procs[p.Tgid] = p
}

func (pc *ProcCache) makeRoom() {
	pc.Sweep()
	if len(pc.procs) < pc.max {
		return
	}
	n := len(pc.procs)
	pc.sweep(time.Time{}, true)
	for tgid := range pc.procs {
		if len(pc.procs) < pc.max {
			break
		}
		pc.forget(tgid)
	}
	pc.Evicted += uint64(n - len(pc.procs))
}

// forget drops a process and what is counted for it.
func (pc *ProcCache) forget(tgid uint32) {
	delete(pc.procs, tgid)
	delete(pc.kids, tgid)
	pc.childExited(tgid)
}

// Sweep forgets processes whose grace period has passed.
func (pc *ProcCache) Sweep() { pc.sweep(pc.now(), false) }

func (pc *ProcCache) sweep(now time.Time, all bool) {
	i := 0
	var parents []*core.Process
	for ; i < len(pc.exited); i++ {
		p := pc.exited[i]
		if !all && now.Sub(pc.exitedAt[p]) < pc.grace {
			break
		}
		if pc.procs[p.Tgid] != p {
			delete(pc.exitedAt, p)
			continue
		}
		if !all && pc.kids[p.Tgid] > 0 {
			parents = append(parents, p) // its children may still ask for it
			continue
		}
		pc.forget(p.Tgid)
		delete(pc.exitedAt, p)
	}
	pc.exited = append(pc.exited[:0], pc.exited[i:]...)
	for _, p := range parents {
		pc.exitedAt[p] = now
		pc.exited = append(pc.exited, p)
	}
}

func flags(words ...string) string {
	var b strings.Builder
	for _, w := range words {
		if w == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
	return b.String()
}

func when(cond bool, word string) string {
	if cond {
		return word
	}
	return ""
}

func cString(b []int8) string {
	n := 0
	for n < len(b) && b[n] != 0 {
		n++
	}
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(b[i])
	}
	return string(buf)
}

// fdExec matches the names an exec through a file descriptor (fexecve,
// execveat with AT_EMPTY_PATH) gets: they say nothing of what ran.
// So does /proc/self/exe (busybox's applets, runc init): it names the caller's program.
var fdExec = regexp.MustCompile(`^/(dev|proc/(self|[0-9]+))/fd/[0-9]+$|^/proc/(self|[0-9]+)/exe$`)

// OnExec records a process's new program.
func (pc *ProcCache) OnExec(ev *bpf.ExecEvent) *core.Process {
	tgid := ev.Hdr.Tgid
	prev := pc.procs[tgid]
	n := int(ev.CwdOff)
	cwd := ""
	if n < len(ev.Cwd) {
		cwd = cString(ev.Cwd[n:])
	}
	cwdShown := cwd
	if ev.CwdTruncated != 0 { // only its last components: it must not look whole
		cwdShown = "..." + cwd
	}
	if ev.CwdUnlinked != 0 {
		cwdShown += " (deleted)"
	}
	binary := cString(ev.Filename[:])
	if binary != "" && !path.IsAbs(binary) && cwd != "" {
		binary = path.Join(cwd, binary)
	}
	real := ""
	if n := int(ev.ExeOff); n < len(ev.ExePath) && ev.ExeTruncated == 0 {
		real = cString(ev.ExePath[n:])
		if ev.ExeUnlinked != 0 {
			real += " (deleted)"
		}
	}
	if real != "" && fdExec.MatchString(binary) {
		binary = real // /dev/fd/3 says nothing of what ran
	}
	runtime := ""
	if i := int(ev.Runtime&runtimes.MarkIndex) - 1; ev.Runtime != runtimes.MarkServer && i >= 0 && i < len(pc.runtimes) {
		// runc re-execs itself from a memfd as /dev/fd/N: name it by what it is.
		binary, runtime = pc.runtimes[i], path.Base(pc.runtimes[i])
	}
	argLen := min(int(ev.ArgsLen), len(ev.Args))
	raw := make([]byte, argLen)
	for i := range raw {
		raw[i] = byte(ev.Args[i])
	}
	p := &core.Process{
		Tgid:       tgid,
		Ptgid:      ev.Ptgid,
		Ktime:      ev.Hdr.Ktime,
		StartBoot:  ev.StartBoottime,
		StartTime:  pc.clock.Wall(ev.Hdr.Ktime),
		UID:        ev.Uid,
		AUID:       ev.Auid,
		Binary:     binary,
		RealBinary: real,
		Runtime:    runtime,
		Arguments:  argumentsFromArgv(raw),
		Cwd:        cwdShown,
		Flags: flags("execve", when(cwd == "/", "rootcwd"), when(prev != nil && strings.Contains(prev.Flags, "clone") && !strings.Contains(prev.Flags, "execve"), "clone"),
			when(ev.ArgsTruncated != 0, "truncArgs"), when(ev.CwdTruncated != 0, "truncCwd")),
	}
	p.ExecID = pc.execID(p.Ktime, tgid)
	if parent := pc.procs[ev.Ptgid]; parent != nil {
		p.ParentExecID = parent.ExecID
	}
	pc.put(p)
	return p
}

// argumentsFromArgv joins argv[1:] with spaces, as Tetragon's "arguments" does.
func argumentsFromArgv(raw []byte) string {
	raw = bytes.TrimRight(raw, "\x00")
	parts := bytes.Split(raw, []byte{0})
	if len(parts) <= 1 {
		return ""
	}
	return string(bytes.Join(parts[1:], []byte{' '}))
}

// OnFork records a new process that runs its parent's program until it execs.
func (pc *ProcCache) OnFork(ev *bpf.ForkEvent) *core.Process {
	p := &core.Process{
		Tgid:      ev.Hdr.Tgid,
		Ptgid:     ev.Ptgid,
		Ktime:     ev.Hdr.Ktime,
		StartBoot: ev.StartBoottime,
		StartTime: pc.clock.Wall(ev.Hdr.Ktime),
		Flags:     "clone",
	}
	if parent := pc.procs[ev.Ptgid]; parent != nil {
		p.ParentExecID = parent.ExecID
		p.UID, p.AUID = parent.UID, parent.AUID
		p.Binary, p.Arguments, p.Cwd, p.Runtime, p.RealBinary = parent.Binary, parent.Arguments, parent.Cwd, parent.Runtime, parent.RealBinary
		p.Flags = flags("clone", when(p.Cwd == "/", "rootcwd"))
	}
	p.ExecID = pc.execID(p.Ktime, p.Tgid)
	pc.put(p)
	if _, ok := pc.procs[ev.Ptgid]; ok {
		pc.childExited(p.Tgid) // a reused pid
		pc.kids[ev.Ptgid]++
		pc.forkedBy[p.Tgid] = ev.Ptgid
	}
	return p
}

// childExited forgets a forked child: its parent need not wait for it any more.
func (pc *ProcCache) childExited(tgid uint32) {
	parent, ok := pc.forkedBy[tgid]
	if !ok {
		return
	}
	delete(pc.forkedBy, tgid)
	if n := pc.kids[parent]; n <= 1 {
		delete(pc.kids, parent)
	} else {
		pc.kids[parent] = n - 1
	}
}

// OnExit starts a process's grace period; its parent need no longer wait for it.
func (pc *ProcCache) OnExit(tgid uint32) {
	p := pc.procs[tgid]
	if _, exited := pc.exitedAt[p]; p == nil || exited {
		return
	}
	pc.exitedAt[p] = pc.now()
	pc.exited = append(pc.exited, p)
	pc.childExited(tgid)
}

// Lookup finds tgid's process; startBoot, when not 0, must match so that a
// reused pid does not borrow a dead process's identity. On a miss it reads /proc.
func (pc *ProcCache) Lookup(tgid uint32, startBoot uint64) *core.Process {
	p := pc.procs[tgid]
	if p != nil && sameStart(p.StartBoot, startBoot) {
		return p
	}
	if p = pc.readProc(tgid); p != nil && sameStart(p.StartBoot, startBoot) {
		pc.put(p)
		return p
	}
	return nil
}

// sameStart compares start times at /proc's resolution (a tick); 0 is unknown and matches.
func sameStart(a, b uint64) bool {
	const tick = 1e9 / userHZ
	return a == 0 || b == 0 || a/tick == b/tick
}

// Get returns the cached process without reading /proc.
func (pc *ProcCache) Get(tgid uint32) *core.Process { return pc.procs[tgid] }

// userHZ is the unit of /proc/PID/stat's starttime on Linux.
const userHZ = 100

// ScanProc fills the cache with every process that runs now, parents first
// so that parent_exec_id resolves.
func (pc *ProcCache) ScanProc() error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	var found []*core.Process
	for _, e := range entries {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		if p := pc.readProc(uint32(pid)); p != nil {
			pc.put(p)
			found = append(found, p)
		}
	}
	for _, p := range found {
		if parent := pc.procs[p.Ptgid]; parent != nil {
			p.ParentExecID = parent.ExecID
		}
	}
	return nil
}

func (pc *ProcCache) readProc(pid uint32) *core.Process {
	dir := "/proc/" + strconv.FormatUint(uint64(pid), 10)
	stat, ok := procfs.ReadStat(dir)
	if !ok {
		return nil
	}
	start := stat.StartTicks * (1e9 / userHZ)
	p := &core.Process{
		Tgid:      pid,
		Ptgid:     stat.PPid,
		Ktime:     start,
		StartBoot: start,
		StartTime: pc.clock.Wall(start),
		UID:       procUID(dir),
		AUID:      procLoginUID(dir),
	}
	p.Binary, _ = os.Readlink(dir + "/exe")
	p.RealBinary = p.Binary
	p.Binary = strings.TrimSuffix(p.Binary, " (deleted)")
	p.Cwd, _ = os.Readlink(dir + "/cwd")
	if cmdline, err := os.ReadFile(dir + "/cmdline"); err == nil {
		p.Arguments = argumentsFromArgv(cmdline)
	}
	p.Flags = flags("procFS", when(p.Cwd == "/", "rootcwd"))
	p.ExecID = pc.execID(p.Ktime, pid)
	return p
}

func procUID(dir string) uint32 {
	uid, _ := procfs.RealUID(dir)
	return uid
}

func procLoginUID(dir string) uint32 {
	b, err := os.ReadFile(dir + "/loginuid")
	if err != nil {
		return ^uint32(0)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return ^uint32(0)
	}
	return uint32(v)
}
