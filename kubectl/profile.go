package kubectl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"

	capsrec "github.com/capsrec/capsrec/cli"
	"github.com/capsrec/capsrec/internal/english"
	"github.com/capsrec/capsrec/internal/interrupt"
	"github.com/capsrec/capsrec/internal/textsafe"
	"github.com/capsrec/capsrec/kubectl/cluster"
	"github.com/capsrec/capsrec/profile"
)

func kubectlProfileCommand() *cli.Command {
	flags := append(append([]cli.Flag{}, kubeFlags...), nodePodFlags...)
	return &cli.Command{
		Name:  "profile",
		Usage: "record a workload on every node that runs its pods, and print the capabilities it needs",
		UsageText: `kubectl capsrec profile (deploy/NAME | ds/NAME | sts/NAME | rs/NAME | -l SELECTOR) --duration D [flags]

   kubectl capsrec profile deploy/web -n shop --restart --duration 1m -o patch   # from its pods' start
   kubectl capsrec profile -l job-name=backup --wait --duration 5m             # then kubectl apply it
   kubectl capsrec profile ds/agent --duration 5m -o yaml                      # its running pods only
   kubectl capsrec profile -l app=web --duration 1m --check web.yaml           # exit 1 when they differ
   kubectl capsrec profile deploy/web --restart --duration 1m --verify -o patch  # apply it, roll back what breaks
   kubectl capsrec profile deploy/web --verify --patch-file web-patch.yaml     # verify a patch you have`,
		Flags: append(append(flags,
			&cli.StringFlag{Name: "selector", Aliases: []string{"l"}, Usage: "the workload's pods by label selector, instead of KIND/NAME"},
			&cli.DurationFlag{Name: "duration", Usage: "how long to record; 0 records until Ctrl-C"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: profile.ClusterFormats.Usage()},
			&cli.BoolFlag{Name: "restart", Usage: "record from the start of new pods: attach on every node they may land on, restart the workload as kubectl rollout restart does, wait for the rollout, then record --duration"},
			&cli.BoolFlag{Name: "wait", Usage: "record pods that start during --duration (a Pod, Job or CronJob applied after the recorders are ready), on every node they may land on"},
			&cli.IntFlag{Name: "max-nodes", Value: 20, Usage: "with --restart or --wait: record on at most this many nodes"},
			&cli.DurationFlag{Name: "rollout-timeout", Value: 5 * time.Minute, Usage: "with --restart: how long the rollout may take"},
			&cli.StringFlag{Name: "color", Value: "auto", Usage: "auto, always or never"},
			capsrec.WideFlag,
			capsrec.AlternativesFlag,
			capsrec.UserNSFlag,
			capsrec.CheckFlag,
			capsrec.AllowPartialFlag,
			&cli.StringFlag{Name: "save", Usage: "also write the recorded checks (JSON lines) to this file, for capsrec profile"},
		), verifyFlags...),
		Action: kubectlProfile,
	}
}

// nodeRun is one node's recorder in a profile.
type nodeRun struct {
	node   string
	pods   []string
	image  string // to copy capsrec into
	prof   *profile.Profile
	checks atomic.Int64
	ready  atomic.Bool
	ended  atomic.Bool
	err    error
	stderr strings.Builder // the recorder's stderr, for the report
	// spool, when set, keeps the node's JSON instead of profiling it as it
	// comes: the profile is read from it once the pods to profile are known.
	spool *os.File
}

func kubectlProfile(c *cli.Context) error {
	format := c.String("output")
	if err := profile.ClusterFormats.Check(format); err != nil {
		return err
	}
	style, err := capsrec.StyleFor(c, os.Stdout)
	if err != nil {
		return err
	}
	if (c.NArg() == 0) == (c.String("selector") == "") || c.NArg() > 1 {
		return errors.New("profile takes one workload: KIND/NAME (deploy/web) or -l SELECTOR")
	}
	fromStart := c.Bool("restart") || c.Bool("wait")
	if c.Bool("restart") && c.Bool("wait") {
		return errors.New("--restart and --wait exclude each other: --restart restarts a running workload, --wait waits for one to start")
	}
	if fromStart && c.Duration("duration") <= 0 {
		return errors.New("--restart and --wait record for --duration after the pods start: give one")
	}
	if err := checkVerifyFlags(c); err != nil {
		return err
	}
	ctx, stop := interrupt.Context()
	defer stop()
	signal.Ignore(syscall.SIGPIPE)
	budget := c.Duration("duration")
	if fromStart {
		budget += c.Duration("rollout-timeout")
	}
	budget += verifyBudget(c)
	s, err := newPluginSession(ctx, c, budget)
	if err != nil {
		return err
	}
	w, err := s.client.ResolveWorkload(ctx, s.namespace, c.Args().First(), c.String("selector"))
	if err != nil {
		return err
	}
	if c.Bool("restart") || c.Bool("verify") {
		if !w.Restartable() {
			return fmt.Errorf("--restart and --verify roll out a Deployment, DaemonSet or StatefulSet, not %s: for a Pod, a Job or a CronJob, use --wait with -l SELECTOR and create it once the recorders are ready", w)
		}
		if err := s.client.CanRestart(ctx, w); err != nil {
			return err
		}
	}
	if w, err = checkMark(ctx, s, w); err != nil {
		return err
	}
	if c.String("recording") != "" {
		return verifyRecording(ctx, s, w, format, style)
	}
	if c.Bool("verify") && !c.Bool("restart") {
		return verifyPatchFile(ctx, s, w, format)
	}
	var nodes map[string]*cluster.NodePods
	if fromStart {
		nodes, err = s.client.CandidateNodes(ctx, w, c.Int("max-nodes"))
	} else {
		nodes, err = s.client.NodesOf(ctx, w)
	}
	if err != nil {
		return err
	}
	var save *lockedWriter
	if path := c.String("save"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("--save: %w", err)
		}
		defer f.Close()
		save = &lockedWriter{w: f}
	}
	if fromStart {
		runs, err := recordFromStart(ctx, s, w, nodes, save)
		if err != nil {
			return err
		}
		if c.Bool("verify") {
			merged, covered, failed := mergeRuns(c, w, runs)
			if len(covered) == 0 {
				return fmt.Errorf("no node recorded %s", w)
			}
			if len(failed) > 0 {
				return cli.Exit(fmt.Sprintf("not verifying: the profile lacks nodes %s, which failed", strings.Join(failed, ", ")), 1)
			}
			return verifyProfile(ctx, s, w, merged, "recorded on nodes "+strings.Join(covered, ", "), format, style)
		}
		return reportProfile(c, w, runs, format, style)
	}
	runs := recordNodes(ctx, s, w, nodes, save)
	// The pods ran before the recording: their containers are in the profile
	// even when they did nothing, with their start not observed.
	if w.Template != nil {
		for _, r := range runs {
			for _, pod := range r.pods {
				for _, ctr := range append(slices.Clone(w.Template.Spec.InitContainers), w.Template.Spec.Containers...) {
					r.prof.SeenRunning(w.Namespace, pod, ctr.Name, ctr.Image)
				}
			}
		}
	}
	return reportProfile(c, w, runs, format, style)
}

// recordFromStart records on every candidate node from before the workload's
// new pods start: once every recorder is attached, --restart restarts the
// workload and waits for its rollout, --wait says to start it; then
// --duration more. With --restart the profile is of the new pods alone.
func recordFromStart(ctx context.Context, s *pluginSession, w cluster.Workload, nodes map[string]*cluster.NodePods, save *lockedWriter) ([]*nodeRun, error) {
	c := s.c
	recCtx, stopRecording := context.WithCancel(ctx)
	defer stopRecording()
	runs, wait := startNodes(recCtx, s, w, nodes, save, true)
	defer func() {
		stopRecording()
		wait()
		closeSpools(runs)
	}()
	if err := allReady(ctx, runs); err != nil {
		return nil, err
	}
	var only profile.Filter
	if c.Bool("restart") {
		started := time.Now()
		progress(c, "kubectl capsrec: recording on %d nodes; restarting %s\n", len(runs), w)
		if err := s.client.Restart(ctx, w, started); err != nil {
			return nil, err
		}
		if err := s.client.WaitRollout(ctx, w, started, c.Duration("rollout-timeout")); err != nil {
			return nil, err
		}
		newPods, err := s.client.RunningPods(ctx, w)
		if err != nil {
			return nil, err
		}
		// The old pods' last checks were recorded too: the profile is of the new pods.
		only.Pods = newPods
		progress(c, "kubectl capsrec: rolled out (%s); recording %s more\n", strings.Join(newPods, ", "), c.Duration("duration"))
	} else {
		fmt.Fprintf(c.App.ErrWriter, "kubectl capsrec: recording on %d nodes for %s: start %s now\n", len(runs), c.Duration("duration"), w)
	}
	select {
	case <-ctx.Done():
	case <-time.After(c.Duration("duration")):
	}
	stopRecording()
	wait()
	for _, r := range runs {
		if r.err != nil {
			continue
		}
		if _, r.err = r.spool.Seek(0, io.SeekStart); r.err == nil {
			r.err = profile.Read(r.node, r.spool, profile.ReadOptions{Filter: only}, r.prof)
		}
	}
	return runs, nil
}

// progress says how a long step goes, on a terminal: a fault stays one line.
func progress(c *cli.Context, format string, args ...any) {
	if isatty.IsTerminal(os.Stderr.Fd()) {
		fmt.Fprintf(c.App.ErrWriter, format, args...)
	}
}

// startNodes starts a recorder on each node; with spool each one's JSON goes to
// a file of its own. wait waits for them all to end. Without spool the
// recorders stop after --duration, if one is given.
func startNodes(ctx context.Context, s *pluginSession, w cluster.Workload, nodes map[string]*cluster.NodePods, save *lockedWriter, spool bool) (runs []*nodeRun, wait func()) {
	args := []string{"record", "-o", "json", "--color", "never", "--namespace", w.Namespace, "--selector", w.Selector.String()}
	if d := s.c.Duration("duration"); d > 0 && !spool {
		args = append(args, "--duration", d.String())
	}
	for node, np := range nodes {
		runs = append(runs, &nodeRun{node: node, pods: np.Pods, image: np.Image, prof: profile.New()})
	}
	slices.SortFunc(runs, func(a, b *nodeRun) int { return strings.Compare(a.node, b.node) })
	var wg sync.WaitGroup
	for _, r := range runs {
		if spool {
			if r.spool, r.err = os.CreateTemp("", "capsrec-spool-*.json"); r.err != nil {
				r.ended.Store(true)
				continue
			}
			// Unlinked at once, read and written through its descriptor: a
			// plugin killed mid-run (SIGKILL) leaves no file behind.
			if r.err = os.Remove(r.spool.Name()); r.err != nil {
				r.spool.Close()
				r.spool = nil
				r.ended.Store(true)
				continue
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.err = recordNode(ctx, s, r, args, save)
			r.ended.Store(true)
		}()
	}
	return runs, wg.Wait
}

// allReady waits until every recorder is attached; one that failed first is an error.
func allReady(ctx context.Context, runs []*nodeRun) error {
	for {
		ready := 0
		for _, r := range runs {
			if r.ended.Load() && !r.ready.Load() { // r.err is written before ended
				return fmt.Errorf("the recorder on node %s did not start: %v", textsafe.Visible(r.node), r.err)
			}
			if r.ready.Load() {
				ready++
			}
		}
		if ready == len(runs) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// recordNodes runs a recorder on every node at once and reads each one's JSON
// into its own profile.
func recordNodes(ctx context.Context, s *pluginSession, w cluster.Workload, nodes map[string]*cluster.NodePods, save *lockedWriter) []*nodeRun {
	runs, wait := startNodes(ctx, s, w, nodes, save, false)
	stopProgress := showProgress(s.c, runs)
	wait()
	stopProgress()
	return runs
}

func recordNode(ctx context.Context, s *pluginSession, r *nodeRun, args []string, save *lockedWriter) error {
	np, err := s.startRecorder(ctx, r.node, r.image, args)
	if err != nil {
		return err
	}
	defer np.Delete()
	pr, pw := io.Pipe()
	read := make(chan error, 1)
	go func() {
		var src io.Reader = &countingReader{r: pr, lines: &r.checks}
		if save != nil {
			src = io.TeeReader(src, &lineWriter{dst: save})
		}
		if r.spool != nil {
			_, err := io.Copy(r.spool, src)
			read <- err
			return
		}
		err := profile.Read(r.node, src, profile.ReadOptions{}, r.prof)
		_, _ = io.Copy(io.Discard, pr) // a bad line stops the profile, not the stream
		read <- err
	}()
	err = streamNodePod(ctx, np, pw, &r.stderr, func() error { r.ready.Store(true); return nil }, nil)
	pw.Close()
	return errors.Join(err, <-read)
}

// showProgress keeps one line on a terminal's stderr: nodes ready, checks seen.
func showProgress(c *cli.Context, runs []*nodeRun) (stop func()) {
	if !isatty.IsTerminal(os.Stderr.Fd()) {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			ready, checks := 0, int64(0)
			for _, r := range runs {
				if r.ready.Load() {
					ready++
				}
				checks += r.checks.Load()
			}
			fmt.Fprintf(c.App.ErrWriter, "\r\033[Kkubectl capsrec: %d of %s recording, %s (Ctrl-C to stop)", ready, english.Count(len(runs), "node"), english.Count(checks, "check"))
			select {
			case <-done:
				fmt.Fprint(c.App.ErrWriter, "\r\033[K")
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// reportProfile merges the nodes' profiles, names the nodes it covers and
// those that failed, and prints the profile or the --check findings.
func reportProfile(c *cli.Context, w cluster.Workload, runs []*nodeRun, format string, style profile.Style) error {
	merged, covered, failed := mergeRuns(c, w, runs)
	if len(covered) == 0 {
		return fmt.Errorf("no node recorded %s", w)
	}
	if manifest := c.String("check"); manifest != "" {
		err := capsrec.CheckManifest(c, manifest, merged)
		if err == nil && len(failed) > 0 {
			return cli.Exit(fmt.Sprintf("the profile lacks nodes %s, which failed", strings.Join(failed, ", ")), capsrec.ExitUndecided)
		}
		return err
	}
	if err := printProfile(c, w, merged, "recorded on nodes "+strings.Join(covered, ", "), format, style, nil); err != nil {
		return err
	}
	if len(failed) > 0 {
		return cli.Exit(fmt.Sprintf("the profile lacks nodes %s, which failed", strings.Join(failed, ", ")), 1)
	}
	return nil
}

// mergeRuns merges the nodes' profiles, says which nodes failed and how
// many events it covers.
func mergeRuns(c *cli.Context, w cluster.Workload, runs []*nodeRun) (merged *profile.Profile, covered, failed []string) {
	merged = profile.New()
	var checks int64
	for _, r := range runs {
		if r.err != nil {
			failed = append(failed, r.node)
			fmt.Fprintf(c.App.ErrWriter, "kubectl capsrec: node %s failed: %s\n", textsafe.Visible(r.node), textsafe.Visible(textsafe.OneLine(r.err.Error())))
			if tail := strings.TrimSpace(r.stderr.String()); tail != "" {
				fmt.Fprintf(c.App.ErrWriter, "  its recorder said: %s\n", textsafe.Visible(textsafe.OneLine(tail)))
			}
			continue
		}
		merged.Merge(r.prof)
		covered = append(covered, fmt.Sprintf("%s (%s)", r.node, english.Count(len(r.pods), "pod")))
		checks += r.checks.Load()
	}
	if len(covered) > 0 {
		fmt.Fprintf(c.App.ErrWriter, "kubectl capsrec: %s recorded on %s: %s\n", w, textsafe.Visible(strings.Join(covered, ", ")), english.Count(checks, "event"))
	}
	return merged, covered, failed
}

// printProfile writes the merged profile in format; source says where it
// was recorded.
func printProfile(c *cli.Context, w cluster.Workload, merged *profile.Profile, source string, format string, style profile.Style, omit map[string][]string) error {
	capsrec.WarnPartial(c, "kubectl capsrec", merged)
	if format == "yaml" {
		fmt.Fprintf(c.App.Writer, "# %s, %s\n", w, textsafe.Visible(source))
	}
	if format == "patch" {
		return writePatch(c.App.Writer, merged, w, profile.PatchOptions{Alternatives: style.Alternatives, UserNS: style.UserNS, Omit: omit})
	}
	return profile.Write(c.App.Writer, merged, format, style)
}

// writePatch writes p's patch of w.
func writePatch(out io.Writer, p *profile.Profile, w cluster.Workload, opts profile.PatchOptions) error {
	return profile.WritePatch(out, p, map[string]profile.PatchTarget{w.Namespace + "/" + w.Name: patchTarget(w)}, opts)
}

// patchTarget names w for -o patch, with its init containers from its template.
func patchTarget(w cluster.Workload) profile.PatchTarget {
	t := profile.PatchTarget{Kind: w.Kind, Name: w.Name, Namespace: w.Namespace, Init: map[string]bool{}}
	if w.Template != nil {
		t.InitKnown = true
		for _, ic := range w.Template.Spec.InitContainers {
			t.Init[ic.Name] = true
		}
	}
	return t
}

// countingReader counts the lines (events) that pass.
type countingReader struct {
	r     io.Reader
	lines *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for _, b := range p[:n] {
		if b == '\n' {
			c.lines.Add(1)
		}
	}
	return n, err
}

// lockedWriter lets the nodes' streams share --save: whole reads at a time.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// lineWriter hands whole lines to a shared writer, so that nodes' lines do not mix.
type lineWriter struct {
	dst *lockedWriter
	buf []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	if i := bytes.LastIndexByte(l.buf, '\n'); i >= 0 {
		if _, err := l.dst.Write(l.buf[:i+1]); err != nil {
			return 0, err
		}
		l.buf = append(l.buf[:0], l.buf[i+1:]...)
	}
	return len(p), nil
}
