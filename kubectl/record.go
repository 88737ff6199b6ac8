package kubectl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"

	capsrec "github.com/capsrec/capsrec/cli"
	"github.com/capsrec/capsrec/internal/interrupt"
	"github.com/capsrec/capsrec/internal/readyfile"
	"github.com/capsrec/capsrec/internal/termwidth"
	"github.com/capsrec/capsrec/internal/textsafe"
	"github.com/capsrec/capsrec/kubectl/cluster"
	"github.com/capsrec/capsrec/kubectl/nodepod"
	"github.com/capsrec/capsrec/output"
)

// Record flags the plugin sets itself, or that name what the plugin's own
// flags name (the pod, its namespace and container).
var pluginOwnedRecordFlags = []string{"pod", "namespace", "container", "selector", "host", "ready-file", "width"}

func kubectlRecordCommand() *cli.Command {
	forwarded := flagsExcept(capsrec.RecordFlags(), pluginOwnedRecordFlags...)
	flags := append(append(append([]cli.Flag{}, kubeFlags...), nodePodFlags...),
		&cli.StringFlag{Name: "container", Aliases: []string{"c"}, Usage: "only this container of the pod"},
		&cli.StringFlag{Name: "ready-file", Usage: "write this file once the recorder on the node is attached (for scripts)"},
	)
	return &cli.Command{
		Name:  "record",
		Usage: "record a pod's capability checks on its node, streamed here",
		UsageText: `kubectl capsrec record POD [-c CONTAINER] [flags]

   kubectl capsrec record xwing
   kubectl capsrec record xwing -n prod -o json | jq .process_kprobe.args
   kubectl capsrec record web-7d9f -c app --duration 1m --summary`,
		Flags: append(flags, forwarded...),
		Action: func(c *cli.Context) error {
			return kubectlRecord(c, forwarded)
		},
	}
}

func kubectlRecord(c *cli.Context, forwarded []cli.Flag) error {
	if c.NArg() != 1 {
		return errors.New("record takes one pod name: kubectl capsrec record POD [-c CONTAINER]")
	}
	podName := strings.TrimPrefix(c.Args().First(), "pod/")
	ctx, stop := interrupt.Context()
	defer stop()
	signal.Ignore(syscall.SIGPIPE)
	if err := readyfile.Prepare(c.String("ready-file")); err != nil {
		return err
	}
	s, err := newPluginSession(ctx, c, c.Duration("duration"))
	if err != nil {
		return err
	}
	pod, err := s.client.RunningPod(ctx, s.namespace, podName, c.String("container"))
	if err != nil {
		return err
	}
	image := pod.Spec.Containers[0].Image
	for _, ct := range pod.Spec.Containers {
		if ct.Name == c.String("container") {
			image = ct.Image
		}
	}
	np, err := s.startRecorder(ctx, pod.Spec.NodeName, image, remoteRecordArgs(c, forwarded, pod.Namespace, pod.Name))
	if err != nil {
		return err
	}
	defer np.Delete()
	tty := isatty.IsTerminal(os.Stderr.Fd())
	onReady := func() error {
		if tty {
			fmt.Fprintf(os.Stderr, "kubectl capsrec: recording pod %s/%s on node %s (Ctrl-C to stop)\n", pod.Namespace, pod.Name, textsafe.Visible(pod.Spec.NodeName))
		}
		return readyfile.Write(c.String("ready-file"))
	}
	var stdoutGone func() bool
	if output.IsPipe(os.Stdout) {
		stdoutGone = func() bool { return output.ReaderGone(os.Stdout) }
	}
	return streamNodePod(ctx, np, os.Stdout, os.Stderr, onReady, stdoutGone)
}

// remoteRecordArgs is the record command the node pod runs.
func remoteRecordArgs(c *cli.Context, forwarded []cli.Flag, ns, pod string) []string {
	args := []string{"record", "--pod", pod, "--namespace", ns}
	if ct := c.String("container"); ct != "" {
		args = append(args, "--container", ct)
	}
	args = append(args, forwardFlags(c, forwarded)...)
	// The node pod's stdout and stderr are no terminal: decide here, for ours.
	if !c.IsSet("summary") && !c.IsSet("no-summary") && !c.IsSet("full-summary") && isatty.IsTerminal(os.Stderr.Fd()) {
		args = append(args, "--summary")
	}
	if colored, _ := output.ColorFor(c.String("color"), os.Stdout); colored && c.String("color") == "auto" {
		args = append(args, "--color", "always")
	}
	if w := termwidth.Of(os.Stdout); w > 0 && !c.Bool("wide") {
		args = append(args, "--width", strconv.Itoa(w)) // lines that fit this terminal
	}
	return args
}

// streamNodePod attaches to the recorder and copies its output here until it
// ends. A signal, or a reader of stdout that went away, closes the recorder's
// stdin: it stops, prints its summary line and exits, as a local record does.
// stdoutGone, when set, tells a reader gone before the next write fails (a
// quiet session would notice only at its next check).
func streamNodePod(ctx context.Context, np *cluster.NodePod, stdout, stderr io.Writer, onReady func() error, stdoutGone func() bool) error {
	stdinR, stdinW := io.Pipe()
	var once sync.Once
	stopRecorder := func() { once.Do(func() { stdinW.Close() }) }
	defer stopRecorder()

	// The stream's own context ends only if the recorder does not stop in time.
	streamCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var readyErr error
	errOut := &nodepod.Stderr{W: stderr, OnReady: func() {
		if err := onReady(); err != nil {
			readyErr = err
			stopRecorder()
		}
	}}
	out := &stopOnErrorWriter{w: stdout, onError: stopRecorder}
	done := make(chan error, 1)
	go func() { done <- np.Attach(streamCtx, stdinR, out, errOut) }()
	if stdoutGone != nil {
		go func() {
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for range t.C {
				if streamCtx.Err() != nil {
					return
				}
				if stdoutGone() {
					out.failed.Store(true)
					stopRecorder()
					return
				}
			}
		}()
	}

	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		stopRecorder()
		select {
		case err = <-done:
		case <-time.After(15 * time.Second):
			cancel()
			err = errors.Join(errors.New("the recorder on the node did not stop within 15s"), <-done)
		}
	}
	errOut.Flush()
	if out.dropped > 0 {
		fmt.Fprintf(stderr, "kubectl capsrec: %d more lines not written (the reader of stdout went away)\n", out.dropped)
	}
	switch {
	case readyErr != nil:
		return readyErr
	case err != nil:
		return err
	case !errOut.Ready && errOut.LastError != "":
		// The recorder failed before it was ready: its error is on stderr already.
		return cli.Exit("", 1)
	}
	return nil
}

// stopOnErrorWriter writes stdout until it fails (| head closed it), then
// stops the recorder and drops the rest: the recorder's summary counts it.
type stopOnErrorWriter struct {
	w       io.Writer
	onError func()
	failed  atomic.Bool
	dropped int // lines
}

func (s *stopOnErrorWriter) Write(p []byte) (int, error) {
	if !s.failed.Load() {
		n, err := s.w.Write(p)
		if err == nil {
			return len(p), nil
		}
		s.failed.Store(true)
		s.onError()
		p = p[n:]
	}
	s.dropped += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}
