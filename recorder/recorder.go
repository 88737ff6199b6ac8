package recorder

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/capsrec/capsrec/bpf"
	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/callsite"
	"github.com/capsrec/capsrec/internal/procfs"
	"github.com/capsrec/capsrec/recorder/ring"
)

// Options tune a Recorder.
type Options struct {
	Node string // names exec IDs, as Tetragon's node_name
	// Poll is how long the reader sleeps between looks at a ring buffer that
	// did not wake it: the kernel wakes it only past a fill threshold.
	Poll      time.Duration
	ProcGrace time.Duration
	MaxProcs  int
	// Symbols names call sites; nil leaves them unnamed.
	Symbols *callsite.Table
	// Learner turns stack samples into frames for the kernel's fast call-site walk.
	Learner *callsite.Learner
	// Runtimes are the container runtime binaries the kernel marks processes by,
	// indexed as bpf.Config.RuntimeExes's values less one.
	Runtimes []string
	// HideClasses are the classes the kernel hides (bpf.Config.HideClasses):
	// the checks user space decides last are hidden alike.
	HideClasses uint8
	// Detach removes the hooks when Run's context ends, before the last
	// drain: the session's own (it owns the hooks); nil detaches sess.
	Detach func() error
}

// Recorder turns ring-buffer records into Checks.
type Recorder struct {
	sess  *bpf.Session
	rd    *ring.Reader
	opts  Options
	clock Clock
	Procs *ProcCache
	// scratch is the one Check every record is decoded into: at hundreds of
	// thousands of checks a second, a fresh one each would feed the GC.
	scratch core.Check
	// sites caches call-site names: a few hundred call sites make nearly all checks.
	sites map[uint64]string
	// contexts are the threads' contexts by tid (see context.go).
	contexts map[uint32]*taskContext
	// exited are the last contexts of exited main threads, oldest first in exitedOrder.
	exited      map[uint32]*taskContext
	exitedOrder []uint32
	// Unjoined counts checks dropped because their context was not known here.
	Unjoined uint64
	// CapsetUndecided counts granted capset checks whose thread was gone
	// before its credentials could say whether the call raised its
	// inheritable set: counted as needs.
	CapsetUndecided uint64
	// HiddenCapsets are those decided probes and hidden as the kernel hides them.
	HiddenCapsets uint64
	execs         bool
}

// DeliverExecs makes Run deliver each exec of a program that is no runtime's
// as a Check with Exec set, so that containers are seen when they start, and
// when they make no check at all.
func (r *Recorder) DeliverExecs() { r.execs = true }

// CallSiteName names the function holding return address ip, with the address.
func (r *Recorder) CallSiteName(ip uint64) string { return fmt.Sprintf("%s (%#x)", r.callSite(ip), ip) }

// callSite names the function holding return address ip.
func (r *Recorder) callSite(ip uint64) string {
	if r.opts.Symbols == nil || ip == 0 {
		return ""
	}
	name, ok := r.sites[ip]
	if !ok {
		name = r.opts.Symbols.Func(ip)
		if len(r.sites) < 1<<14 {
			r.sites[ip] = name
		}
	}
	return name
}

// New reads sess's ring buffer and fills a process cache from /proc.
func New(sess *bpf.Session, opts Options) (*Recorder, error) {
	if opts.Poll <= 0 {
		opts.Poll = 25 * time.Millisecond
	}
	if opts.ProcGrace <= 0 {
		opts.ProcGrace = 5 * time.Second // past the enricher's 2-second wait
	}
	if opts.MaxProcs <= 0 {
		opts.MaxProcs = 1 << 16
	}
	rd, err := ring.New(sess.Events())
	if err != nil {
		return nil, err
	}
	clock := NewClock()
	r := &Recorder{sess: sess, rd: rd, opts: opts, clock: clock,
		Procs: NewProcCache(opts.Node, clock, opts.ProcGrace, opts.MaxProcs)}
	r.Procs.runtimes = opts.Runtimes
	r.sites = map[uint64]string{}
	r.contexts = map[uint32]*taskContext{}
	r.exited = map[uint32]*taskContext{}
	// After the exec hook is attached, so that no process falls between the two.
	if err := r.Procs.ScanProc(); err != nil {
		rd.Close()
		return nil, fmt.Errorf("scanning /proc: %w", err)
	}
	return r, nil
}

// ErrStop, returned by a handler, ends Run without an error.
var ErrStop = errors.New("stop recording")

// Run delivers checks to handle until ctx ends or handle returns an error.
// The Check is reused: it is valid until handle returns, so copy what must outlive it.
// idle runs whenever the ring buffer has been drained (a good time to flush).
// When ctx ends Run detaches the hooks and drains what the kernel already
// recorded, so that no check made before the stop is left unread.
func (r *Recorder) Run(ctx context.Context, handle func(*core.Check) error, idle func() error) error {
	defer r.rd.Close()
	var handleErr error
	deliver := func(raw []byte) error {
		if c := r.decode(raw); c != nil {
			handleErr = handle(c)
		}
		return handleErr
	}
	draining := false
	busy := 0 // batches in a row that found the next record not yet committed
	swept := time.Now()
	for {
		// Every second, busy or not: a ring that is never quiet must not keep
		// every process that ever ran.
		if now := time.Now(); now.Sub(swept) >= time.Second {
			r.Procs.Sweep()
			swept = now
		}
		if !draining && ctx.Err() != nil {
			detach := r.opts.Detach
			if detach == nil {
				detach = r.sess.Detach
			}
			if err := detach(); err != nil {
				return fmt.Errorf("detaching: %w", err)
			}
			draining = true
		}
		ready, err := r.rd.Wait(r.opts.Poll)
		if err != nil {
			return err
		}
		if !ready {
			if draining {
				if err := r.decidePendingCapsets(handle); err != nil {
					return stopOK(err)
				}
			}
			if err := idle(); err != nil {
				return stopOK(err)
			}
			if draining {
				return nil
			}
			continue
		}
		n, err := r.rd.Read(deliver)
		if err != nil {
			if handleErr != nil {
				return stopOK(handleErr)
			}
			return err
		}
		if n > 0 {
			busy = 0
		} else if busy++; busy > 1000 {
			// The next record is reserved and not yet committed: its program
			// is still filling it (ask again at once: a yield would sleep), or
			// was preempted (then wait without spinning).
			time.Sleep(50 * time.Microsecond)
		}
		if r.rd.Available() == 0 {
			if err := idle(); err != nil {
				return stopOK(err)
			}
		}
	}
}

func stopOK(err error) error {
	if errors.Is(err, ErrStop) {
		return nil
	}
	return err
}

// decidePendingCapsets delivers the granted capset checks the kernel still
// held when the hooks were removed, each decided as the kernel would have:
// a need when the thread's inheritable set is now beyond its old inheritable
// and permitted sets (only capset raises it), else a probe, hidden like the
// kernel hides probes. A thread gone meanwhile leaves a need, counted.
func (r *Recorder) decidePendingCapsets(handle func(*core.Check) error) error {
	pending, err := r.sess.PendingCapsets()
	if err != nil {
		return err
	}
	for i := range pending {
		ev := &pending[i].Event
		class := core.ClassNeed
		if inh, ok := procfs.CapInh(ev.Hdr.Tgid, ev.Tid); !ok {
			r.CapsetUndecided++
		} else if inh&^pending[i].OldSets == 0 {
			class = core.ClassProbe
		}
		if r.opts.HideClasses&(1<<class) != 0 {
			r.HiddenCapsets++
			continue
		}
		ev.Class, ev.SiteProbe = uint8(class), bpf.Bool(class == core.ClassProbe)
		if c := r.check(ev); c != nil {
			if err := handle(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// Wall converts a kernel boot-time stamp.
func (r *Recorder) Wall(ktime uint64) time.Time { return r.clock.Wall(ktime) }

func (r *Recorder) decode(raw []byte) *core.Check {
	if len(raw) < int(unsafe.Sizeof(bpf.EventHeader{})) {
		return nil
	}
	switch raw[0] {
	case bpf.EventCap:
		if len(raw) >= int(unsafe.Sizeof(bpf.CapEvent{})) {
			return r.check((*bpf.CapEvent)(unsafe.Pointer(&raw[0])))
		}
	case bpf.EventListen:
		if len(raw) >= int(unsafe.Sizeof(bpf.CapEvent{})) {
			ev := (*bpf.CapEvent)(unsafe.Pointer(&raw[0]))
			if c := r.check(ev); c != nil {
				c.Listen = true
				c.NetSysctls.PortStart = int32(ev.Opts) // as of the listen
				return c
			}
		}
	case bpf.EventExec:
		if len(raw) >= int(unsafe.Sizeof(bpf.ExecEvent{})) {
			ev := (*bpf.ExecEvent)(unsafe.Pointer(&raw[0]))
			p := r.Procs.OnExec(ev)
			if r.execs && p.Runtime == "" {
				return r.exec(ev, p)
			}
		}
	case bpf.EventFork:
		if len(raw) >= int(unsafe.Sizeof(bpf.ForkEvent{})) {
			r.Procs.OnFork((*bpf.ForkEvent)(unsafe.Pointer(&raw[0])))
		}
	case bpf.EventCtx:
		if len(raw) >= int(unsafe.Sizeof(bpf.CtxEvent{})) {
			r.onContext((*bpf.CtxEvent)(unsafe.Pointer(&raw[0])))
		}
	case bpf.EventExit:
		tgid := (*bpf.EventHeader)(unsafe.Pointer(&raw[0])).Tgid
		r.Procs.OnExit(tgid)
		r.forgetProcess(tgid)
	case bpf.EventLearn:
		if len(raw) >= int(unsafe.Sizeof(bpf.LearnEvent{})) && r.opts.Learner != nil {
			r.learn((*bpf.LearnEvent)(unsafe.Pointer(&raw[0])))
		}
	}
	return nil
}

// learn hands a stack sample to the learner and teaches the kernel what it learned.
// A failed map write only leaves those checks to the kernel's unwinder.
func (r *Recorder) learn(ev *bpf.LearnEvent) {
	ips := ev.Ips[:min(int(ev.N_ips), len(ev.Ips))]
	window := ev.Window[:min(int(ev.N_words), len(ev.Window))]
	frames, anchor := r.opts.Learner.Learn(ips, window)
	void := false
	for _, f := range frames {
		_ = r.sess.AddFrame(f.Ret, f.Delta, uint32(f.Kind))
		void = void || f.Delta == 0 // a frame the walk passed may now stop it
	}
	if void {
		_ = r.sess.VoidCachedWalks()
	}
	if anchor != nil {
		_ = r.sess.SetWalkAnchor(anchor.Offset, anchor.Value)
	}
}

// cap_capable's opts bits (include/linux/security.h).
const (
	capOptNoAudit = 1 << 1
	capOptInSetID = 1 << 2
)

// exec is the Exec item of a program's exec.
func (r *Recorder) exec(ev *bpf.ExecEvent, p *core.Process) *core.Check {
	c := &r.scratch
	*c = core.Check{
		Exec:       true,
		Handoff:    ev.Handoff != 0,
		Time:       p.StartTime,
		Ktime:      ev.Hdr.Ktime,
		Process:    p,
		Parent:     r.Procs.Lookup(ev.Ptgid, 0),
		Tid:        ev.Hdr.Tgid,
		NsPid:      ev.NsPid,
		UID:        ev.Uid,
		GID:        ev.Gid,
		EUID:       ev.Euid,
		AUID:       ev.Auid,
		Comm:       cString(ev.Comm[:]),
		CgroupID:   ev.CgroupId,
		CgroupName: cString(ev.CgroupName[:]),
		Syscall:    -1,
	}
	return c
}

// check joins a check to the context it was made under; nil when that is not known.
func (r *Recorder) check(ev *bpf.CapEvent) *core.Check {
	tc := r.context(ev.Tid, ev.CtxSeq)
	if tc == nil {
		return nil
	}
	cx := &tc.ev
	c := &r.scratch
	*c = core.Check{
		Time:           r.clock.Wall(ev.Hdr.Ktime),
		Ktime:          ev.Hdr.Ktime,
		Tid:            ev.Tid,
		NsPid:          cx.NsPid,
		UID:            cx.Uid,
		GID:            cx.Gid,
		EUID:           cx.Euid,
		AUID:           cx.Auid,
		Comm:           tc.comm,
		Cap:            ev.Cap,
		Ret:            ev.Ret,
		Method:         core.MethodOf(ev.Method),
		OverrideCreds:  ev.OverrideCreds != 0,
		Syscall:        ev.SyscallNr,
		TargetNS:       core.UserNS{Level: ev.TargetNsLevel, UID: ev.TargetNsUid, GID: ev.TargetNsGid, Inum: ev.TargetNsInum},
		NS:             cx.Ns,
		CredUserNS:     cx.CredUserNs,
		NSAnswer:       ev.NsAnswer,
		CapEffective:   cx.CapEffective,
		CapPermitted:   cx.CapPermitted,
		CapInheritable: cx.CapInheritable,
		CgroupID:       ev.CgroupId,
		CgroupName:     tc.cgroupName,
		ExeIno:         cx.ExeIno,
		ExeDev:         cx.ExeDev,
		Class:          core.Class(ev.Class),
		SiteProbe:      ev.SiteProbe != 0,
		NetArg:         ev.NetArg,
		NetSysctls:     core.NetSysctls{PortStart: cx.IpProtSock, PingGroup: cx.PingGid},
	}
	c.CallSite = r.callSite(ev.CallSite)
	c.CallSiteVia = r.callSite(ev.CallSiteVia)
	if ev.HasOpts != 0 {
		switch r.sess.OptsKind {
		case bpf.OptsBitmask:
			c.AuditKnown = true
			c.Audit = ev.Opts&capOptNoAudit == 0
			c.InSetID = ev.Opts&capOptInSetID != 0
		case bpf.OptsAuditInt:
			c.AuditKnown = true
			c.Audit = ev.Opts != 0
		}
	}
	tgid := ev.Hdr.Tgid
	c.Process = r.Procs.Lookup(tgid, cx.StartBoottime)
	if c.Process == nil {
		// Gone before capsrec could see it: say what the kernel said.
		c.Process = &core.Process{Tgid: tgid, Ptgid: cx.Ptgid, Ktime: cx.StartBoottime, StartBoot: cx.StartBoottime,
			StartTime: r.clock.Wall(cx.StartBoottime), UID: cx.Uid, AUID: cx.Auid}
		c.Process.ExecID = r.Procs.execID(cx.StartBoottime, tgid)
	}
	c.Parent = r.Procs.Lookup(cx.Ptgid, 0)
	return c
}
