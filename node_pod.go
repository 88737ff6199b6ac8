package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// A recorder started by `kubectl capsrec` on a node runs as the main process
// of a pod whose stdin is the plugin's attach stream (stdinOnce). The plugin
// sends a first line once it is attached, so that no output is written before
// anyone reads it, and closes stdin to stop the session: on Ctrl-C, and when
// the plugin dies, since the runtime closes stdin once the attach ends.
const (
	nodePodEnv       = "CAPSREC_NODE_POD"
	nodePodStartLine = "start"
	// nodePodReadyLine goes to stderr once the hooks are attached; the plugin
	// takes it off the stream.
	nodePodReadyLine = "capsrec: node recorder ready"
	// nodePodStartTimeout ends a pod nobody attached to.
	nodePodStartTimeout = 2 * time.Minute
)

func inNodePod() bool { return os.Getenv(nodePodEnv) == "1" }

// awaitNodePodStart reads the plugin's start line from stdin, then watches
// stdin for its end: the returned context ends with it.
func awaitNodePodStart(parent context.Context, stdin io.Reader) (context.Context, error) {
	started := make(chan error, 1)
	br := bufio.NewReader(stdin)
	go func() {
		line, err := br.ReadString('\n')
		if err == nil && line != nodePodStartLine+"\n" {
			err = fmt.Errorf("unexpected first line %q", line)
		}
		started <- err
	}()
	select {
	case err := <-started:
		if err != nil {
			return nil, fmt.Errorf("node pod: waiting for kubectl capsrec to attach: %w", err)
		}
	case <-time.After(nodePodStartTimeout):
		return nil, errors.New("node pod: kubectl capsrec did not attach within " + nodePodStartTimeout.String())
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
