package profile

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fatih/color"

	"github.com/capsrec/capsrec/internal/caps"
	"github.com/capsrec/capsrec/internal/english"
	"github.com/capsrec/capsrec/internal/termwidth"
	"github.com/capsrec/capsrec/internal/textsafe"
	"github.com/capsrec/capsrec/output"
)

// Formats are capsrec profile's -o.
var Formats = output.FormatTable{
	{Name: "table"},
	{Name: "yaml", Help: "a securityContext per container"},
	{Name: "json"},
	{Name: "docker", Help: "--cap-drop/--cap-add"},
	{Name: "systemd", Help: "host binaries, a command"},
	{Name: "patch", Help: "kubectl patch --patch-file"},
}

// ClusterFormats are kubectl capsrec profile's -o: those of a workload.
var ClusterFormats = slices.DeleteFunc(slices.Clone(Formats), func(f output.Format) bool {
	return f.Name == "docker" || f.Name == "systemd"
})

// CheckFormat rejects a format capsrec profile cannot write.
func CheckFormat(f string) error { return Formats.Check(f) }

// Write writes the profile in format; the style applies to the table.
func Write(w io.Writer, p *Profile, format string, st Style) error {
	switch format {
	case "table":
		return WriteTable(w, p, st)
	case "yaml":
		return writeYAML(w, p)
	case "json":
		return writeJSON(w, p)
	case "docker":
		return writeDocker(w, p)
	case "systemd":
		return writeSystemd(w, p)
	case "patch":
		return WritePatch(w, p, nil, PatchOptions{Alternatives: st.Alternatives, UserNS: st.UserNS})
	}
	return CheckFormat(format)
}

// Title names a subject for people.
func (s Subject) Title() string {
	v := textsafe.Visible
	if s.Command != "" {
		return "command " + v(s.Command)
	}
	if !s.IsContainer() {
		return "host " + v(s.Binary)
	}
	t := "container " + v(s.Container) + " (in no pod)"
	if s.InPod() {
		t = v(s.Namespace) + "/" + v(s.Workload) + " container " + v(s.Container)
	}
	if s.Image != "" {
		t += " (image " + v(s.Image) + ")"
	}
	return t
}

// Short names a subject in one-line messages: namespace/workload/container,
// or the host binary.
func (s Subject) Short() string {
	v := textsafe.Visible
	if s.Command != "" {
		return "command " + v(s.Command)
	}
	if !s.IsContainer() {
		return "host " + v(s.Binary)
	}
	if !s.InPod() {
		return "container " + v(s.Container)
	}
	return v(s.Namespace) + "/" + v(s.Workload) + "/" + v(s.Container)
}

// visibleList escapes each element and joins them with sep.
func visibleList(list []string, sep string) string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = textsafe.Visible(s)
	}
	return strings.Join(out, sep)
}

// Style is how a table is shown: in color or not, within Width columns (a
// terminal's; 0 for TableWidth, as on a pipe).
type Style struct {
	Colored bool
	Width   int
	// Alternatives: a patch uses the applicable capability-free alternatives;
	// UserNS: it sets hostUsers: false where every container is ready.
	Alternatives, UserNS bool
}

func (st Style) width() int {
	if st.Width <= 0 {
		return TableWidth
	}
	return st.Width
}

// WriteTable writes one block per subject: its coverage, capabilities,
// verdicts and the recommendation, within the style's width: short verdict
// words (explained once below), times of day (the date is in the coverage
// line), the first binaries and syscalls with a count of the rest, columns
// that shrink to fit. Colors are put in after the columns are laid out, so
// that they do not shift them.
func WriteTable(w io.Writer, p *Profile, st Style) error {
	green, red, dim := color.New(color.FgGreen), color.New(color.FgRed, color.Bold), color.New(color.Faint)
	for _, c := range []*color.Color{green, red, dim} {
		if st.Colored {
			c.EnableColor()
		} else {
			c.DisableColor()
		}
	}
	if p.Len() == 0 {
		_, err := fmt.Fprintln(w, "no capability checks recorded")
		return err
	}
	width := st.width()
	used := map[Verdict]bool{}
	// The recordings' window is every subject's: said once, above them.
	sharedWindow := p.Recorded.Sessions > 0
	if sharedWindow {
		Wrap(w, "recorded:", "  ", p.windowLine(p.Recorded.Start, p.Recorded.End), width)
		fmt.Fprintln(w)
	}
	for i, sp := range p.Subjects() {
		if i > 0 {
			fmt.Fprintln(w)
		}
		Wrap(w, "", "  ", sp.Subject.Title()+": "+english.Count(sp.Checks, "check"), width)
		if sp.Subject.InPod() {
			Wrap(w, "  workload", "    ", fmt.Sprintf("%s (%s); pods %s", textsafe.Visible(sp.Subject.Workload), textsafe.Visible(sp.Subject.WorkloadRule), firstOf(sp.Pods, 3, ", ")), width)
		}
		lines := p.CoverageLines(sp)
		if sharedWindow {
			lines = lines[:len(lines)-1]
		}
		for _, line := range lines {
			Wrap(w, "  ", "    ", line, width)
		}
		capsSorted := sp.SortedCaps()
		rows, at := capRows(capsSorted, width)
		for j, row := range rows {
			if j > 0 && at >= 0 && at < len(row) {
				c := capsSorted[j-1]
				used[c.Verdict()] = true
				word := c.Verdict().Short()
				paint := dim
				switch {
				case c.IsNeed():
					paint = green
				case c.Verdict() == DeniedTried:
					paint = red
				}
				if strings.HasPrefix(row[at:], word) {
					row = row[:at] + paint.Sprint(word) + row[at+len(word):]
				}
			}
			fmt.Fprintln(w, row)
		}
		r := sp.Recommend()
		if sp.Subject.IsContainer() {
			Wrap(w, "  securityContext.capabilities:", "    ", fmt.Sprintf("drop [%s], add [%s]", strings.Join(r.Drop, ", "), strings.Join(r.Add, ", ")), width)
			for _, s := range r.Sysctls {
				Wrap(w, "  pod securityContext.sysctls:", "    ", s.Name+"="+s.Value, width)
			}
			if len(r.UnusedDefaults) > 0 {
				Wrap(w, "  runtime defaults never needed:", "    ", strings.Join(r.UnusedDefaults, ", "), width)
			}
		} else {
			Wrap(w, "  needs:", "    ", "["+strings.Join(r.Add, ", ")+"]", width)
		}
		for _, note := range notes(r) {
			Wrap(w, "  note:", "    ", note, width)
		}
	}
	if len(used) > 0 {
		fmt.Fprintln(w)
	}
	for _, v := range Verdicts {
		if used[v] {
			Wrap(w, v.Short()+":", "    ", v.Explained(), width)
		}
	}
	if p.Ignored > 0 || p.Skipped > 0 {
		fmt.Fprintln(w)
		Wrap(w, "", "", fmt.Sprintf("%s of other hooks ignored, %s skipped", english.Count(p.Ignored, "event"), english.Count(p.Skipped, "malformed line")), width)
	}
	if p.Folded > 0 {
		fmt.Fprintln(w)
		Wrap(w, "", "", fmt.Sprintf("%s of host binaries past the first %d are profiled together as %s", english.Count(p.Folded, "check"), MaxHostBinaries, OtherBinaries), width)
	}
	if lines := p.Verification.Lines(); len(lines) > 0 {
		fmt.Fprintln(w)
		for _, l := range lines {
			Wrap(w, "", "    ", l, width)
		}
	}
	return nil
}

// MaxBriefLines bounds the subjects WriteBrief lists.
const MaxBriefLines = 10

// WriteBrief writes the profile as a few lines, for the end of a session on a
// terminal: a line per subject that needs or was refused something (its add
// list, what was denied, whether its start was seen), a count of the rest, and
// where to see more; each line within width columns.
func WriteBrief(w io.Writer, p *Profile, width int, more string) {
	if width <= 0 {
		width = TableWidth
	}
	type line struct{ name, what string }
	var lines []line
	quiet := 0
	for _, sp := range p.Subjects() {
		r := sp.Recommend()
		if len(r.Add) == 0 && len(r.Denied) == 0 {
			quiet++
			continue
		}
		what := "needs [" + strings.Join(r.Add, ", ") + "]"
		if sp.Subject.IsContainer() {
			what = "add [" + strings.Join(r.Add, ", ") + "]"
		}
		if len(r.Denied) > 0 {
			what += ", denied [" + strings.Join(r.Denied, ", ") + "]"
		}
		if sp.Subject.IsContainer() && !sp.Coverage().StartObserved {
			what += ", start not observed"
		}
		lines = append(lines, line{sp.Subject.Short(), what})
	}
	fmt.Fprintf(w, "capsrec: the session's profile, %s:\n", english.Count(p.Len(), "subject"))
	nameWidth := 0
	for _, l := range lines {
		nameWidth = max(nameWidth, termwidth.Width(l.name))
	}
	nameWidth = min(nameWidth, max(width/2-2, 12))
	for i, l := range lines {
		if i == MaxBriefLines {
			fmt.Fprintf(w, "  and %d more that need or were refused something\n", len(lines)-i)
			break
		}
		row := termwidth.Pad(nil, termwidth.Middle(l.name, nameWidth), nameWidth)
		fmt.Fprintln(w, termwidth.End("  "+string(row)+"  "+l.what, width))
	}
	if quiet > 0 {
		fmt.Fprintf(w, "  and %s that needed nothing\n", english.Count(quiet, "subject"))
	}
	if more != "" {
		Wrap(w, " ", "    ", more, width)
	}
}

// capRows lays the capability table out in at most width columns, and says
// where its VERDICT column starts: the binaries and syscalls cells shrink
// first, then the times go; a row still too wide (counts of many digits in a
// very narrow terminal) is cut at the edge.
func capRows(list []*CapStats, width int) (rows []string, verdictAt int) {
	binaries, syscalls, times := 32, 16, true
	for {
		var table strings.Builder
		tw := tabwriter.NewWriter(&table, 0, 4, 2, ' ', 0)
		header := "  CAPABILITY\tGRANT\tDENY\tVERDICT\tBINARIES\tSYSCALLS"
		if times {
			header += "\tFIRST\tLAST"
		}
		fmt.Fprintln(tw, header)
		for _, c := range list {
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\t%s", caps.Name(c.Cap), c.Granted, c.Denied, c.Verdict().Short(), cell(c.Binaries, binaries, true), cell(c.Syscalls, syscalls, false))
			if times {
				fmt.Fprintf(tw, "\t%s\t%s", timeOfDay(c.First), timeOfDay(c.Last))
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
		rows = strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n")
		widest := 0
		for _, row := range rows {
			widest = max(widest, termwidth.Width(row))
		}
		switch over := widest - width; {
		case over <= 0:
		case binaries > 12:
			binaries = max(binaries-over, 12)
			continue
		case syscalls > 8:
			syscalls = max(syscalls-over, 8)
			continue
		case times:
			times = false
			continue
		default:
			for i, row := range rows {
				rows[i] = termwidth.End(row, width)
			}
		}
		return rows, strings.Index(rows[0], "VERDICT")
	}
}

// firstOf shows the first n of list, escaped, and how many more there are.
func firstOf(list []string, n int, sep string) string {
	if len(list) <= n {
		return visibleList(list, sep)
	}
	return fmt.Sprintf("%s +%d", visibleList(list[:n], sep), len(list)-n)
}

// cell shows the first of list, escaped, with a count of the rest, in at most
// width columns: a path keeps its end (the binary's name), a name its start.
func cell(list []string, width int, keepEnd bool) string {
	if len(list) == 0 {
		return "-"
	}
	more := ""
	if len(list) > 1 {
		more = fmt.Sprintf(" +%d", len(list)-1)
	}
	first := []rune(textsafe.Visible(list[0]))
	if room := width - len(more); len(first) > room {
		if keepEnd {
			first = append([]rune("..."), first[len(first)-(room-3):]...)
		} else {
			first = append(first[:room-3], []rune("...")...)
		}
	}
	return string(first) + more
}

// timeOfDay is a check's time in the table: the date is in the coverage line.
func timeOfDay(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("15:04:05")
}

// Partial tells whether the profile may lack a need of sp: its container's
// start was not seen in every pod, or the recordings lost checks, or do not
// say whether they did.
func (p *Profile) Partial(sp *SubjectProfile) bool {
	return (sp.Subject.IsContainer() && !sp.Coverage().StartObserved) || p.Recorded.Sessions == 0 || p.Recorded.Lost > 0
}

// StartNotObserved is the warning of a profile that did not see a container start.
const StartNotObserved = "start not observed: start-time needs may be missing; record from before it starts (kubectl capsrec profile --restart)"

// CoverageLines say, for people, what the recordings saw of sp: for a
// container whether its start was seen, then the window and what was lost.
func (p *Profile) CoverageLines(sp *SubjectProfile) []string {
	var lines []string
	c := sp.Coverage()
	if sp.Subject.IsContainer() {
		inPods := sp.Subject.InPod() // a container of no pod has one start to see
		switch {
		case c.StartObserved && inPods:
			lines = append(lines, fmt.Sprintf("coverage: start observed in %d of %d pods", c.PodsStarted, c.Pods))
		case c.StartObserved:
			lines = append(lines, "coverage: start observed")
		case inPods:
			seen := fmt.Sprintf("start not observed (seen in %d of %d pods)", c.PodsStarted, c.Pods)
			lines = append(lines, "coverage: "+strings.Replace(StartNotObserved, "start not observed", seen, 1))
		default:
			lines = append(lines, "coverage: "+StartNotObserved)
		}
	}
	first, last := c.First, c.Last
	if p.Recorded.Sessions > 0 {
		first, last = p.Recorded.Start, p.Recorded.End
	}
	return append(lines, p.windowLine(first, last))
}

// windowLine is the window from first to last, and what the recordings lost in it.
func (p *Profile) windowLine(first, last time.Time) string {
	r := p.Recorded
	window := "window " + span(first, last)
	switch {
	case r.Sessions == 0:
		window += "; losses unknown (no capsrec summary in the input)"
	case r.Lost > 0:
		window += "; " + english.Count(r.Lost, "record") + " lost: partial"
	default:
		window += "; " + english.Count(r.Sessions, "recording") + ", nothing lost"
	}
	return window
}

// span is a time window in UTC, its date said once when it is one day.
func span(a, b time.Time) string {
	if a.IsZero() || b.IsZero() {
		return "unknown"
	}
	a, b = a.UTC(), b.UTC()
	if a.Format("2006-01-02") == b.Format("2006-01-02") {
		return a.Format("2006-01-02 15:04:05") + " to " + b.Format("15:04:05") + " UTC"
	}
	return a.Format("2006-01-02 15:04:05") + " to " + b.Format("2006-01-02 15:04:05") + " UTC"
}

// Wrap breaks text at spaces into lines of at most width columns, each after
// prefix (the first) or indent (the rest); a word longer than a line (a long
// image or path) is broken where the line ends.
func Wrap(w io.Writer, prefix, indent, text string, width int) {
	line := prefix
	for i, word := range strings.Fields(text) {
		if i > 0 && termwidth.Width(line)+1+termwidth.Width(word) > width {
			fmt.Fprintln(w, line)
			line = indent
		}
		if !strings.HasSuffix(line, " ") && line != "" && line != indent {
			line += " "
		}
		for room := width - termwidth.Width(line); termwidth.Width(word) > room && room > 0 && width > termwidth.Width(indent)+8; room = width - termwidth.Width(line) {
			head := termwidth.Head(word, room)
			fmt.Fprintln(w, line+head)
			line, word = indent, word[len(head):]
		}
		line += word
	}
	fmt.Fprintln(w, line)
}

// TableWidth is the width the profile table keeps to.
const TableWidth = 120

// NonRootNote and NoCallSiteNote explain a recommendation's limits.
const (
	NonRootNote    = "these needs were asked by a non-root user: capabilities.add alone does not raise a non-root process's effective set (kubernetes/kubernetes#56374); run as root with drop ALL + add, or give the binary file capabilities (setcap) or ambient ones"
	NoCallSiteNote = "some events carry no call site (Tetragon's): kernel probes and runtime setup count as needs there unless marked noaudit"
)

// writeDenied comments on what was refused and is not in the add list.
func writeDenied(w io.Writer, prefix string, r Recommendation) {
	if len(r.Denied) > 0 {
		fmt.Fprintf(w, "%sdenied: %s: the workload tried and was refused; add only if that operation is wanted\n", prefix, strings.Join(r.Denied, ", "))
	}
}

func writeNotes(w io.Writer, prefix string, r Recommendation) {
	for _, note := range notes(r) {
		fmt.Fprintln(w, prefix+note)
	}
}

func notes(r Recommendation) []string {
	var n []string
	if r.NonRoot {
		n = append(n, NonRootNote)
	}
	if r.NoCallSite {
		n = append(n, NoCallSiteNote)
	}
	n = append(n, alternativeNotes(r)...)
	return append(n, readinessNote(r.UserNS)...)
}

// writeCoverage writes the coverage lines as comments.
func (p *Profile) writeCoverage(w io.Writer, sp *SubjectProfile) {
	for _, line := range p.CoverageLines(sp) {
		fmt.Fprintf(w, "# %s\n", line)
	}
}

// writeYAML writes, per container, a securityContext document that parses
// into Kubernetes' SecurityContext; comments say which container and why.
func writeYAML(w io.Writer, p *Profile) error {
	writeVerification(w, "# ", p.Verification)
	n := 0
	for _, sp := range p.Subjects() {
		if !sp.Subject.IsContainer() {
			continue
		}
		if n > 0 {
			fmt.Fprintln(w, "---")
		}
		n++
		r := sp.Recommend()
		fmt.Fprintf(w, "# %s\n", sp.Subject.Title())
		fmt.Fprintf(w, "# namespace: %s, workload: %s, container: %s\n", textsafe.Visible(sp.Subject.Namespace), textsafe.Visible(sp.Subject.Workload), textsafe.Visible(sp.Subject.Container))
		writeDenied(w, "# ", r)
		writeNotes(w, "# note: ", r)
		p.writeCoverage(w, sp)
		fmt.Fprintln(w, "capabilities:")
		fmt.Fprintf(w, "  drop: [%s]\n", strings.Join(r.Drop, ", "))
		fmt.Fprintf(w, "  add: [%s]\n", strings.Join(r.Add, ", "))
	}
	if n == 0 {
		_, err := fmt.Fprintln(w, "# no containers in this profile")
		return err
	}
	return nil
}

type jsonSubject struct {
	Subject
	Pods           []string           `json:"pods,omitempty"`
	Checks         uint64             `json:"checks"`
	Capabilities   map[string]jsonCap `json:"capabilities"`
	Recommendation Recommendation     `json:"recommendation"`
	Coverage       jsonCoverage       `json:"coverage"`
}

type jsonCoverage struct {
	Coverage
	Partial bool `json:"partial"`
}

type jsonRecorded struct {
	Recorded
	Start       *time.Time `json:"start,omitempty"`
	End         *time.Time `json:"end,omitempty"`
	LossesKnown bool       `json:"losses_known"`
}

type jsonCap struct {
	*CapStats
	Verdict Verdict `json:"verdict"`
}

func writeJSON(w io.Writer, p *Profile) error {
	out := struct {
		Subjects []jsonSubject `json:"subjects"`
		Ignored  uint64        `json:"ignored_events"`
		Skipped  uint64        `json:"skipped_lines"`
		Folded   uint64        `json:"folded_checks,omitempty"`
		Recorded jsonRecorded  `json:"recorded"`
		Verified *Verification `json:"verification,omitempty"`
	}{Verified: p.Verification, Subjects: []jsonSubject{}, Ignored: p.Ignored, Skipped: p.Skipped, Folded: p.Folded,
		Recorded: jsonRecorded{Recorded: p.Recorded, LossesKnown: p.Recorded.Sessions > 0}}
	if r := p.Recorded; r.Sessions > 0 {
		out.Recorded.Start, out.Recorded.End = &r.Start, &r.End
	}
	for _, sp := range p.Subjects() {
		js := jsonSubject{Subject: sp.Subject, Pods: sp.Pods, Checks: sp.Checks, Capabilities: map[string]jsonCap{}, Recommendation: sp.Recommend(),
			Coverage: jsonCoverage{Coverage: sp.Coverage(), Partial: p.Partial(sp)}}
		for _, c := range sp.SortedCaps() {
			js.Capabilities[caps.Name(c.Cap)] = jsonCap{CapStats: c, Verdict: c.Verdict()}
		}
		out.Subjects = append(out.Subjects, js)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func writeDocker(w io.Writer, p *Profile) error {
	n := 0
	for _, sp := range p.Subjects() {
		if !sp.Subject.IsContainer() {
			continue
		}
		n++
		r := sp.Recommend()
		fmt.Fprintf(w, "# %s\n", sp.Subject.Title())
		writeDenied(w, "# ", r)
		writeNotes(w, "# note: ", r)
		p.writeCoverage(w, sp)
		fmt.Fprint(w, "--cap-drop=ALL")
		for _, a := range r.Add {
			fmt.Fprintf(w, " --cap-add=%s", a)
		}
		fmt.Fprintln(w)
	}
	if n == 0 {
		_, err := fmt.Fprintln(w, "# no containers in this profile")
		return err
	}
	return nil
}

func writeSystemd(w io.Writer, p *Profile) error {
	n := 0
	for _, sp := range p.Subjects() {
		if sp.Subject.IsContainer() {
			continue
		}
		var names []string
		for _, c := range sp.SortedCaps() {
			if c.IsNeed() {
				names = append(names, caps.Name(c.Cap))
			}
		}
		n++
		fmt.Fprintf(w, "# %s\n", strings.TrimPrefix(sp.Subject.Short(), "host "))
		writeDenied(w, "# ", sp.Recommend())
		p.writeCoverage(w, sp)
		fmt.Fprintf(w, "CapabilityBoundingSet=%s\n", strings.Join(names, " "))
		fmt.Fprintf(w, "AmbientCapabilities=%s\n", strings.Join(names, " "))
	}
	if n == 0 {
		_, err := fmt.Fprintln(w, "# no host binaries in this profile")
		return err
	}
	return nil
}
