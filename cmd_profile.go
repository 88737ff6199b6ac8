package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"

	"github.com/capsrec/capsrec/output"
	"github.com/capsrec/capsrec/profile"
)

var profileCommand = &cli.Command{
	Name:  "profile",
	Usage: "turn recorded checks (capsrec or Tetragon JSON lines) into the capabilities each container needs",
	UsageText: `capsrec profile [flags] [FILE ...|-]

   sudo capsrec record -o json --duration 10m > node1.json
   capsrec profile node1.json node2.json.gz
   capsrec profile -o yaml --namespace prod events.json
   tetra getevents -o json | capsrec profile -
   capsrec profile --check deploy.yaml events.json    # exit 1 when they differ`,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: "table, yaml (a securityContext per container), json, docker (--cap-drop/--cap-add) or systemd (host binaries)"},
		&cli.StringFlag{Name: "color", Value: "auto", Usage: "auto, always or never"},
		&cli.StringSliceFlag{Name: "namespace", Aliases: []string{"n"}, Usage: "only pods in this namespace (glob); repeatable"},
		&cli.StringSliceFlag{Name: "pod", Usage: "only this pod (glob); repeatable"},
		&cli.StringSliceFlag{Name: "container", Usage: "only this container (glob); repeatable"},
		&cli.BoolFlag{Name: "skip-invalid", Usage: "count malformed lines and go on, instead of stopping at the first"},
		&cli.StringFlag{Name: "check", Usage: "compare a workload manifest (YAML) with the profile; exit 1 when they differ"},
	},
	Action: runProfile,
}

func runProfile(c *cli.Context) error {
	format := c.String("output")
	if err := profile.CheckFormat(format); err != nil {
		return err
	}
	colored, err := output.UseColor(c.String("color"), isatty.IsTerminal(os.Stdout.Fd()), os.Getenv("NO_COLOR") != "")
	if err != nil {
		return err
	}
	filter := profile.Filter{Namespaces: c.StringSlice("namespace"), Pods: c.StringSlice("pod"), Containers: c.StringSlice("container")}
	if err := filter.Validate(); err != nil {
		return err
	}
	files := c.Args().Slice()
	if len(files) == 0 {
		if isatty.IsTerminal(os.Stdin.Fd()) {
			return errors.New("profile reads JSON lines: give files, or - for stdin")
		}
		files = []string{"-"}
	}
	p, err := profile.ReadFiles(files, os.Stdin, profile.ReadOptions{SkipInvalid: c.Bool("skip-invalid"), Filter: filter})
	if err != nil {
		return err
	}
	if manifest := c.String("check"); manifest != "" {
		findings, err := profile.CheckManifest(manifest, p)
		if err != nil {
			return err
		}
		for _, f := range findings {
			fmt.Fprintln(c.App.Writer, f)
		}
		if len(findings) > 0 {
			return cli.Exit("", 1)
		}
		fmt.Fprintln(c.App.Writer, "the manifest grants what the profile needs, and no more")
		return nil
	}
	if p.Skipped > 0 {
		fmt.Fprintf(c.App.ErrWriter, "capsrec: skipped %d malformed lines\n", p.Skipped)
	}
	return profile.Write(c.App.Writer, p, format, colored)
}
