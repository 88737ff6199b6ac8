package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/cilium/ebpf/btf"
	"github.com/mattn/go-isatty"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/filter"
	"github.com/capsrec/capsrec/internal/boundedfile"
	"github.com/capsrec/capsrec/internal/english"
	"github.com/capsrec/capsrec/internal/termwidth"
	"github.com/capsrec/capsrec/output"
	"github.com/capsrec/capsrec/profile"
	"github.com/capsrec/capsrec/session"
	"github.com/capsrec/capsrec/tetragon"
)

var recordCommand = &cli.Command{
	Name:  "record",
	Usage: "print every capability check the kernel makes, as it happens",
	UsageText: `capsrec record [flags]

   sudo capsrec record --cap syslog --denied
   sudo capsrec record -o json | jq 'select((.process_kprobe.return.int_arg // 0) < 0)'
   sudo capsrec record --binary dmesg --unique --duration 30s`,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: output.FormatCompact, Usage: output.Formats.Usage()},
		&cli.StringFlag{Name: "color", Value: "auto", Usage: "auto, always or never; auto colors a terminal unless NO_COLOR is set"},
		WideFlag,
		&cli.IntFlag{Name: "width", Hidden: true, Usage: "lay lines out for a terminal this wide, stdout's and stderr's (kubectl capsrec passes its own)"},
		&cli.StringFlag{Name: "attach", Value: string(core.MethodAuto), Usage: core.MethodChoices() + "; auto takes the first that works, in that order"},
		&cli.IntSliceFlag{Name: "pid", Usage: "only checks of this process (thread group id); repeatable"},
		&cli.StringFlag{Name: "comm", Usage: "only checks of tasks with this comm (the kernel's 15-character name)"},
		&cli.StringSliceFlag{Name: "binary", Usage: "only checks of this binary: a base name or glob (dmesg, ip*), or a path or path glob (/usr/bin/*); repeatable"},
		&cli.StringSliceFlag{Name: "cap", Usage: "only this capability: CAP_SYSLOG, SYSLOG, syslog or 34; repeatable or comma-separated"},
		&cli.BoolFlag{Name: "denied", Usage: "only denied checks"},
		&cli.BoolFlag{Name: "granted", Usage: "only granted checks"},
		&cli.BoolFlag{Name: "unique", Usage: "print each binary + capability + verdict once"},
		&cli.DurationFlag{Name: "duration", Usage: "stop after this long (e.g. 30s); 0 runs until Ctrl-C"},
		&cli.IntFlag{Name: "count", Usage: "stop after printing this many checks; 0 means no limit"},
		&cli.StringFlag{Name: "ready-file", Usage: "write this file once the hooks are attached (for scripts)"},
		&cli.IntFlag{Name: "ring-buffer", Value: 1024, Usage: "ring buffer size in KiB, a power of two of at least 4; it costs twice its size in RSS (mapped twice), so 1048576 costs 2 GiB"},
		&cli.BoolFlag{Name: "summary", Usage: "at exit, print the session's capability profile on stderr, a line per subject", DefaultText: "when stderr is a terminal"},
		&cli.BoolFlag{Name: "no-summary", Usage: "at exit, print only the counts line"},
		&cli.BoolFlag{Name: "full-summary", Usage: "at exit, print the session's whole profile table (capsrec profile's) on stderr"},
		&cli.StringSliceFlag{Name: "pod", Usage: "only checks in this pod (name or glob); repeatable; filtered in the kernel"},
		&cli.StringSliceFlag{Name: "namespace", Aliases: []string{"n"}, Usage: "only pods in this namespace (name or glob); repeatable"},
		&cli.StringSliceFlag{Name: "container", Usage: "only this container of the pods (name or glob); repeatable"},
		&cli.StringFlag{Name: "selector", Aliases: []string{"l"}, Usage: "only pods whose labels match this Kubernetes label selector (app=web,tier!=db)"},
		&cli.BoolFlag{Name: "host", Usage: "only processes in no container"},
		&cli.BoolFlag{Name: "all", Usage: "also show kernel probes and container runtime setup (hidden by default, counted in the kernel)"},
		runtimeBinaryFlag,
	},
	Action: runRecord,
}

// WideFlag keeps lines whole on a terminal, as they are on a pipe.
var WideFlag = &cli.BoolFlag{Name: "wide", Usage: "on a terminal too, write every field whole, whatever its width (a pipe always gets whole lines)"}

// recordStats are the user-space counts the summary line adds to the kernel's.
type recordStats struct {
	printed, filtered uint64
	// unwritten checks were formatted but never written: the reader stalled past
	// the stop, or writing failed; unwrittenWhy says which.
	unwritten    uint64
	unwrittenWhy string
	// unremembered --unique keys printed past the filter's bound; evicted
	// processes the recorder forgot early because its cache was full.
	unremembered, evicted uint64
	// other are the lines written that are no check: process_exec, the summary.
	other uint64
	// capsetUndecided: granted capset checks counted as needs, their outcome unread.
	capsetUndecided uint64
	// profiled checks went to profile -- COMMAND's profile, none printed.
	profiled uint64
}

// observation is a check as the session's profile counts it: a command's
// tree is one subject, named by its command line.
func (p *recordPlan) observation(ch *core.Check) profile.Observation {
	o := profile.FromCheck(ch)
	if len(p.command) > 0 && !o.Subject.IsContainer() {
		o.Subject = profile.Subject{Command: p.commandTitle}
	}
	return o
}

// discard is the writer of profile -- COMMAND: its output is the profile.
type discard struct{}

func (discard) Write(*core.Check) error { return nil }
func (discard) Flush() error            { return nil }

// recordPlan is what record's flags ask for, checked before anything loads.
type recordPlan struct {
	opts         session.Options
	format       string
	colored, tty bool
	width        int // stdout's columns; 0 for whole lines (a pipe, --wide)
	count        int
	checks       *filter.Filter
	pods         *filter.PodFilter
	summary      bool
	// command is record -- COMMAND's: only it and what it starts are recorded;
	// commandPath is its program, found in $PATH, commandTitle its profile's name.
	command                   []string
	commandPath, commandTitle string
	// profileFormat, set by profile -- COMMAND, writes the profile to stdout
	// in this format instead of the checks.
	profileFormat string
	style         profile.Style
}

func runRecord(c *cli.Context) error {
	plan, err := planRecord(c)
	if err != nil {
		return err
	}
	return runRecordPlan(c, plan)
}

// runRecordPlan records what plan says: open the session, start the
// command if there is one, then record until the end.
func runRecordPlan(c *cli.Context, plan *recordPlan) error {
	if err := needRoot("record"); err != nil {
		return err
	}
	plan.opts.Execs = plan.format == output.FormatJSON || plan.summary
	rec, err := openSession(c, plan.opts)
	if err != nil {
		return err
	}
	defer rec.Close()
	if len(plan.command) == 0 {
		return record(c, plan, rec)
	}
	cmd, err := startCommand(rec, plan.commandPath, plan.command)
	if err != nil {
		return err
	}
	rec.Until(cmd.session)
	return errors.Join(record(c, plan, rec), cmd.finish(c))
}

// openSession opens a session with the global flags' runtime, node and ready file.
func openSession(c *cli.Context, opts session.Options) (*session.Session, error) {
	opts.Node, opts.RuntimeEndpoint, opts.ReadyFile = nodeName(c), c.String("runtime-endpoint"), c.String("ready-file")
	opts.RuntimeBinaries, opts.Stderr = c.StringSlice("runtime-binary"), c.App.ErrWriter
	return session.Open(opts)
}

// followCommand has the kernel follow the plan's command, if it has one:
// its tree is all the session records.
func followCommand(p *recordPlan) error {
	if len(p.command) == 0 {
		return nil
	}
	if len(p.opts.Filter.Pids) > 0 {
		return errors.New("--pid and a command exclude each other: the command's processes are what is recorded")
	}
	if p.pods.Active() {
		return errors.New("a command runs on the host: pod filters (--pod, -n, --container, -l, --host) do not apply to it")
	}
	path, err := exec.LookPath(p.command[0])
	if err != nil {
		return fmt.Errorf("the command: %w", err) // before anything is loaded
	}
	p.commandPath, p.commandTitle = path, commandTitle(p.command)
	p.opts.Filter.FollowPids = true
	return nil
}

// planRecord reads and checks record's flags.
func planRecord(c *cli.Context) (*recordPlan, error) {
	p := &recordPlan{format: c.String("output"), count: c.Int("count")}
	p.opts.Duration = c.Duration("duration")
	if err := output.Formats.Check(p.format); err != nil {
		return nil, err
	}
	p.tty = isatty.IsTerminal(os.Stdout.Fd())
	switch {
	case c.Bool("wide"):
	case c.IsSet("width"): // a node pod's, for kubectl capsrec's terminal
		p.width = max(c.Int("width"), 0)
	default:
		p.width = termwidth.Of(os.Stdout)
	}
	var err error
	if p.colored, err = output.ColorFor(c.String("color"), os.Stdout); err != nil {
		return nil, err
	}
	if p.opts.Method, err = core.ParseMethod(c.String("attach")); err != nil {
		return nil, fmt.Errorf("--attach: %w", err)
	}
	files, command, dashed := commandArgs(c)
	if len(files) > 0 {
		return nil, fmt.Errorf("record takes no arguments, got %q (filters are flags: --pid, --binary, ...; a command to record goes after --)", files[0])
	}
	if dashed && len(command) == 0 {
		return nil, errors.New("no command after --: record -- COMMAND [ARGS]")
	}
	p.command = command
	if p.count < 0 {
		return nil, fmt.Errorf("--count %d: want 0 or more", p.count)
	}
	if p.opts.Duration < 0 {
		return nil, fmt.Errorf("--duration %s: want 0 or more", p.opts.Duration)
	}
	ringKiB := c.Int("ring-buffer")
	if ringKiB < 4 || ringKiB > 1<<20 || ringKiB&(ringKiB-1) != 0 {
		return nil, fmt.Errorf("--ring-buffer %d: want a power of two between 4 and 1048576 (KiB)", ringKiB)
	}
	p.opts.RingBufferSize = uint32(ringKiB) << 10
	// Wake the reader as an eighth fills; below that it polls every 25 ms.
	p.opts.WakeupBytes = p.opts.RingBufferSize / 8
	if !c.Bool("all") {
		p.opts.HideClasses = 1<<core.ClassProbe | 1<<core.ClassRuntime
	}
	p.checks, err = filter.New(filter.Options{
		Pids:     c.IntSlice("pid"),
		Comm:     c.String("comm"),
		Binaries: c.StringSlice("binary"),
		Caps:     c.StringSlice("cap"),
		Denied:   c.Bool("denied"),
		Granted:  c.Bool("granted"),
		Unique:   c.Bool("unique"),
	}, &p.opts.Filter)
	if err != nil {
		return nil, err
	}
	p.pods, err = filter.NewPodFilter(c.StringSlice("pod"), c.StringSlice("namespace"), c.StringSlice("container"), c.String("selector"), c.Bool("host"))
	if err != nil {
		return nil, err
	}
	p.opts.Pods, p.opts.Filter.Cgroups = p.pods, p.pods.KernelMode()
	if err := followCommand(p); err != nil {
		return nil, err
	}
	if err := loadBTFFlag(c, &p.opts); err != nil {
		return nil, err
	}
	p.summary = isatty.IsTerminal(os.Stderr.Fd())
	switch {
	case c.Bool("no-summary") && (c.Bool("summary") || c.Bool("full-summary")):
		return nil, errors.New("--no-summary and --summary/--full-summary: choose one")
	case c.IsSet("summary"):
		p.summary = c.Bool("summary")
	case c.Bool("full-summary"):
		p.summary = true
	case c.Bool("no-summary"):
		p.summary = false
	}
	return p, nil
}

// record prints checks until the session ends, then the summary.
func record(c *cli.Context, plan *recordPlan, rec *session.Session) error {
	// A reader that stalls (| less) must not hold the hooks or the signals.
	out := output.NewAsync(c.App.Writer, 4<<20, rec.Context().Done())
	w := checkWriter(c, plan, out)
	var prof *profile.Profile
	if plan.summary {
		prof = profile.New()
	}
	var st recordStats
	filtered, runErr := rec.Run(plan.stages(w, prof, &st))
	st.filtered = filtered
	if j, ok := w.(*tetragon.Writer); ok && runErr == nil {
		if runErr = writeSummaryLine(j, rec); runErr == nil {
			st.other++
		}
	}
	if runErr == nil {
		runErr = w.Flush()
	}
	runErr = finishOutput(rec, out, &st, runErr)
	st.unremembered, st.evicted = plan.checks.Unremembered, rec.Evicted()
	st.capsetUndecided = rec.CapsetUndecided()
	return errors.Join(runErr, report(c, plan, rec, st, prof))
}

// checkWriter is what record writes checks with: none for profile --
// COMMAND (its output is the profile), else -o's format.
func checkWriter(c *cli.Context, plan *recordPlan, out io.Writer) output.Writer {
	switch {
	case plan.profileFormat != "":
		return discard{}
	case plan.format == output.FormatJSON:
		return tetragon.NewWriter(out, nodeName(c), core.HostNamespaces())
	}
	compact := output.NewCompact(out, plan.colored, plan.width)
	if plan.tty {
		fmt.Fprintln(c.App.Writer, compact.Header())
	}
	return compact
}

// stages are record's: its filters, the summary's profile, the writer and
// --count; st counts what each did.
func (p *recordPlan) stages(w output.Writer, prof *profile.Profile, st *recordStats) session.Stages {
	stages := session.Stages{Pods: p.pods, Checks: p.checks}
	stages.Exec = func(ch *core.Check) error {
		if prof != nil {
			prof.Add(profile.FromCheck(ch)) // a container seen, and maybe its start
		}
		if p.format != output.FormatJSON {
			return nil
		}
		st.other++ // a process_exec line
		return w.Write(ch)
	}
	if prof != nil {
		stages.Profile = func(ch *core.Check) { prof.Add(p.observation(ch)) }
	}
	stages.Write = func(ch *core.Check) error {
		if p.profileFormat != "" {
			st.profiled++
			return nil
		}
		if err := w.Write(ch); err != nil {
			return err
		}
		st.printed++
		if p.count > 0 && st.printed >= uint64(p.count) {
			return session.ErrStop
		}
		return nil
	}
	stdoutPipe := output.IsPipe(os.Stdout)
	var flushed time.Time
	stages.Idle = func() error {
		// A reader that keeps pace with the kernel catches up every few
		// records: handing on a few lines each time would cost a wake-up of
		// the writing goroutine each. What waits is flushed within a poll.
		if now := time.Now(); now.Sub(flushed) >= 2*time.Millisecond {
			flushed = now
			if err := w.Flush(); err != nil {
				return err
			}
		}
		// A quiet session would notice a closed pipe only at its next check.
		if stdoutPipe && output.ReaderGone(os.Stdout) {
			return syscall.EPIPE
		}
		return nil
	}
	return stages
}

// writeSummaryLine ends a JSON stream with what the session says of itself:
// its window and what it lost, so that a profile of it knows its coverage.
func writeSummaryLine(j *tetragon.Writer, rec *session.Session) error {
	k, err := rec.Stats()
	if err != nil {
		return err
	}
	return j.WriteSummary(tetragon.Summary{Start: rec.Attached().UTC(), End: time.Now().UTC(), Seen: k.Seen, Lost: session.RecordsLost(k)})
}

// finishOutput detaches (nothing more comes from the kernel), then gives the
// reader of stdout its last lines, counting those it never takes.
func finishOutput(rec *session.Session, out *output.Async, st *recordStats, runErr error) error {
	if err := rec.Detach(); err != nil {
		runErr = errors.Join(runErr, err)
	}
	// A reader may stall for ever; a file is written at the disk's pace.
	wait, stalled := 500*time.Millisecond, "the reader of stdout stalled"
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode().IsRegular() {
		wait, stalled = time.Minute, "writing the output file took more than a minute"
	}
	written, werr := out.Close(wait)
	if runErr == nil {
		runErr = werr
	}
	// Every check formatted was written, or is counted here: still queued, or
	// still in a writer's buffer when writing failed or the reader stalled.
	lines := st.printed + st.other
	st.unwritten = min(lines-min(uint64(max(written, 0)), lines), st.printed)
	switch {
	case werr == nil:
		st.unwrittenWhy = stalled
	case errors.Is(werr, syscall.EPIPE):
		st.unwrittenWhy = "the reader of stdout went away"
	default:
		st.unwrittenWhy = "writing stdout failed"
	}
	if errors.Is(runErr, syscall.EPIPE) || errors.Is(runErr, output.ErrStalled) {
		runErr = nil // the reader went away (| head) or stalled past the stop: a normal end
	}
	return runErr
}

// report prints the summary line and, with --summary, the session's profile, on stderr.
func report(c *cli.Context, plan *recordPlan, rec *session.Session, st recordStats, prof *profile.Profile) error {
	kstats, err := rec.Stats()
	if err != nil {
		return err
	}
	if isatty.IsTerminal(os.Stderr.Fd()) {
		fmt.Fprint(c.App.ErrWriter, "\r\033[K") // not after the ^C the terminal echoed
	}
	// On a terminal wrapped at its edge; scripts get it on one line.
	if w := stderrColumns(c, plan); w > 0 {
		profile.Wrap(c.App.ErrWriter, "", "  ", summaryLine(kstats, st), w)
	} else {
		fmt.Fprintln(c.App.ErrWriter, summaryLine(kstats, st))
	}
	if kstats.WalkMismatch > 0 {
		if what := rec.WalkMismatch(); what != "" {
			fmt.Fprintf(c.App.ErrWriter, "capsrec: the first disagreement: %s\n", what)
		}
	}
	if prof == nil {
		return nil
	}
	prof.Session(rec.Attached().UTC(), time.Now().UTC(), session.RecordsLost(kstats))
	if plan.profileFormat != "" {
		WarnPartial(c, "capsrec", prof)
		return profile.Write(c.App.Writer, prof, plan.profileFormat, plan.style)
	}
	style, err := StyleFor(c, os.Stderr)
	if err != nil {
		return err
	}
	if c.IsSet("width") {
		style.Width = plan.width
	}
	if !c.Bool("full-summary") {
		profile.WriteBrief(c.App.ErrWriter, prof, style.Width, "the whole table: --full-summary; none: --no-summary; to keep the checks: -o json > rec.json, then capsrec profile rec.json")
		return nil
	}
	fmt.Fprintln(c.App.ErrWriter)
	return profile.WriteTable(c.App.ErrWriter, prof, style)
}

// stderrColumns is stderr's terminal width, or the one kubectl capsrec passed; 0: no terminal.
func stderrColumns(c *cli.Context, plan *recordPlan) int {
	if c.IsSet("width") {
		return plan.width
	}
	return termwidth.Of(os.Stderr)
}

func summaryLine(k session.Stats, u recordStats) string {
	filtered := k.Filtered + u.filtered
	var hidden uint64
	for _, n := range k.Hidden {
		hidden += n
	}
	printed, verb := u.printed-min(u.unwritten, u.printed), "printed"
	if u.profiled > 0 {
		printed, verb = u.profiled, "profiled"
	}
	s := fmt.Sprintf("capsrec: %s seen, %d %s, %d filtered, %d lost", english.Count(k.Seen, "check"), printed, verb, filtered, k.Lost)
	if u.unwritten > 0 {
		s += fmt.Sprintf(", %d not written (%s)", u.unwritten, u.unwrittenWhy)
	}
	if unread := int64(k.Seen) - int64(u.printed+u.profiled+filtered+k.Lost+hidden); unread > 0 {
		s += fmt.Sprintf(", %d not read (stopped early)", unread)
	}
	if hidden > 0 {
		s += fmt.Sprintf("; %d runtime setup and %d probe checks hidden (--all shows them)", k.Hidden[core.ClassRuntime], k.Hidden[core.ClassProbe])
	}
	if os.Getenv("CAPSREC_DEBUG_WALK") != "" {
		s += fmt.Sprintf("; walks: %d fast, %d slow, %d verified", k.FastWalks, k.SlowWalks, k.WalkVerified)
	}
	if k.WalkMismatch > 0 {
		s += fmt.Sprintf("; the fast call-site walk disagreed with the kernel's unwinder %d times and turned itself off", k.WalkMismatch)
	}
	if k.CapsetPendingFull > 0 {
		s += fmt.Sprintf("; %d granted capset checks decided by the call's arguments, not its outcome (no room to wait for it)", k.CapsetPendingFull)
	}
	if u.capsetUndecided > 0 {
		s += fmt.Sprintf("; %d granted capset checks whose thread was gone before its outcome was read (counted as needs)", u.capsetUndecided)
	}
	if k.UnwindFailed > 0 {
		s += fmt.Sprintf("; %d checks without a readable kernel stack (counted as needs)", k.UnwindFailed)
	}
	if k.LostProcess > 0 {
		s += fmt.Sprintf("; %d exec/fork/exit records lost (those processes show less)", k.LostProcess)
	}
	if k.MissedReturns > 0 {
		s += fmt.Sprintf("; %d kretprobe returns missed", k.MissedReturns)
	}
	if u.unremembered > 0 {
		s += fmt.Sprintf("; %d --unique keys past %d printed without being remembered (they may print again)", u.unremembered, filter.MaxUnique)
	}
	if u.evicted > 0 {
		s += fmt.Sprintf("; %d processes forgotten early, the process cache being full (their late checks show less)", u.evicted)
	}
	return s
}

// maxBTF bounds --btf: a kernel's BTF is 5-10 MiB, a vmlinux with it a few hundred.
const maxBTF = 1 << 30

func loadBTFFlag(c *cli.Context, opts *session.Options) error {
	path := c.String("btf")
	if path == "" {
		return nil
	}
	f, err := boundedfile.Open(path, maxBTF)
	if err != nil {
		return fmt.Errorf("--btf %s: %w", path, err)
	}
	defer f.Close()
	spec, err := btf.LoadSpecFromReader(f)
	if err != nil {
		return fmt.Errorf("--btf %s: %w", path, err)
	}
	opts.KernelBTF = spec
	return nil
}

// effectiveCaps is this process's effective capability set; false when the
// kernel does not say.
func effectiveCaps() (uint64, bool) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) != nil {
		return 0, false
	}
	return uint64(data[0].Effective) | uint64(data[1].Effective)<<32, true
}

func needRoot(cmd string) error {
	eff, ok := effectiveCaps()
	if !ok {
		return nil // the load will say
	}
	has := func(c int) bool { return eff&(1<<c) != 0 }
	if has(unix.CAP_SYS_ADMIN) || (has(unix.CAP_BPF) && has(unix.CAP_PERFMON)) {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s needs root, or CAP_BPF and CAP_PERFMON (to load BPF programs): run it with sudo", cmd)
	}
	// Root in a container may lack them: say so, before RLIMIT_MEMLOCK is blamed.
	return fmt.Errorf("%s needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN, to load BPF programs; this root has neither (a container without them?)", cmd)
}

// RecordFlags are record's flags: kubectl capsrec record forwards them.
func RecordFlags() []cli.Flag { return recordCommand.Flags }

var runtimeBinaryFlag = &cli.StringSliceFlag{Name: "runtime-binary", Usage: "a container runtime executable the runtime server runs besides those found in its root (runc, crun, youki, runsc, conmon, containerd shims); repeatable"}
