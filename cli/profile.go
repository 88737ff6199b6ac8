package cli

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/filter"
	"github.com/capsrec/capsrec/internal/english"
	"github.com/capsrec/capsrec/internal/termwidth"
	"github.com/capsrec/capsrec/internal/textsafe"
	"github.com/capsrec/capsrec/output"
	"github.com/capsrec/capsrec/profile"
	"github.com/capsrec/capsrec/session"
)

var profileCommand = &cli.Command{
	Name:  "profile",
	Usage: "turn recorded checks (capsrec or Tetragon JSON lines) into the capabilities each container needs",
	UsageText: `capsrec profile [flags] [FILE ...|-]
   capsrec profile [flags] -- COMMAND [ARGS]

   sudo capsrec record -o json --duration 10m > node1.json
   capsrec profile node1.json node2.json.gz
   capsrec profile -o yaml --namespace prod events.json
   tetra getevents -o json | capsrec profile -
   capsrec profile --check deploy.yaml events.json    # exit 1 when they differ, 2 undecided
   sudo capsrec profile -o systemd -- /usr/sbin/mydaemon --foreground`,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "table", Usage: profile.Formats.Usage()},
		&cli.StringFlag{Name: "color", Value: "auto", Usage: "auto, always or never"},
		WideFlag,
		&cli.StringSliceFlag{Name: "namespace", Aliases: []string{"n"}, Usage: "only pods in this namespace (glob); repeatable"},
		&cli.StringSliceFlag{Name: "pod", Usage: "only this pod (glob); repeatable"},
		&cli.StringSliceFlag{Name: "container", Usage: "only this container (glob); repeatable"},
		&cli.BoolFlag{Name: "skip-invalid", Usage: "count malformed lines and go on, instead of stopping at the first"},
		AlternativesFlag,
		UserNSFlag,
		CheckFlag,
		AllowPartialFlag,
		&cli.BoolFlag{Name: "live", Usage: "profile this node's checks as they happen, counted in the kernel (busy nodes); needs root"},
		runtimeBinaryFlag,
		&cli.DurationFlag{Name: "interval", Usage: "with --live: also print the profile this often (e.g. 1m)"},
		&cli.DurationFlag{Name: "duration", Usage: "with --live or a command: stop after this long; else Ctrl-C (or the command's end)"},
		&cli.StringFlag{Name: "attach", Value: string(core.MethodAuto), Usage: "with --live or a command: " + core.MethodChoices()},
		&cli.StringFlag{Name: "ready-file", Usage: "with --live or a command: write this file once the hooks are attached"},
	},
	Action: runProfile,
}

func runProfile(c *cli.Context) error {
	format := c.String("output")
	if err := profile.CheckFormat(format); err != nil {
		return err
	}
	style, err := StyleFor(c, os.Stdout)
	if err != nil {
		return err
	}
	subjects := profile.Filter{Namespaces: c.StringSlice("namespace"), Pods: c.StringSlice("pod"), Containers: c.StringSlice("container")}
	if err := subjects.Validate(); err != nil {
		return err
	}
	files, command, dashed := commandArgs(c)
	if dashed {
		return profileCommandLine(c, files, command, format, style)
	}
	if c.Bool("live") {
		if c.String("check") != "" {
			return errors.New("--check compares recorded files, not a --live session")
		}
		return runLive(c, format, style, subjects)
	}
	for _, live := range []string{"interval", "duration"} {
		if c.IsSet(live) {
			return fmt.Errorf("--%s goes with --live: files are read to their end", live)
		}
	}
	if len(files) == 0 {
		if isatty.IsTerminal(os.Stdin.Fd()) {
			return errors.New("profile reads JSON lines: give files, or - for stdin")
		}
		files = []string{"-"}
	}
	p, err := profile.ReadFiles(files, os.Stdin, profile.ReadOptions{SkipInvalid: c.Bool("skip-invalid"), Filter: subjects})
	manifest := c.String("check")
	if err != nil && manifest != "" {
		return cli.Exit(err, ExitUndecided)
	}
	if err != nil {
		return err
	}
	if manifest != "" {
		return CheckManifest(c, manifest, p)
	}
	if p.Skipped > 0 {
		fmt.Fprintf(c.App.ErrWriter, "capsrec: skipped %s\n", english.Count(p.Skipped, "malformed line"))
	}
	WarnPartial(c, "capsrec", p)
	return profile.Write(c.App.Writer, p, format, style)
}

// StyleFor is how a table on f is shown: colored by --color, within f's
// width unless --wide (a pipe's tables keep profile.TableWidth).
func StyleFor(c *cli.Context, f *os.File) (profile.Style, error) {
	colored, err := output.ColorFor(c.String("color"), f)
	if err != nil {
		return profile.Style{}, err
	}
	st := profile.Style{Colored: colored, Alternatives: c.Bool("alternatives"), UserNS: c.Bool("userns")}
	if !c.Bool("wide") {
		st.Width = termwidth.Of(f)
	}
	return st, nil
}

// stderrWidth is where messages on stderr wrap: its terminal's width, else the table's.
func stderrWidth() int {
	if w := termwidth.Of(os.Stderr); w > 0 {
		return w
	}
	return profile.TableWidth
}

// AlternativesFlag is --alternatives, of profile here and through kubectl.
var AlternativesFlag = &cli.BoolFlag{Name: "alternatives", Usage: "with -o patch: use the capability-free alternatives that apply (a pod sysctl instead of NET_BIND_SERVICE); every output lists them"}

// UserNSFlag is --userns, of profile here and through kubectl.
var UserNSFlag = &cli.BoolFlag{Name: "userns", Usage: "with -o patch: set hostUsers: false when every container of the workload is ready for a user namespace of its own (every output says whether it is)"}

// CheckFlag is --check, of profile here and through kubectl.
var CheckFlag = &cli.StringFlag{Name: "check", Usage: "compare the workloads of a manifest (YAML: many documents, Lists, CronJobs too) with the profile; exit 1 when they differ, 2 when it cannot decide (a partial profile, an unreadable input)"}

// AllowPartialFlag is --allow-partial, of profile --check here and through kubectl.
var AllowPartialFlag = &cli.BoolFlag{Name: "allow-partial", Usage: "with --check: pass a profile that did not see every container start, or lost records"}

// WarnPartial says on stderr what the profile may lack: the containers whose
// start it did not see, and losses. It returns whether the profile is partial.
func WarnPartial(c *cli.Context, who string, p *profile.Profile) bool {
	partial := false
	for _, sp := range p.Subjects() {
		if !p.Partial(sp) {
			continue
		}
		partial = true
		if sp.Subject.IsContainer() && !sp.Coverage().StartObserved {
			profile.Wrap(c.App.ErrWriter, who+":", "  ", sp.Subject.Short()+": "+profile.StartNotObserved, stderrWidth())
		}
	}
	switch r := p.Recorded; {
	case p.Len() == 0:
	case r.Sessions == 0:
		profile.Wrap(c.App.ErrWriter, who+":", "  ", "the input says nothing of losses (no capsrec summary): the profile may be partial", stderrWidth())
	case r.Lost > 0:
		profile.Wrap(c.App.ErrWriter, who+":", "  ", "the recordings lost "+english.Count(r.Lost, "record")+": the profile is partial", stderrWidth())
	}
	return partial
}

// --check's exit codes: the manifest differs from the profile, or capsrec
// could not decide (the manifest or recordings unreadable, the profile partial).
const (
	ExitDiffers   = 1
	ExitUndecided = 2
)

// CheckManifest prints where a workload manifest and the profile differ, or
// that they agree, and returns the exit: nil when they agree, ExitDiffers, or
// ExitUndecided (a partial profile without --allow-partial, unless a
// difference holds whatever it missed; a manifest it cannot read).
func CheckManifest(c *cli.Context, manifest string, p *profile.Profile) error {
	check, err := profile.CheckManifest(manifest, p)
	if err != nil {
		return cli.Exit(err, ExitUndecided)
	}
	definite := false
	for _, f := range check.Findings {
		fmt.Fprintln(c.App.Writer, textsafe.Visible(f.String()))
		definite = definite || f.Definite
	}
	if ignored := check.IgnoredText(); ignored != "" {
		fmt.Fprintf(c.App.ErrWriter, "capsrec: --check compared %s and passed over what is no workload: %s\n", english.Count(check.Workloads, "workload"), ignored)
	}
	partial := WarnPartial(c, "capsrec", p)
	switch {
	case definite:
		return cli.Exit("", ExitDiffers)
	case partial && !c.Bool("allow-partial"):
		fmt.Fprintln(c.App.Writer, "the profile is partial (see above): it may lack needs, so it cannot decide; --allow-partial passes it")
		return cli.Exit("", ExitUndecided)
	case len(check.Findings) > 0:
		return cli.Exit("", ExitDiffers)
	}
	fmt.Fprintln(c.App.Writer, "the manifest grants what the profile needs, and no more")
	return nil
}

// profileCommandLine is profile -- COMMAND: record the command and all it
// starts, then write their one profile (-o systemd: the unit's lines).
func profileCommandLine(c *cli.Context, files, command []string, format string, style profile.Style) error {
	switch {
	case len(command) == 0:
		return errors.New("no command after --: profile -- COMMAND [ARGS]")
	case len(files) > 0:
		return fmt.Errorf("profile reads files or runs a command, not both: got %q and a command", files[0])
	case c.Bool("live") || c.String("check") != "":
		return errors.New("a command is profiled as it runs: --live and --check do not apply")
	}
	for _, f := range []string{"namespace", "pod", "container", "interval"} {
		if c.IsSet(f) {
			return fmt.Errorf("--%s does not apply to a command's profile", f)
		}
	}
	method, err := core.ParseMethod(c.String("attach"))
	if err != nil {
		return fmt.Errorf("--attach: %w", err)
	}
	plan := &recordPlan{format: output.FormatCompact, summary: true, command: command, profileFormat: format, style: style}
	plan.opts = session.Options{Method: method, Duration: c.Duration("duration"), RingBufferSize: 4 << 20, WakeupBytes: 512 << 10,
		HideClasses: 1<<core.ClassProbe | 1<<core.ClassRuntime}
	if plan.opts.Duration < 0 {
		return fmt.Errorf("--duration %s: want 0 or more", plan.opts.Duration)
	}
	if plan.checks, err = filter.New(filter.Options{}, &plan.opts.Filter); err != nil {
		return err
	}
	if plan.pods, err = filter.NewPodFilter(nil, nil, nil, "", false); err != nil {
		return err
	}
	if err := followCommand(plan); err != nil {
		return err
	}
	plan.opts.Pods = plan.pods
	if err := loadBTFFlag(c, &plan.opts); err != nil {
		return err
	}
	return runRecordPlan(c, plan)
}

// runLive is profile --live: the kernel counts checks per (cgroup, executable,
// capability, verdict, audit, override_creds) and sends only each key's first,
// so a long session on a busy node costs little.
func runLive(c *cli.Context, format string, style profile.Style, subjects profile.Filter) error {
	if c.NArg() > 0 {
		return fmt.Errorf("--live records from the kernel: it takes no files, got %q", c.Args().First())
	}
	method, err := core.ParseMethod(c.String("attach"))
	if err != nil {
		return fmt.Errorf("--attach: %w", err)
	}
	interval, duration := c.Duration("interval"), c.Duration("duration")
	if interval < 0 || duration < 0 {
		return errors.New("--interval and --duration want 0 or more")
	}
	// Counted in the kernel, only a key's first check comes whole; most of the
	// ring is for exec records (10 KiB each): 4 MiB holds 400, and costs 8 MiB of RSS.
	opts := session.Options{Method: method, Duration: duration, Aggregate: true, RingBufferSize: 4 << 20, WakeupBytes: 512 << 10}
	if err := loadBTFFlag(c, &opts); err != nil {
		return err
	}
	if err := needRoot("profile --live"); err != nil {
		return err
	}
	rec, err := openSession(c, opts)
	if err != nil {
		return err
	}
	defer rec.Close()
	live := profile.NewLive()
	next := time.Now().Add(interval)
	_, err = rec.Run(session.Stages{Profile: live.OnCheck, Idle: func() error {
		if interval > 0 && time.Now().After(next) {
			next = time.Now().Add(interval)
			return writeLive(c, rec, live, format, style, subjects, false)
		}
		return nil
	}})
	if err != nil {
		return err
	}
	if err := writeLive(c, rec, live, format, style, subjects, true); err != nil {
		return err
	}
	st, err := rec.Stats()
	if err != nil {
		return err
	}
	fmt.Fprintln(c.App.ErrWriter, liveSummary(st))
	return nil
}

// writeLive writes the profile of what the session counted so far: each
// interval's under a time line, the last one bare.
func writeLive(c *cli.Context, rec *session.Session, live *profile.Live, format string, style profile.Style, subjects profile.Filter, final bool) error {
	entries, err := rec.Aggregates()
	if err != nil {
		return err
	}
	p, unattributed := live.Snapshot(entries, rec.Wall, subjects)
	// What the session lost so far: the profile says whether it is whole.
	if st, err := rec.Stats(); err == nil {
		p.Session(rec.Attached().UTC(), time.Now().UTC(), session.RecordsLost(st))
	}
	if !final {
		fmt.Fprintf(c.App.Writer, "--- %s\n", time.Now().UTC().Format(time.RFC3339))
	}
	if err := profile.Write(c.App.Writer, p, format, style); err != nil {
		return err
	}
	if unattributed > 0 {
		fmt.Fprintf(c.App.ErrWriter, "capsrec: %s whose first event was lost not in the profile\n", english.Count(unattributed, "check"))
	}
	return nil
}

// liveSummary adds up: seen = sent whole + aggregated + filtered + lost. A
// key's first check is sent whole (it names the subject); so is every check
// once the aggregation map is full.
func liveSummary(st session.Stats) string {
	whole := int64(st.Seen) - int64(st.Aggregated+st.Filtered+st.Lost)
	s := fmt.Sprintf("capsrec: %s seen, %d sent whole, %d aggregated, %d filtered, %d lost", english.Count(st.Seen, "check"), max(whole, 0), st.Aggregated, st.Filtered, st.Lost)
	if st.AggFull > 0 {
		s += fmt.Sprintf(" (%d sent whole because the aggregation map was full)", st.AggFull)
	}
	return s
}
