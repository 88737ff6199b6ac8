package cluster

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
)

// A request cut by the caller's own deadline reads as an unreachable server,
// and still is the deadline for errors.Is: StartNodePod tells "did not run
// within --ready-timeout" from it.
func TestExplainKeepsTheCause(t *testing.T) {
	c := &Client{Server: "https://127.0.0.1:6443"}
	err := c.Explain(&url.Error{Op: "Get", URL: "https://127.0.0.1:6443/api", Err: context.DeadlineExceeded}, "waiting for the recorder pod")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "waiting for the recorder pod: cannot reach the API server at https://127.0.0.1:6443: ") {
		t.Errorf("Explain = %q (deadline in the chain: %v)", err, errors.Is(err, context.DeadlineExceeded))
	}
}
