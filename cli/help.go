package cli

import (
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/capsrec/capsrec/internal/termwidth"
	"github.com/capsrec/capsrec/profile"
)

// FitHelp makes --help fit the terminal: a flag's usage wraps under itself
// instead of running off the edge, names are written once ("--pod value",
// not urfave/cli's "--pod value [ --pod value ]"), and a default shows only
// when it says something. commands and globals are every flag help may show.
func FitHelp(commands []*cli.Command, globals []cli.Flag) {
	width := termwidth.Of(os.Stdout)
	names := 0
	visit := func(flags []cli.Flag) {
		for _, f := range flags {
			names = max(names, len(flagNames(f)))
		}
	}
	visit(globals)
	for _, c := range commands {
		visit(c.Flags)
		for _, s := range c.Subcommands {
			visit(s.Flags)
		}
	}
	// urfave/cli indents a flag by 3 and pads its names' column by 2.
	room := width - 3 - names - 2
	cli.FlagStringer = func(f cli.Flag) string {
		s := flagNames(f) + "\t" + flagUsage(f)
		if width <= 0 || room < 20 {
			return s
		}
		name, usage, _ := strings.Cut(s, "\t")
		var wrapped strings.Builder
		profile.Wrap(&wrapped, "", "", usage, room)
		return name + "\t" + strings.ReplaceAll(strings.TrimSuffix(wrapped.String(), "\n"), "\n", "\n\t")
	}
}

func flagNames(f cli.Flag) string {
	value := ""
	if d, ok := f.(cli.DocGenerationFlag); ok && d.TakesValue() {
		value = " value"
	}
	var parts []string
	for _, n := range f.Names() {
		parts = append(parts, dashed(n))
	}
	return strings.Join(parts, ", ") + value
}

func flagUsage(f cli.Flag) string {
	d, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return ""
	}
	usage := d.GetUsage()
	switch def := d.GetDefaultText(); def {
	case "", "false", "0", "0s", `""`, "[]":
	default:
		usage += " (default: " + def + ")"
	}
	if env := d.GetEnvVars(); len(env) > 0 {
		usage += " [$" + strings.Join(env, ", $") + "]"
	}
	return usage
}
