package session_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/testutil"
	"github.com/capsrec/capsrec/session"
)

// What doctor asks of the kernel, on the real kernel.
func TestProbe(t *testing.T) {
	testutil.RequireRoot(t)
	kernel, err := session.KernelSpec(nil)
	if err != nil {
		t.Fatal(err)
	}
	if opts := session.CapCapableOpts(kernel); opts == "unknown" {
		t.Errorf("cap_capable's opts unknown on this kernel")
	}
	works := 0
	for _, m := range core.Methods {
		if session.TryAttach(nil, m, false) == nil {
			works++
		}
	}
	if works == 0 || session.TryAttach(nil, core.MethodAuto, true) != nil {
		t.Errorf("no attach method works here (%d), or process tracking fails", works)
	}
	if err := session.TryAttach(nil, core.Method("nothing"), false); err == nil || strings.Contains(err.Error(), "\n") {
		t.Errorf("an unknown method: %v, want one line", err)
	}
}

// A runtime socket nothing answers on: no tree, and one warning line when it was asked for.
func TestRuntimeNotThere(t *testing.T) {
	ep := "unix://" + t.TempDir() + "/none.sock"
	if tree := session.FindRuntimeTree(ep); len(tree.Servers)+len(tree.PIDs) != 0 {
		t.Errorf("a tree from a socket that is not there: %+v", tree)
	}
	var stderr bytes.Buffer
	if cri, err := session.DialRuntime(ep, &stderr); err == nil {
		cri.Close()
		t.Fatal("dialled a socket that is not there")
	}
	if n := strings.Count(stderr.String(), "\n"); n != 1 || !strings.Contains(stderr.String(), "without pod fields") {
		t.Errorf("warning %q: want one line", stderr.String())
	}
}
