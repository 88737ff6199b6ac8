package kubectl

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	capsrec "github.com/capsrec/capsrec/cli"
)

// kubectl takes flags before, between and after a plugin's arguments.
func TestKubectlPluginArgs(t *testing.T) {
	cmds := []*cli.Command{kubectlRecordCommand(), kubectlProfileCommand()}
	for _, tc := range []struct{ in, want string }{
		{"k record xwing -o json", "k record -o json -- xwing"},
		{"k --context prod -n shop record web -c app", "k record --context prod -n shop -c app -- web"},
		{"k --kubeconfig=/x record web --duration 1m", "k record --kubeconfig=/x --duration 1m -- web"},
		{"k profile deploy/web -o yaml --check m.yaml", "k profile -o yaml --check m.yaml -- deploy/web"},
		{"k record --all xwing", "k record --all -- xwing"},
		{"k record -- -weird-pod", "k record -- -weird-pod"},
		{"k --help", "k --help"},
	} {
		got := strings.Join(capsrec.FlagsFirst(sinkKubeFlags(strings.Fields(tc.in), cmds), cmds), " ")
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}
