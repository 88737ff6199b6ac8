package cli

import (
	"slices"
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
