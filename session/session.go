// Package session owns a recording: it attaches the programs, marks the
// container runtime's process tree, scans /proc, dials the runtime, keeps the
// kernel's pod cgroups current and says when it records (Open); it runs every
// check through one fixed list of stages (Run); and it alone detaches and
// closes what it started. record and profile --live are sinks of it.
package session

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/capsrec/capsrec/bpf"
	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/enrich"
	"github.com/capsrec/capsrec/filter"
	"github.com/capsrec/capsrec/internal/callsite"
	"github.com/capsrec/capsrec/internal/interrupt"
	"github.com/capsrec/capsrec/internal/readyfile"
	"github.com/capsrec/capsrec/internal/runtimes"
	"github.com/capsrec/capsrec/kubectl/nodepod"
	"github.com/capsrec/capsrec/recorder"
)

// Stats are the kernel's counts of a session.
type Stats = bpf.Stats

// ErrStop, returned by a stage, ends Run without an error.
var ErrStop = recorder.ErrStop

// Options are what a session records and how.
type Options struct {
	Method core.Method
	// Filter is what the kernel drops; with pod filters (Pods) Open fills
	// the cgroup set the kernel keeps.
	Filter core.KernelFilter
	// HideClasses has bit n set to count checks of class n in the kernel, not send them.
	HideClasses uint8
	// RingBufferSize in bytes (a power of two multiple of the page size);
	// the kernel wakes the reader once about WakeupBytes wait.
	RingBufferSize, WakeupBytes uint32
	// Aggregate counts checks in the kernel and sends only each key's first (profile --live).
	Aggregate bool
	// KernelBTF replaces the running kernel's BTF (--btf).
	KernelBTF *btf.Spec
	// Duration ends the session; 0: Ctrl-C or SIGTERM does.
	Duration time.Duration
	// Pods are the pod filters: the runtime is dialled before the attach, and
	// the kernel's cgroup set follows the pods that match.
	Pods *filter.PodFilter
	// Execs delivers programs' execs to the Exec stage.
	Execs bool
	// Node names exec IDs; RuntimeEndpoint is the CRI socket ("" tries the
	// defaults); RuntimeBinaries are runtime executables besides those found.
	Node, RuntimeEndpoint string
	RuntimeBinaries       []string
	// ReadyFile is written once the session records.
	ReadyFile string
	// Stderr gets the session's warnings.
	Stderr io.Writer
}

// Session is an attached recording.
type Session struct {
	opts     Options
	ctx      context.Context
	cleanup  []func()
	hooks    *bpf.Session
	rec      *recorder.Recorder
	enricher *enrich.Enricher
	// attached is when the hooks were attached: a container the runtime says
	// started after it was seen from its start.
	attached time.Time
	// cgroupSet and watermark are the kernel's cgroup filter at the attach;
	// podsRunning: a pod the filters match ran then.
	cgroupSet   []uint64
	watermark   uint64
	podsRunning bool
}

// Open attaches and readies a session: on an error nothing it started is left.
func Open(opts Options) (_ *Session, err error) {
	if opts.Pods == nil {
		opts.Pods = &filter.PodFilter{} // every cgroup
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	s := &Session{opts: opts}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	// Where the runtime marks start; its pids also tell the pod filter which
	// cgroups are pod sandboxes.
	tree := FindRuntimeTree(opts.RuntimeEndpoint)
	cri, err := s.podsBeforeAttach(tree)
	if err != nil {
		return nil, err
	}
	s.closeLast(cri)
	if err := s.attach(tree); err != nil {
		return nil, err
	}
	if cri == nil {
		cri, _ = DialRuntime(opts.RuntimeEndpoint, opts.Stderr)
		s.closeLast(cri)
	}
	s.enricher = enrich.NewEnricher(cri, warnOnce(opts.Stderr))
	if opts.Pods.KernelMode() != core.CgroupsAll && cri != nil {
		// The pods that run now are in the kernel's set before the ready file; new ones join as they appear.
		pods := enrich.NewPodWatcher(s.enricher, opts.Pods, s.hooks.AddCgroup, s.hooks.SetCgroupWatermark)
		pods.Start(s.cgroupSet, s.watermark)
		pods.Add(s.enricher.Refresh(s.ctx))
		go pods.Run(s.ctx)
	}
	return s, s.announceReady()
}

// closeLast closes the runtime's client once everything else is closed, the
// context the pod watcher runs in first.
func (s *Session) closeLast(cri *enrich.CRI) {
	if cri != nil {
		s.cleanup = append([]func(){func() { cri.Close() }}, s.cleanup...)
	}
}

// podsBeforeAttach dials the runtime when pod filters need it, before
// anything loads (otherwise later, so that an attach error stands alone on
// stderr), and fills the kernel's cgroup set: the pods that run now listed,
// every cgroup decided up to the first container the runtime did not
// describe; what is made later is kept until it is decided.
func (s *Session) podsBeforeAttach(tree runtimes.Tree) (*enrich.CRI, error) {
	if !s.opts.Pods.Active() || s.opts.Pods.Host {
		return nil, nil
	}
	cri, err := DialRuntime(s.opts.RuntimeEndpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("pod filters need the container runtime: %w", err)
	}
	infos, err := cri.List(context.Background())
	if err != nil {
		cri.Close()
		return nil, fmt.Errorf("pod filters need the container runtime: %w", err)
	}
	s.cgroupSet = enrich.InitialSet(s.opts.Pods, infos)
	s.watermark = enrich.InitialWatermark(infos, tree.PIDs)
	s.podsRunning = len(s.cgroupSet) > 0
	return cri, nil
}

// attach handles signals and the duration, loads and attaches the programs,
// and scans /proc.
func (s *Session) attach(tree runtimes.Tree) error {
	opts := &s.opts
	if err := readyfile.Prepare(opts.ReadyFile); err != nil {
		return err
	}
	// Signals first: a Ctrl-C during start-up still detaches cleanly.
	ctx, stop := interrupt.Context()
	s.cleanup = append(s.cleanup, stop)
	// A closed stdout (| head) becomes EPIPE on write instead of killing us mid-attach.
	signal.Ignore(syscall.SIGPIPE)
	if nodepod.InPod() {
		var err error
		if ctx, err = nodepod.AwaitStart(ctx, os.Stdin); err != nil {
			return err
		}
	}
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
		s.cleanup = append(s.cleanup, cancel)
	}
	s.ctx = ctx
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("lifting RLIMIT_MEMLOCK for BPF maps: %w", err)
	}
	cfg := bpf.Config{SelfTgid: uint32(os.Getpid()), KernelFilter: opts.Filter, TrackProcesses: true,
		RingBufferSize: opts.RingBufferSize, WakeupBytes: opts.WakeupBytes, HideClasses: opts.HideClasses,
		Aggregate: opts.Aggregate, KernelBTF: opts.KernelBTF, CgroupSet: s.cgroupSet, CgroupWatermark: s.watermark}
	runtimePaths, symbols, err := classifyChecks(opts, &cfg, tree)
	if err != nil {
		return err
	}
	ropts := recorder.Options{Node: opts.Node, Runtimes: runtimePaths, HideClasses: cfg.HideClasses, Detach: s.Detach}
	if s.hooks, err = bpf.Open(cfg, opts.Method); err != nil {
		return err
	}
	s.attached = time.Now()
	s.cleanup = append(s.cleanup, func() { s.hooks.Close() })
	if symbols != nil {
		ropts.Symbols = symbols()
	}
	if ropts.Symbols != nil && s.hooks.Method != core.MethodKprobe {
		ropts.Learner = callsite.NewLearner(ropts.Symbols)
	}
	if s.rec, err = recorder.New(s.hooks, ropts); err != nil {
		return err
	}
	if opts.Execs {
		s.rec.DeliverExecs() // containers that start, or need nothing, are seen
	}
	if opts.Method == core.MethodAuto {
		fmt.Fprintf(opts.Stderr, "capsrec: attached with %s\n", s.hooks.Method)
	}
	if err := s.hooks.ListenHookErr; err != nil { // the profile then cannot see a low port bound with no check
		fmt.Fprintf(opts.Stderr, "capsrec: warning: low ports bound with no check are not seen: %v\n", err)
	}
	return nil
}

// announceReady settles the process, then says the session records: the
// ready file, a node pod's ready line, and whether any pod matches yet.
func (s *Session) announceReady() error {
	// Before the ready file: checks made while it runs would wait in the ring.
	settleForRecording()
	if err := readyfile.Write(s.opts.ReadyFile); err != nil {
		return err
	}
	if nodepod.InPod() {
		fmt.Fprintln(s.opts.Stderr, nodepod.ReadyLine)
	}
	if s.opts.Pods.Active() && !s.opts.Pods.Host && !s.podsRunning {
		fmt.Fprintln(s.opts.Stderr, "capsrec: no running pod matches the pod filters yet: a pod that starts and matches is recorded from its start")
	}
	return nil
}

// settleForRecording readies the process for the read loop, once the hooks are on.
//   - Loading left garbage (the kernel's BTF, verifier logs): it goes back to the
//     system now, not when the scavenger gets to it, so a standing recorder is small.
//   - One goroutine reads, decodes and formats. With more than one P, the Go
//     runtime's spare threads (idle Ps looking for work, the output goroutine's
//     wake-ups, GC workers) run on the CPUs of the very workload being
//     recorded: with two CPUs that slowed its checks by a fifth and lost a
//     tenth of them at full speed. One P loses none. GOMAXPROCS set by the
//     user wins.
func settleForRecording() {
	debug.FreeOSMemory()
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

// Context ends when the session does.
func (s *Session) Context() context.Context { return s.ctx }

// Until ends the session when the context derived from its own ends too (a
// command's exit).
func (s *Session) Until(derive func(context.Context) context.Context) { s.ctx = derive(s.ctx) }

// Follow has the kernel record pid's tree (Filter.FollowPids).
func (s *Session) Follow(pid uint32) error { return s.hooks.Follow(pid) }

// Attached is when the hooks were attached.
func (s *Session) Attached() time.Time { return s.attached }

// Wall converts the kernel's boot-time ns to wall time.
func (s *Session) Wall(ktime uint64) time.Time { return s.rec.Wall(ktime) }

// Aggregates are the kernel's counts so far (Options.Aggregate).
func (s *Session) Aggregates() ([]core.Aggregate, error) { return recorder.Aggregates(s.hooks) }

// Stats are the kernel's counts, the checks user space could not join to
// their context counted as lost: they are never shown with another's.
func (s *Session) Stats() (Stats, error) {
	k, err := s.hooks.Stats()
	k.Lost += s.rec.Unjoined
	k.Hidden[core.ClassProbe] += s.rec.HiddenCapsets // decided in user space at the end
	return k, err
}

// RecordsLost are the records a session lost, checks and process records: a
// profile of it is partial.
func RecordsLost(k Stats) uint64 { return k.Lost + k.LostProcess }

// Evicted counts the processes forgotten early because the cache was full.
func (s *Session) Evicted() uint64 { return s.rec.Procs.Evicted }

// CapsetUndecided counts granted capset checks counted as needs, their outcome unread.
func (s *Session) CapsetUndecided() uint64 { return s.rec.CapsetUndecided }

// Detach removes the hooks: nothing more comes from the kernel; the maps stay
// for a last drain. The session is the one owner of its hooks: Run's end
// detaches through it, and a second call does nothing.
func (s *Session) Detach() error {
	if err := s.hooks.Detach(); err != nil {
		return fmt.Errorf("detaching: %w", err)
	}
	return nil
}

// WalkMismatch names the first call sites the fast walk and the kernel's
// unwinder disagreed on; empty when they cannot be read.
func (s *Session) WalkMismatch() string {
	fast, slow, err := s.hooks.WalkMismatch()
	if err != nil {
		return ""
	}
	return fmt.Sprintf("the fast walk found %s, the unwinder %s", s.rec.CallSiteName(fast), s.rec.CallSiteName(slow))
}

// Close ends what Open started, last first.
func (s *Session) Close() {
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		s.cleanup[i]()
	}
	s.cleanup = nil
}
