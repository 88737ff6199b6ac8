// Package nodepod is the handshake between `kubectl capsrec` and the recorder it
// starts on a node, both ends of it.
//
// The recorder runs as the main process of a pod whose stdin is the plugin's
// attach stream (stdinOnce). The plugin sends StartLine once it is attached, so
// that no output is written before anyone reads it, and closes stdin to stop the
// session: on Ctrl-C, and when the plugin dies, since the runtime closes stdin
// once the attach ends. The recorder writes ReadyLine on stderr once its hooks
// are attached; the plugin takes it off the stream.
package nodepod

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

const (
	// Env is set to "1" in the node pod: the recorder waits for StartLine.
	Env = "CAPSREC_NODE_POD"
	// StartLine is the plugin's first line on the recorder's stdin.
	StartLine = "start"
	// ReadyLine goes to stderr once the hooks are attached.
	ReadyLine = "capsrec: node recorder ready"
)

// StartTimeout ends a pod nobody attached to.
var StartTimeout = 2 * time.Minute

// InPod tells whether this process is a node pod's recorder.
func InPod() bool { return os.Getenv(Env) == "1" }

// Start is what the plugin sends on the recorder's stdin: the start line, then
// whatever stdin carries until it closes.
func Start(stdin io.Reader) io.Reader {
	return io.MultiReader(strings.NewReader(StartLine+"\n"), stdin)
}

// AwaitStart reads the plugin's start line from stdin, then watches stdin for
// its end: the returned context ends with it.
func AwaitStart(parent context.Context, stdin io.Reader) (context.Context, error) {
	started := make(chan error, 1)
	br := bufio.NewReader(stdin)
	go func() {
		line, err := br.ReadString('\n')
		if err == nil && line != StartLine+"\n" {
			err = fmt.Errorf("unexpected first line %q", line)
		}
		started <- err
	}()
	select {
	case err := <-started:
		if err != nil {
			return nil, fmt.Errorf("node pod: waiting for kubectl capsrec to attach: %w", err)
		}
	case <-time.After(StartTimeout):
		return nil, errors.New("node pod: kubectl capsrec did not attach within " + StartTimeout.String())
	case <-parent.Done():
		return nil, parent.Err()
	}
	ctx, cancel := context.WithCancel(parent)
	go func() {
		_, _ = io.Copy(io.Discard, br) // until EOF: the plugin stopped or went away
		cancel()
	}()
	return ctx, nil
}

// Stderr passes the recorder's stderr through, line by line, but takes its
// ready line off (calling OnReady) and remembers its last error line before it.
type Stderr struct {
	W       io.Writer
	OnReady func()
	// Ready is set once the ready line came; LastError is the last "capsrec: "
	// line before it: the recorder's start-up error.
	Ready     bool
	LastError string
	partial   []byte
}

func (f *Stderr) Write(p []byte) (int, error) {
	f.partial = append(f.partial, p...)
	for {
		i := bytes.IndexByte(f.partial, '\n')
		if i < 0 {
			break
		}
		line := string(f.partial[:i+1])
		f.partial = f.partial[i+1:]
		f.line(line)
	}
	return len(p), nil
}

func (f *Stderr) line(line string) {
	if !f.Ready && strings.TrimSuffix(line, "\n") == ReadyLine {
		f.Ready = true
		f.OnReady()
		return
	}
	if strings.HasPrefix(line, "capsrec: ") && !f.Ready {
		f.LastError = line
	}
	_, _ = io.WriteString(f.W, line)
}

// Flush writes a last line that had no newline.
func (f *Stderr) Flush() {
	if len(f.partial) > 0 {
		f.line(string(f.partial))
		f.partial = nil
	}
}
