package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"github.com/urfave/cli/v2"

	"github.com/capsrec/capsrec/bpf"
	"github.com/capsrec/capsrec/internal/callsite"
	"github.com/capsrec/capsrec/internal/readyfile"
	"github.com/capsrec/capsrec/internal/runtimes"
	"github.com/capsrec/capsrec/kubectl/nodepod"
	"github.com/capsrec/capsrec/recorder"
)

// recording is an attached session: what record and profile --live share.
// It owns its teardown (detach, close) and its counts (stats).
type recording struct {
	ctx      context.Context
	cleanup  []func()
	hooks    *bpf.Session
	recorder *recorder.Recorder
	// attached is when the hooks were attached: a container the runtime says
	// started after it was seen from its start.
	attached time.Time
}

// stats are the kernel's counts, the checks user space could not join to
// their context counted as lost: they are never shown with another's.
func (s *recording) stats() (bpf.Stats, error) {
	k, err := s.hooks.Stats()
	k.Lost += s.recorder.Unjoined
	k.Hidden[bpf.ClassProbe] += s.recorder.HiddenCapsets // decided in user space at the end
	return k, err
}

// recordsLost are the records a session lost, checks and process records: a
// profile of it is partial.
func recordsLost(k bpf.Stats) uint64 { return k.Lost + k.LostProcess }

// detach removes the hooks: nothing more comes from the kernel; the maps stay
// for a last drain.
func (s *recording) detach() error {
	if err := s.hooks.Detach(); err != nil {
		return fmt.Errorf("detaching: %w", err)
	}
	return nil
}

// walkMismatch names the first call sites the fast walk and the kernel's
// unwinder disagreed on; empty when they cannot be read.
func (s *recording) walkMismatch() string {
	fast, slow, err := s.hooks.WalkMismatch()
	if err != nil {
		return ""
	}
	return fmt.Sprintf("the fast walk found %s, the unwinder %s", s.recorder.CallSiteName(fast), s.recorder.CallSiteName(slow))
}

func (s *recording) close() {
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		s.cleanup[i]()
	}
}

// startRecording handles signals and --duration, loads and attaches the
// programs, scans /proc, and writes --ready-file.
func startRecording(c *cli.Context, cfg bpf.Config, method bpf.Method, duration time.Duration, tree runtimes.Tree) (_ *recording, err error) {
	s := &recording{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := readyfile.Prepare(c.String("ready-file")); err != nil {
		return nil, err
	}
	// Signals first: a Ctrl-C during start-up still detaches cleanly.
	ctx, stop := Interruptible()
	s.cleanup = append(s.cleanup, stop)
	// A closed stdout (| head) becomes EPIPE on write instead of killing us mid-attach.
	signal.Ignore(syscall.SIGPIPE)
	if nodepod.InPod() {
		var err error
		if ctx, err = nodepod.AwaitStart(ctx, os.Stdin); err != nil {
			return nil, err
		}
	}
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		s.cleanup = append(s.cleanup, cancel)
	}
	s.ctx = ctx
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("lifting RLIMIT_MEMLOCK for BPF maps: %w", err)
	}
	runtimePaths, symbols, err := classifyChecks(c, &cfg, tree)
	if err != nil {
		return nil, err
	}
	ropts := recorder.Options{Node: nodeName(c), Runtimes: runtimePaths, HideClasses: cfg.HideClasses}
	if s.hooks, err = bpf.Open(cfg, method); err != nil {
		return nil, err
	}
	s.attached = time.Now()
	s.cleanup = append(s.cleanup, func() { s.hooks.Close() })
	if symbols != nil {
		ropts.Symbols = symbols()
	}
	if ropts.Symbols != nil && s.hooks.Method != bpf.MethodKprobe {
		ropts.Learner = callsite.NewLearner(ropts.Symbols)
	}
	if s.recorder, err = recorder.New(s.hooks, ropts); err != nil {
		return nil, err
	}
	if method == bpf.MethodAuto {
		fmt.Fprintf(c.App.ErrWriter, "capsrec: attached with %s\n", s.hooks.Method)
	}
	if err := s.hooks.ListenHookErr; err != nil { // the profile then cannot see a low port bound with no check
		fmt.Fprintf(c.App.ErrWriter, "capsrec: warning: low ports bound with no check are not seen: %v\n", err)
	}
	return s, nil
}

// Interruptible is a context that Ctrl-C or SIGTERM ends: every command stops
// cleanly on either.
func Interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
