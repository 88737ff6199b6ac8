package bpf

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Method is how capsrec hooks the kernel's capability checks.
type Method string

const (
	MethodAuto       Method = "auto"
	MethodTracepoint Method = "tracepoint"
	MethodFexit      Method = "fexit"
	MethodKprobe     Method = "kprobe"
)

// Methods lists the concrete methods in the order auto tries them.
var Methods = []Method{MethodTracepoint, MethodFexit, MethodKprobe}

// ParseMethod accepts auto, tracepoint, fexit or kprobe.
func ParseMethod(s string) (Method, error) {
	switch m := Method(strings.ToLower(s)); m {
	case MethodAuto, MethodTracepoint, MethodFexit, MethodKprobe:
		return m, nil
	}
	return "", fmt.Errorf("unknown attach method %q (want auto, tracepoint, fexit or kprobe)", s)
}

// Record and map layout constants shared with capsrec.h.
const (
	EventCap  = 1
	EventExec = 2
	EventFork = 3
	EventExit = 4
	// EventLearn carries a stack sample the call-site walk learns frame sizes from.
	EventLearn = 5
	// EventCtx carries a thread's context: checks made under it refer to it by seq.
	EventCtx = 6

	NSCount = 10
)

// Go names for the records of capsrec.h.
type (
	CapEvent    = capsrecCapEvent
	CtxEvent    = capsrecCtxEvent
	ExecEvent   = capsrecExecEvent
	ForkEvent   = capsrecForkEvent
	ExitEvent   = capsrecExitEvent
	EventHeader = capsrecEventHeader
)

// Verdict filters applied in the kernel.
const (
	VerdictAll     = 0
	VerdictGranted = 1
	VerdictDenied  = 2
)

// Config is what the programs are specialised with before load.
type Config struct {
	SelfTgid uint32
	// CapMask has bit n set to keep CAP n; zero means every capability.
	CapMask uint64
	Verdict uint8
	Pids    []uint32
	Comm    string
	// WakeupBytes batches reader wake-ups: the kernel wakes the reader about once
	// this much data waits (each CPU once it sent its share), and the reader
	// polls for the rest. 0 wakes per record.
	WakeupBytes uint32
	// RingBufferSize in bytes, a power of two multiple of the page size; 0 keeps 8 MiB.
	RingBufferSize uint32
	// TrackProcesses attaches the exec/fork/exit programs that feed the process cache.
	TrackProcesses bool
	// KernelBTF replaces /sys/kernel/btf/vmlinux (--btf) for CO-RE relocations.
	KernelBTF *btf.Spec
	// Aggregate counts checks in the kernel per AggKey and sends only each key's first.
	Aggregate bool
	// Cgroups turns on the cgroup filter: keep the listed cgroups (and those
	// made after CgroupWatermark), or drop them.
	Cgroups CgroupFilter
	// CgroupSet lists cgroups before the programs attach.
	CgroupSet []uint64
	// CgroupWatermark: with CgroupsOnly, every cgroup id up to it is decided
	// (listed or dropped); newer ones are kept until user space decides.
	CgroupWatermark uint64
	// Sites gives the call-site walk's table once the programs are loaded and
	// before they attach (so that reading it overlaps the verifier); nil: the
	// programs do not read the stack and every check's call site is unknown.
	Sites func() SiteTable
	// HideClasses has bit n set to count checks of class n in the kernel, not send them.
	HideClasses uint8
	// RuntimeExes are container runtime executables (runc, crun, the shims), by
	// identity; the value is 1 + the runtime's index. Processes of the runtime
	// server's tree that exec them are marked.
	RuntimeExes map[ExeKey]uint8
	// RuntimeSizes are their sizes, by 1 + index: a runtime's re-exec of an
	// unlinked copy of itself is known by the size.
	RuntimeSizes map[uint32]uint64
	// RuntimeTgids are the runtime server's tree when capsrec starts, with their
	// marks (runtimes.Mark*): the server, its shims, runtimes at work.
	RuntimeTgids map[uint32]uint8
	// VerifyEvery checks one fast call-site walk in this many against the
	// kernel's unwinder; 0 keeps 1024.
	VerifyEvery uint32
}

// Check classes, capsrec.h's enum check_class.
const (
	ClassNeed          = 0
	ClassProbe         = 1
	ClassRuntime       = 2
	ClassOverrideCreds = 3
	ClassCount         = 4
)

// SiteTable is the call-site walk's table: function ranges, sorted, at most
// MaxSites, and the core kernel's text. Empty ranges leave call sites unknown.
type SiteTable struct {
	Ranges             []SiteRange
	TextStart, TextEnd uint64
}

// MaxSites is capsrec.h's MAX_SITES.
const MaxSites = 128

// SiteRange and ExeKey are capsrec.h's struct site_range and struct exe_key.
type (
	SiteRange  = capsrecSiteRange
	ExeKey     = capsrecExeKey
	LearnEvent = capsrecLearnEvent
)

// CgroupFilter is the kernel's cgroup filter mode; the set is filled at run time (AddCgroup).
type CgroupFilter uint8

const (
	CgroupsAll     CgroupFilter = iota
	CgroupsOnly                 // only checks in the listed cgroups (pod filters)
	CgroupsExclude              // no checks in the listed cgroups (--host: drop containers)
)

// Stats are the kernel-side counters, summed over CPUs.
type Stats struct {
	Seen, Filtered, Lost, LostProcess, MissedReturns uint64
	// Aggregated checks were only counted (profile --live); AggFull were sent whole
	// because the aggregation map was full.
	Aggregated, AggFull uint64
	// Hidden counts checks of each class counted in the kernel, not sent.
	Hidden [ClassCount]uint64
	// UnwindFailed checks had no readable kernel stack: their call site is unknown.
	UnwindFailed uint64
	// FastWalks found the call site on the learned frames, SlowWalks through the
	// kernel's unwinder; WalkVerified fast walks were checked against the unwinder,
	// and WalkMismatch of them disagreed (the fast walk then turned itself off).
	FastWalks, SlowWalks, WalkVerified, WalkMismatch uint64
	// Contexts are the ctx_events sent: a thread's context changed, or was not known.
	Contexts uint64
}

// AggKey is the kernel's aggregation key (capsrec.h's struct agg_key).
type AggKey = capsrecAggKey

// AggEntry is one key's count, summed over CPUs.
type AggEntry struct {
	Key       AggKey
	Count     uint64
	LastKtime uint64
}

// Session is a loaded and attached set of programs. Close detaches and frees all of it.
type Session struct {
	Method Method
	coll   *ebpf.Collection
	links  []link.Link
	// SyscallFromPtRegs tells whether bpf_task_pt_regs was used (5.15+) or the stack layout.
	SyscallFromPtRegs bool
	// OptsKind is how cap_capable's 4th argument reads on the kernel the programs were loaded for.
	OptsKind OptsKind
}

var capProgram = map[Method][]string{
	MethodTracepoint: {"tp_cap_capable"},
	MethodFexit:      {"fexit_cap_capable", "fexit_cap_capable_legacy"},
	MethodKprobe:     {"kprobe_cap_capable", "kretprobe_cap_capable"},
}

var processTracepoints = []string{"sched_process_exec", "sched_process_fork", "sched_process_exit"}

// processPrograms are the exec/fork/exit programs: tp_btf ones need the
// kernel's own BTF to attach, raw tracepoints do not (--btf).
func processPrograms(externalBTF bool) []string {
	if !externalBTF {
		return processTracepoints
	}
	raw := make([]string, len(processTracepoints))
	for i, tp := range processTracepoints {
		raw[i] = "raw_" + tp
	}
	return raw
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
	for _, m := range Methods {
		s, err := open(cfg, kernel, m)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no attach method works on this kernel: %w", errors.Join(errs...))
}

func kernelSpec(cfg Config) (*btf.Spec, error) {
	if cfg.KernelBTF != nil {
		return cfg.KernelBTF, nil
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("kernel BTF not found (%w): capsrec needs /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF) or a BTF file given with --btf", err)
	}
	return spec, nil
}

// Check tells whether method can be used here by loading and attaching it, then detaching.
func Check(cfg Config, method Method) error {
	s, err := Open(cfg, method)
	if err != nil {
		return err
	}
	return s.Close()
}

// UnavailableError says why a method cannot be used here.
type UnavailableError struct {
	Method Method
	Reason string
}

func (e *UnavailableError) Error() string { return string(e.Method) + ": " + e.Reason }

func unavailable(m Method, format string, args ...any) error {
	return &UnavailableError{Method: m, Reason: fmt.Sprintf(format, args...)}
}

func open(cfg Config, kernel *btf.Spec, method Method) (_ *Session, err error) {
	if err := precheck(kernel, method, cfg.KernelBTF != nil); err != nil {
		return nil, err
	}
	spec, err := loadCapsrec()
	if err != nil {
		return nil, fmt.Errorf("reading the embedded BPF object: %w", err)
	}
	keep := map[string]bool{}
	for _, p := range capProgram[method] {
		keep[p] = true
	}
	if cfg.TrackProcesses {
		for _, p := range processPrograms(cfg.KernelBTF != nil) {
			keep[p] = true
		}
	}
	// fexit reads the task through BTF where bpf_get_current_task_btf (5.11) exists.
	taskBTF := hasHelper(kernel, "BPF_FUNC_get_current_task_btf")
	if taskBTF {
		delete(keep, "fexit_cap_capable_legacy")
	} else {
		delete(keep, "fexit_cap_capable")
	}
	for name := range spec.Programs {
		if !keep[name] {
			delete(spec.Programs, name)
		}
	}
	if method != MethodKprobe {
		delete(spec.Maps, "kprobe_args")
	}
	ptRegs := hasHelper(kernel, "BPF_FUNC_task_pt_regs")
	if !cfg.Aggregate {
		spec.Maps["agg"].MaxEntries = 1 // referenced by the code the verifier prunes, never used
	}
	opts := CapCapableOpts(kernel)
	if err := configure(spec, cfg, ptRegs, opts != OptsAuditInt); err != nil {
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
	if err := fillTables(coll, cfg); err != nil {
		return nil, err
	}
	if len(cfg.Pids) > 0 {
		one := uint8(1)
		for _, pid := range cfg.Pids {
			if err := coll.Maps["pid_filter"].Put(pid, one); err != nil {
				return nil, fmt.Errorf("filling the pid filter: %w", err)
			}
		}
	}
	if err := s.attach(method, cfg.TrackProcesses, cfg.KernelBTF != nil); err != nil {
		return nil, err
	}
	return s, nil
}

// precheck turns the common reasons a method cannot work into one clear line before
// the verifier or the attach would give a murkier one.
func precheck(kernel *btf.Spec, method Method, externalBTF bool) error {
	if externalBTF && method != MethodKprobe {
		return unavailable(method, "needs the kernel's own BTF (/sys/kernel/btf/vmlinux) to attach; with --btf only kprobe works")
	}
	switch method {
	case MethodTracepoint:
		var td *btf.Typedef
		if err := kernel.TypeByName("btf_trace_cap_capable", &td); err != nil {
			return unavailable(method, "this kernel has no tracepoint capability:cap_capable (it appeared in 6.13); use --attach fexit or kprobe")
		}
	case MethodFexit, MethodKprobe:
		var fn *btf.Func
		if err := kernel.TypeByName("cap_capable", &fn); err != nil {
			return unavailable(method, "the kernel's BTF has no function cap_capable")
		}
	}
	// Every kernel with kprobe events (4.17+) has the kprobe PMU: without it the
	// kernel has no kprobes, whatever the tracefs fallback would say.
	if method == MethodKprobe {
		if _, err := os.Stat("/sys/bus/event_source/devices/kprobe/type"); err != nil {
			return unavailable(method, "this kernel has no kprobes (no kprobe PMU at /sys/bus/event_source/devices/kprobe: CONFIG_KPROBES or CONFIG_KPROBE_EVENTS is off)")
		}
	}
	return nil
}

func hasHelper(kernel *btf.Spec, name string) bool {
	var e *btf.Enum
	if err := kernel.TypeByName("bpf_func_id", &e); err != nil {
		return false
	}
	for _, v := range e.Values {
		if v.Name == name {
			return true
		}
	}
	return false
}

func configure(spec *ebpf.CollectionSpec, cfg Config, ptRegs, optsBitmask bool) error {
	capMask := cfg.CapMask
	if capMask == 0 {
		capMask = ^uint64(0)
	}
	var comm [16]byte
	if len(cfg.Comm) > 15 {
		return fmt.Errorf("--comm %q is longer than the kernel's 15-character comm", cfg.Comm)
	}
	copy(comm[:], cfg.Comm)
	vars := map[string]any{
		"self_tgid":        cfg.SelfTgid,
		"cap_mask":         capMask,
		"verdict_filter":   cfg.Verdict,
		"filter_pids":      boolByte(len(cfg.Pids) > 0),
		"filter_comm":      boolByte(cfg.Comm != ""),
		"comm_filter":      comm,
		"has_task_pt_regs": boolByte(ptRegs),
		"track_processes":  boolByte(cfg.TrackProcesses),
		"wakeup_bytes":     perCPUWakeup(cfg.WakeupBytes),
		"aggregate":        boolByte(cfg.Aggregate),
		"filter_cgroups":   uint8(cfg.Cgroups),
		"opts_bitmask":     boolByte(optsBitmask),
		"hide_classes":     cfg.HideClasses,
		"classify_sites":   boolByte(cfg.Sites != nil),
		"verify_every":     cmp.Or(cfg.VerifyEvery, 1024),
	}
	for name, v := range vars {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("BPF object lacks variable %s", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("setting %s: %w", name, err)
		}
	}
	if cfg.RingBufferSize != 0 {
		spec.Maps["events"].MaxEntries = cfg.RingBufferSize
	}
	return nil
}

// perCPUWakeup is each CPU's share of a wake-up threshold: the program counts
// what it sent per CPU, without asking the ring. At least a page (so that a
// node with many CPUs still batches) unless the threshold itself is less.
func perCPUWakeup(total uint32) uint32 {
	cpus, err := ebpf.PossibleCPU()
	if err != nil || cpus < 1 {
		cpus = 1
	}
	return min(max(total/uint32(cpus), 4096), total)
}

// fillTables writes the call-site walk's state and table, and the runtime tables.
func fillTables(coll *ebpf.Collection, cfg Config) error {
	ws := capsrecWalkState{Anchor: -1} // learned from the first samples
	if err := coll.Maps["walk_states"].Put(uint32(0), ws); err != nil {
		return fmt.Errorf("initializing the call-site walk: %w", err)
	}
	if cfg.Sites != nil {
		if err := fillSites(coll, cfg.Sites()); err != nil {
			return err
		}
	}
	for k, v := range cfg.RuntimeExes {
		if err := coll.Maps["runtime_exes"].Put(k, v); err != nil {
			return fmt.Errorf("filling the runtime executables: %w", err)
		}
	}
	for _, id := range cfg.CgroupSet {
		if err := coll.Maps["cgroup_filter"].Put(id, uint8(1)); err != nil {
			return fmt.Errorf("filling the cgroup filter: %w", err)
		}
	}
	if err := coll.Variables["cgroup_watermark"].Set(cfg.CgroupWatermark); err != nil {
		return fmt.Errorf("setting the cgroup watermark: %w", err)
	}
	for idx, size := range cfg.RuntimeSizes {
		if err := coll.Maps["runtime_sizes"].Put(idx, size); err != nil {
			return fmt.Errorf("filling the runtime executables' sizes: %w", err)
		}
	}
	for tgid, v := range cfg.RuntimeTgids {
		if err := coll.Maps["runtime_tasks"].Put(tgid, v); err != nil {
			return fmt.Errorf("marking runtime processes: %w", err)
		}
	}
	return nil
}

// fillSites writes the call-site ranges, padded with ranges that start past
// every address so that the binary search reads no garbage, then their count
// and the text bounds.
func fillSites(coll *ebpf.Collection, st SiteTable) error {
	if len(st.Ranges) > MaxSites {
		return fmt.Errorf("%d call-site ranges, more than %d", len(st.Ranges), MaxSites)
	}
	for i := range uint32(MaxSites) {
		r := SiteRange{Start: ^uint64(0), End: ^uint64(0)}
		if int(i) < len(st.Ranges) {
			r = st.Ranges[i]
		}
		if err := coll.Maps["site_ranges"].Put(i, r); err != nil {
			return fmt.Errorf("filling the call-site table: %w", err)
		}
	}
	for name, v := range map[string]any{"text_start": st.TextStart, "text_end": st.TextEnd, "n_sites": uint32(len(st.Ranges))} {
		if err := coll.Variables[name].Set(v); err != nil {
			return fmt.Errorf("setting %s: %w", name, err)
		}
	}
	return nil
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func (s *Session) attach(method Method, trackProcesses, externalBTF bool) error {
	add := func(l link.Link, err error, what string) error {
		if method == MethodKprobe && errors.Is(err, os.ErrNotExist) {
			return unavailable(method, "this kernel has no kprobes (CONFIG_KPROBES is off: no kprobe PMU, no tracefs kprobe_events)")
		}
		if err != nil {
			return unavailable(method, "attaching %s: %v", what, err)
		}
		s.links = append(s.links, l)
		return nil
	}
	tracing := func(name string) error {
		l, err := link.AttachTracing(link.TracingOptions{Program: s.coll.Programs[name]})
		return add(l, err, name)
	}
	// Process tracking first: a check must never arrive before the exec that explains it.
	if trackProcesses && !externalBTF {
		for _, p := range processTracepoints {
			if err := tracing(p); err != nil {
				return err
			}
		}
	}
	if trackProcesses && externalBTF {
		for i, p := range processPrograms(true) {
			l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: processTracepoints[i], Program: s.coll.Programs[p]})
			if err := add(l, err, p); err != nil {
				return err
			}
		}
	}
	switch method {
	case MethodTracepoint:
		return tracing("tp_cap_capable")
	case MethodFexit:
		for _, p := range capProgram[MethodFexit] {
			if s.coll.Programs[p] != nil {
				return tracing(p)
			}
		}
	case MethodKprobe:
		l, err := link.Kprobe("cap_capable", s.coll.Programs["kprobe_cap_capable"], nil)
		if err := add(l, err, "kprobe cap_capable"); err != nil {
			return err
		}
		l, err = link.Kretprobe("cap_capable", s.coll.Programs["kretprobe_cap_capable"], &link.KprobeOptions{RetprobeMaxActive: 4096})
		if errors.Is(err, link.ErrNotSupported) || errors.Is(err, os.ErrNotExist) {
			// maxactive needs the tracefs kprobe interface; the PMU one uses the kernel default.
			l, err = link.Kretprobe("cap_capable", s.coll.Programs["kretprobe_cap_capable"], nil)
		}
		return add(l, err, "kretprobe cap_capable")
	}
	return fmt.Errorf("unknown attach method %q", method)
}

// Events is the ring buffer the programs write to.
func (s *Session) Events() *ebpf.Map { return s.coll.Maps["events"] }

// Stats sums the kernel's per-CPU counters.
func (s *Session) Stats() (Stats, error) {
	var st Stats
	var perCPU []capsrecCheckStats
	if err := s.coll.Maps["stats"].Lookup(uint32(0), &perCPU); err != nil {
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
	}
	return st, nil
}

// AddFrame teaches the fast call-site walk one pass-through frame.
func (s *Session) AddFrame(ret uint64, delta int32, kind uint32) error {
	if err := s.coll.Maps["frames"].Put(ret, capsrecFrameInfo{Delta: delta, Kind: kind}); err != nil {
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
	if err := s.coll.Maps["walk_states"].Put(uint32(0), ws); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (s *Session) walkState() (capsrecWalkState, error) {
	var ws capsrecWalkState
	if err := s.coll.Maps["walk_states"].Lookup(uint32(0), &ws); err != nil {
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
	if err := s.coll.Maps["ctx_sent"].Delete(tid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("forgetting the context of thread %d: %w", tid, err)
	}
	return nil
}

// AddCgroup puts a cgroup (v2 id) into the cgroup filter's set.
func (s *Session) AddCgroup(id uint64) error {
	if err := s.coll.Maps["cgroup_filter"].Put(id, uint8(1)); err != nil {
		return fmt.Errorf("adding cgroup %d to the filter: %w", id, err)
	}
	return nil
}

// SetCgroupWatermark says that every cgroup id up to id is decided.
func (s *Session) SetCgroupWatermark(id uint64) error {
	if err := s.coll.Variables["cgroup_watermark"].Set(id); err != nil {
		return fmt.Errorf("setting the cgroup watermark: %w", err)
	}
	return nil
}

// AggregateEntries reads the aggregation map: every key counted so far.
func (s *Session) AggregateEntries() ([]AggEntry, error) {
	var (
		key     AggKey
		perCPU  []capsrecAggValue
		entries []AggEntry
	)
	it := s.coll.Maps["agg"].Iterate()
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
		s.coll.Close()
		s.coll = nil
	}
	return err
}

// OptsKind tells how to read cap_capable's 4th argument on this kernel, from
// its BTF rather than the version number, since distributions backport.
type OptsKind int

const (
	OptsUnknown OptsKind = iota
	// OptsBitmask: unsigned int opts with CAP_OPT_NOAUDIT and CAP_OPT_INSETID (5.1+).
	OptsBitmask
	// OptsAuditInt: int audit, SECURITY_CAP_AUDIT (1) or SECURITY_CAP_NOAUDIT (0).
	OptsAuditInt
)

// CapCapableOpts reads the name of cap_capable's 4th parameter from the kernel's BTF.
func CapCapableOpts(kernel *btf.Spec) OptsKind {
	var fn *btf.Func
	if kernel == nil || kernel.TypeByName("cap_capable", &fn) != nil {
		return OptsUnknown
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok || len(proto.Params) < 4 {
		return OptsUnknown
	}
	switch proto.Params[3].Name {
	case "opts":
		return OptsBitmask
	case "audit":
		return OptsAuditInt
	}
	return OptsUnknown
}

// OpenNoop attaches a program that does nothing to the capability tracepoint:
// the floor of what any hook there costs, for benchmarks.
func OpenNoop() (*Session, error) { return openFloor("noop_cap_capable") }

// OpenRecordFloor attaches a program that only reserves, stamps and submits one
// check record per check, without waking the reader: the floor of any design
// that sends a record per check, for benchmarks. Drain s.Events().
func OpenRecordFloor() (*Session, error) { return openFloor("floor_cap_capable") }

func openFloor(prog string) (*Session, error) {
	spec, err := loadCapsrec()
	if err != nil {
		return nil, fmt.Errorf("reading the embedded BPF object: %w", err)
	}
	for name := range spec.Programs {
		if name != prog {
			delete(spec.Programs, name)
		}
	}
	if err := spec.Variables["self_tgid"].Set(uint32(os.Getpid())); err != nil {
		return nil, fmt.Errorf("setting self_tgid: %w", err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", prog, err)
	}
	s := &Session{Method: MethodTracepoint, coll: coll}
	l, err := link.AttachTracing(link.TracingOptions{Program: coll.Programs[prog]})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("attaching %s: %w", prog, err)
	}
	s.links = append(s.links, l)
	return s, nil
}

// KernelSpec is the BTF the programs are relocated against: the --btf file or the running kernel's.
func KernelSpec(cfg Config) (*btf.Spec, error) { return kernelSpec(cfg) }
