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
	"github.com/capsrec/capsrec/internal/nodepod"
	"github.com/capsrec/capsrec/internal/readyfile"
	"github.com/capsrec/capsrec/recorder"
)

// session is an attached recording: what record and profile --live share.
type session struct {
	ctx     context.Context
	cleanup []func()
	sess    *bpf.Session
	rec     *recorder.Recorder
	// attached is when the hooks were attached: a container the runtime says
	// started after it was seen from its start.
	attached time.Time
}

// stats are the kernel's counts, the checks user space could not join to
// their context counted as lost: they are never shown with another's.
func (s *session) stats() (bpf.Stats, error) {
	k, err := s.sess.Stats()
	k.Lost += s.rec.Unjoined
	return k, err
}

// recordsLost are the records a session lost, checks and process records: a
// profile of it is partial.
func recordsLost(k bpf.Stats) uint64 { return k.Lost + k.LostProcess }

func (s *session) close() {
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		s.cleanup[i]()
	}
}

// openSession handles signals and --duration, loads and attaches the
// programs, scans /proc, and writes --ready-file.
func openSession(c *cli.Context, cfg bpf.Config, method bpf.Method, duration time.Duration, tree runtimeTree) (_ *session, err error) {
	s := &session{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := readyfile.Prepare(c.String("ready-file")); err != nil {
		return nil, err
	}
	// Signals first: a Ctrl-C during start-up still detaches cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
	ropts := recorder.Options{Node: nodeName(c), Runtimes: runtimePaths}
	if s.sess, err = bpf.Open(cfg, method); err != nil {
		return nil, err
	}
	s.attached = time.Now()
	s.cleanup = append(s.cleanup, func() { s.sess.Close() })
	if symbols != nil {
		ropts.Symbols = symbols()
	}
	if ropts.Symbols != nil && s.sess.Method != bpf.MethodKprobe {
		ropts.Learner = callsite.NewLearner(ropts.Symbols)
	}
	if s.rec, err = recorder.New(s.sess, ropts); err != nil {
		return nil, err
	}
	if method == bpf.MethodAuto {
		fmt.Fprintf(c.App.ErrWriter, "capsrec: attached with %s\n", s.sess.Method)
	}
	return s, nil
}
