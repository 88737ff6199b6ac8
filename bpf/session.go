package bpf

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/capsrec/capsrec/core"
)

// Session is a loaded and attached set of programs. Close detaches and frees all of it.
type Session struct {
	Method Method
	coll   *ebpf.Collection // the programs loaded for Method, and the global variables' maps
	maps   capsrecMaps
	vars   capsrecVariables
	links  []link.Link
	// SyscallFromPtRegs tells whether bpf_task_pt_regs was used (5.15+) or the stack layout.
	SyscallFromPtRegs bool
	// OptsKind is how cap_capable's 4th argument reads on the kernel the programs were loaded for.
	OptsKind OptsKind
	// ListenHookErr says why low ports bound without a check are not seen (nil: they are).
	ListenHookErr error
}

// processTracepoints are the exec/fork/exit tracepoints, and their programs:
// tp_btf ones need the kernel's own BTF to attach, raw tracepoints do not (--btf).
var processTracepoints = []struct{ name, btf, raw string }{
	{"sched_process_exec", capsrecProgSchedProcessExec, capsrecProgRawSchedProcessExec},
	{"sched_process_fork", capsrecProgSchedProcessFork, capsrecProgRawSchedProcessFork},
	{"sched_process_exit", capsrecProgSchedProcessExit, capsrecProgRawSchedProcessExit},
}

// Open loads the programs for method and attaches them. With MethodAuto it
// tries each method in order and keeps the first that loads and attaches; the
// errors of those it passed over are joined into the error if none works.
func Open(cfg Config, method Method) (*Session, error) {
	kernel, err := kernelSpec(cfg)
	if err != nil {
		return nil, err
	}
	if method != MethodAuto {
		return open(cfg, kernel, method)
	}
	var errs []error
	for _, m := range core.Methods {
		s, err := open(cfg, kernel, m)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no attach method works on this kernel: %w", errors.Join(errs...))
}

// TryAttach tells whether method can be used here by loading and attaching it, then detaching.
func TryAttach(cfg Config, method Method) error {
	s, err := Open(cfg, method)
	if err != nil {
		return err
	}
	return s.Close()
}

func open(cfg Config, kernel *btf.Spec, method Method) (_ *Session, err error) {
	if err := precheck(kernel, method, cfg.KernelBTF != nil); err != nil {
		return nil, err
	}
	spec, err := loadCapsrec()
	if err != nil {
		return nil, fmt.Errorf("reading the embedded BPF object: %w", err)
	}
	var specs capsrecSpecs
	if err := spec.Assign(&specs); err != nil {
		return nil, fmt.Errorf("reading the embedded BPF object: %w", err)
	}
	keep := map[string]bool{}
	for _, p := range capProgram[method] {
		keep[p] = true
	}
	keep[capsrecProgRawInetSockSetState] = true
	if cfg.TrackProcesses {
		for _, tp := range processTracepoints {
			keep[tp.btf], keep[tp.raw] = cfg.KernelBTF == nil, cfg.KernelBTF != nil
		}
	}
	// fexit reads the task through BTF where bpf_get_current_task_btf (5.11) exists.
	taskBTF := hasHelper(kernel, "BPF_FUNC_get_current_task_btf")
	if taskBTF {
		delete(keep, capsrecProgFexitCapCapableLegacy)
	} else {
		delete(keep, capsrecProgFexitCapCapable)
	}
	for name := range spec.Programs {
		if !keep[name] {
			delete(spec.Programs, name)
		}
	}
	// Maps only the pruned code uses: the smallest the kernel takes.
	if method != MethodKprobe {
		specs.KprobeArgs.MaxEntries = 1
	}
	if !cfg.Aggregate {
		specs.Agg.MaxEntries = 1
	}
	ptRegs := hasHelper(kernel, "BPF_FUNC_task_pt_regs")
	opts := CapCapableOpts(kernel)
	if err := configure(&specs, cfg, ptRegs, opts != OptsAuditInt); err != nil {
		return nil, err
	}

	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: cfg.KernelBTF}})
	if errors.Is(err, unix.EPERM) && method == MethodFexit {
		return nil, unavailable(method, "the kernel refuses to load fexit programs (EPERM: BPF trampolines are disabled or locked down here)")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: loading BPF programs: %w", method, err)
	}
	s := &Session{Method: method, coll: coll, SyscallFromPtRegs: ptRegs, OptsKind: opts}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.assign(); err != nil {
		return nil, err
	}
	if err := s.fillTables(cfg); err != nil {
		return nil, err
	}
	if len(cfg.Pids) > 0 {
		one := uint8(1)
		for _, pid := range cfg.Pids {
			if err := s.maps.PidFilter.Put(pid, one); err != nil {
				return nil, fmt.Errorf("filling the pid filter: %w", err)
			}
		}
	}
	if err := s.attach(method, cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Follow adds a process to the pid filter: with FollowPids, what it forks from
// now on joins it in the kernel.
func (s *Session) Follow(tgid uint32) error {
	if err := s.maps.PidFilter.Put(tgid, uint8(1)); err != nil {
		return fmt.Errorf("following process %d: %w", tgid, err)
	}
	return nil
}

// assign takes the maps and variables out of the collection into their typed structs.
func (s *Session) assign() error {
	if err := s.coll.Assign(&s.maps); err != nil {
		return fmt.Errorf("the loaded BPF maps: %w", err)
	}
	if err := s.coll.Assign(&s.vars); err != nil {
		return fmt.Errorf("the loaded BPF variables: %w", err)
	}
	return nil
}

func (s *Session) attach(method Method, cfg Config) error {
	trackProcesses, externalBTF := cfg.TrackProcesses, cfg.KernelBTF != nil
	add := func(l link.Link, err error, what string) error {
		if err != nil {
			return attachError(method, err, what)
		}
		s.links = append(s.links, l)
		return nil
	}
	tracing := func(name string) error {
		l, err := link.AttachTracing(link.TracingOptions{Program: s.coll.Programs[name]})
		return add(l, err, name)
	}
	// Process tracking first: a check must never arrive before the exec that explains it.
	for _, tp := range processTracepoints {
		var err error
		switch {
		case !trackProcesses:
		case externalBTF:
			l, lerr := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp.name, Program: s.coll.Programs[tp.raw]})
			err = add(l, lerr, tp.raw)
		default:
			err = tracing(tp.btf)
		}
		if err != nil {
			return err
		}
	}
	// A low port bound with no check (the namespace's sysctl let it): a fact
	// for the profile, never a reason not to record.
	if l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "inet_sock_set_state", Program: s.coll.Programs[capsrecProgRawInetSockSetState]}); err != nil {
		s.ListenHookErr = fmt.Errorf("attaching to the inet_sock_set_state tracepoint: %w", err)
	} else {
		s.links = append(s.links, l)
	}
	if cfg.BeforeChecks != nil {
		if err := cfg.BeforeChecks(s); err != nil {
			return err
		}
	}
	return s.attachChecks(method, tracing, add)
}

// Events is the ring buffer the programs write to.
func (s *Session) Events() *ebpf.Map { return s.maps.Events }

// Stats sums the kernel's per-CPU counters.
func (s *Session) Stats() (Stats, error) {
	var st Stats
	var perCPU []capsrecCheckStats
	if err := s.maps.Stats.Lookup(uint32(0), &perCPU); err != nil {
		return st, fmt.Errorf("reading BPF stats: %w", err)
	}
	for _, c := range perCPU {
		st.Seen += c.Seen
		st.Filtered += c.Filtered
		st.Lost += c.Lost
		st.LostProcess += c.LostProc
		st.MissedReturns += c.MissedReturn
		st.Aggregated += c.Aggregated
		st.AggFull += c.AggFull
		for i := range st.Hidden {
			st.Hidden[i] += c.Hidden[i]
		}
		st.UnwindFailed += c.UnwindFailed
		st.FastWalks += c.FastWalks
		st.SlowWalks += c.SlowWalks
		st.WalkVerified += c.WalkVerified
		st.WalkMismatch += c.WalkMismatch
		st.Contexts += c.Contexts
		st.CapsetPendingFull += c.CapsetPendingFull
		st.FollowFull += c.FollowFull
	}
	return st, nil
}

// AddFrame teaches the fast call-site walk one pass-through frame.
func (s *Session) AddFrame(ret uint64, delta int32, kind uint32) error {
	if err := s.maps.Frames.Put(ret, capsrecFrameInfo{Delta: delta, Kind: kind}); err != nil {
		return fmt.Errorf("teaching the call-site walk: %w", err)
	}
	return nil
}

// VoidCachedWalks makes every CPU's cached walk stale: a learned frame changed.
func (s *Session) VoidCachedWalks() error {
	return s.updateWalkState("voiding cached walks", func(ws *capsrecWalkState) { ws.Generation++ })
}

// SetWalkAnchor sets where the fast call-site walk starts, keeping its broken flag.
func (s *Session) SetWalkAnchor(offset int32, value uint64) error {
	return s.updateWalkState("setting the call-site walk's anchor", func(ws *capsrecWalkState) {
		ws.Anchor, ws.AnchorValue = offset, value
	})
}

// updateWalkState changes the fields change sets and keeps those the programs write.
func (s *Session) updateWalkState(what string, change func(*capsrecWalkState)) error {
	ws, err := s.walkState()
	if err != nil {
		return err
	}
	change(&ws)
	if err := s.maps.WalkStates.Put(uint32(0), ws); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (s *Session) walkState() (capsrecWalkState, error) {
	var ws capsrecWalkState
	if err := s.maps.WalkStates.Lookup(uint32(0), &ws); err != nil {
		return ws, fmt.Errorf("reading the call-site walk: %w", err)
	}
	return ws, nil
}

// WalkMismatch is the first disagreement of the fast call-site walk with the
// kernel's unwinder: the return addresses each found (0 when none happened).
func (s *Session) WalkMismatch() (fast, slow uint64, err error) {
	ws, err := s.walkState()
	return ws.MismatchFast, ws.MismatchSlow, err
}

// ForgetContext makes the kernel send a thread's context again before its next
// check: user space lost it.
func (s *Session) ForgetContext(tid uint32) error {
	if err := s.maps.CtxSent.Delete(tid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("forgetting the context of thread %d: %w", tid, err)
	}
	return nil
}

// MarkRuntime marks a process of the runtime server's tree (its mark as
// internal/runtimes makes it), for as long as the process that started at
// startTicks (clock ticks since boot, as /proc says) runs. A mark the kernel
// set meanwhile is kept: it saw what happened since.
func (s *Session) MarkRuntime(tgid uint32, startTicks uint64, mark uint8) error {
	m := capsrecRuntimeMark{Start: startTicks, Mark: mark, Ticks: 1}
	err := s.maps.RuntimeTasks.Update(tgid, m, ebpf.UpdateNoExist)
	if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("marking runtime process %d: %w", tgid, err)
	}
	return nil
}

// AddCgroup puts a cgroup (v2 id) into the cgroup filter's set.
func (s *Session) AddCgroup(id uint64) error {
	if err := s.maps.CgroupFilter.Put(id, uint8(1)); err != nil {
		return fmt.Errorf("adding cgroup %d to the filter: %w", id, err)
	}
	return nil
}

// SetCgroupWatermark says that every cgroup id up to id is decided.
func (s *Session) SetCgroupWatermark(id uint64) error {
	if err := s.vars.CgroupWatermark.Set(id); err != nil {
		return fmt.Errorf("setting the cgroup watermark: %w", err)
	}
	return nil
}

// CapsetPending is a granted capset check still waiting for its call's
// outcome when the hooks were removed: its check, and the caller's old
// inheritable | permitted sets.
type CapsetPending struct {
	Event   CapEvent
	OldSets uint64
}

// PendingCapsets lists the granted capset checks the kernel could not decide
// yet (their threads made no check, exec or exit since): user space decides
// them from the threads' credentials now.
func (s *Session) PendingCapsets() ([]CapsetPending, error) {
	var (
		tid  uint32
		p    capsrecCapsetPending
		list []CapsetPending
	)
	it := s.maps.CapsetsPending.Iterate()
	for it.Next(&tid, &p) {
		list = append(list, CapsetPending{Event: p.Ev, OldSets: p.OldSets})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading the capset checks left undecided: %w", err)
	}
	return list, nil
}

// AggregateEntries reads the aggregation map: every key counted so far.
func (s *Session) AggregateEntries() ([]AggEntry, error) {
	var (
		key     AggKey
		perCPU  []capsrecAggValue
		entries []AggEntry
	)
	it := s.maps.Agg.Iterate()
	for it.Next(&key, &perCPU) {
		e := AggEntry{Key: key}
		for _, v := range perCPU {
			e.Count += v.Count
			e.LastKtime = max(e.LastKtime, v.LastKtime)
		}
		entries = append(entries, e)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading the aggregation map: %w", err)
	}
	return entries, nil
}

// Detach removes every hook, so no new record arrives, and keeps the maps for a last drain.
func (s *Session) Detach() error {
	var errs []error
	for _, l := range s.links {
		if err := l.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.links = nil
	return errors.Join(errs...)
}

// Close detaches every link and frees every program and map. Safe to call twice.
func (s *Session) Close() error {
	err := s.Detach()
	if s.coll != nil {
		err = errors.Join(err, s.maps.Close())
		s.coll.Close()
		s.coll = nil
	}
	return err
}

// errENOTSUPP is the kernel's own ENOTSUPP (524), which x/sys/unix lacks.
const errENOTSUPP = syscall.Errno(524)
