package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/capsrec/capsrec/internal/caps"
)

var versionCommand = &cli.Command{
	Name:  "version",
	Usage: "print capsrec's version (as --version does)",
	Action: func(c *cli.Context) error {
		if c.NArg() > 0 {
			return fmt.Errorf("version takes no arguments, got %q", c.Args().First())
		}
		fmt.Fprintf(c.App.Writer, "capsrec version %s\n", c.App.Version)
		return nil
	},
}

var capsCommand = &cli.Command{
	Name:  "caps",
	Usage: "list every Linux capability: number, name and what it allows",
	Action: func(c *cli.Context) error {
		if c.NArg() > 0 {
			return fmt.Errorf("caps takes no arguments, got %q", c.Args().First())
		}
		w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "VALUE\tNAME\tALLOWS")
		for _, cp := range caps.All {
			fmt.Fprintf(w, "%d\t%s\t%s\n", cp.Value, cp.Name, cp.Meaning)
		}
		return w.Flush()
	},
}
