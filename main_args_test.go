package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestHoistGlobalFlags(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"capsrec", "record", "-r", "/s.sock", "--pod", "x"}, []string{"capsrec", "-r", "/s.sock", "record", "--pod", "x"}},
		{[]string{"capsrec", "record", "--btf=/b", "--node-name", "n"}, []string{"capsrec", "--btf=/b", "--node-name", "n", "record"}},
		{[]string{"capsrec", "--node-name", "record", "record", "-r", "s"}, []string{"capsrec", "--node-name", "record", "-r", "s", "record"}},
		{[]string{"capsrec", "profile", "--", "-r"}, []string{"capsrec", "profile", "--", "-r"}},
		{[]string{"capsrec", "-r", "s", "record"}, []string{"capsrec", "-r", "s", "record"}},
	} {
		globals := []cli.Flag{&cli.StringFlag{Name: "node-name"}, &cli.StringFlag{Name: "runtime-endpoint", Aliases: []string{"r"}}, &cli.StringFlag{Name: "btf"}}
		if got := hoistGlobalFlags(c.in, []*cli.Command{recordCommand, profileCommand, capsCommand, doctorCommand}, globals); !slices.Equal(got, c.want) {
			t.Errorf("hoistGlobalFlags(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

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
		got := strings.Join(flagsFirst(sinkKubeFlags(strings.Fields(tc.in), cmds), cmds), " ")
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}
