package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// Flags go anywhere on the line, as people type them.
func TestArrangeArgs(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"capsrec", "record", "-r", "/s.sock", "--pod", "x"}, []string{"capsrec", "-r", "/s.sock", "record", "--pod", "x"}},
		{[]string{"capsrec", "record", "--btf=/b", "--node-name", "n"}, []string{"capsrec", "--btf=/b", "--node-name", "n", "record"}},
		{[]string{"capsrec", "--node-name", "record", "record", "-r", "s"}, []string{"capsrec", "--node-name", "record", "-r", "s", "record"}},
		{[]string{"capsrec", "profile", "--", "-r"}, []string{"capsrec", "profile", "--", "--", "-r"}},
		{[]string{"capsrec", "-r", "s", "record"}, []string{"capsrec", "-r", "s", "record"}},
		{[]string{"capsrec", "profile", "rec.json", "-o", "yaml", "--check", "d.yaml", "-n", "prod"}, []string{"capsrec", "profile", "-o", "yaml", "--check", "d.yaml", "-n", "prod", "--", "rec.json"}},
		{[]string{"capsrec", "profile", "a.json", "-", "--skip-invalid", "b.json"}, []string{"capsrec", "profile", "--skip-invalid", "--", "a.json", "-", "b.json"}},
		{[]string{"capsrec", "record", "--pid", "1", "--", "sh", "-c", "id -u"}, []string{"capsrec", "record", "--pid", "1", "--", "--", "sh", "-c", "id -u"}},
		{[]string{"capsrec", "profile", "-o", "systemd", "--", "chown", "-R", "x", "/d"}, []string{"capsrec", "profile", "-o", "systemd", "--", "--", "chown", "-R", "x", "/d"}},
		{[]string{"capsrec", "profile", "a.json", "--", "-x"}, []string{"capsrec", "profile", "--", "a.json", "--", "-x"}},
		{[]string{"capsrec", "caps", "extra", "--color=never"}, []string{"capsrec", "caps", "--color=never", "--", "extra"}},
	} {
		globals := []cli.Flag{&cli.StringFlag{Name: "node-name"}, &cli.StringFlag{Name: "runtime-endpoint", Aliases: []string{"r"}}, &cli.StringFlag{Name: "btf"}}
		if got := arrangeArgs(c.in, []*cli.Command{recordCommand, profileCommand, capsCommand, doctorCommand}, globals, true); !slices.Equal(got, c.want) {
			t.Errorf("arrangeArgs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestClosest(t *testing.T) {
	names := []string{"record", "profile", "caps", "doctor", "cap", "pod", "color"}
	for word, want := range map[string]string{"recrod": "record", "caps": "caps", "capz": "caps", "colour": "color", "xyzzy": "", "pdo": "pod", strings.Repeat("a", 1<<20): ""} {
		if got := closest(word, names); got != want {
			t.Errorf("closest(%.20q) = %q, want %q", word, got, want)
		}
	}
}
