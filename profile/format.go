package profile

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fatih/color"

	"github.com/capsrec/capsrec/internal/caps"
	"github.com/capsrec/capsrec/internal/textsafe"
	"github.com/capsrec/capsrec/output"
)

// Formats of capsrec profile's -o.
var Formats = []string{"table", "yaml", "json", "docker", "systemd", "patch"}

// CheckFormat rejects a format capsrec profile cannot write.
func CheckFormat(f string) error { return output.CheckFormat(f, Formats) }

// Write writes the profile in format; colored applies to the table.
func Write(w io.Writer, p *Profile, format string, colored bool) error {
	switch format {
	case "table":
		return WriteTable(w, p, colored)
	case "yaml":
		return writeYAML(w, p)
	case "json":
		return writeJSON(w, p)
	case "docker":
		return writeDocker(w, p)
	case "systemd":
		return writeSystemd(w, p)
	case "patch":
		return WritePatch(w, p, nil)
	}
	return CheckFormat(format)
}

// Title names a subject for people.
func (s Subject) Title() string {
	v := textsafe.Visible
	if !s.IsContainer() {
		return "host " + v(s.Binary)
	}
	t := v(s.Namespace) + "/" + v(s.Workload) + " container " + v(s.Container)
	if s.Image != "" {
		t += " (image " + v(s.Image) + ")"
	}
	return t
}

// Short names a subject in one-line messages: namespace/workload/container,
// or the host binary.
func (s Subject) Short() string {
	v := textsafe.Visible
	if !s.IsContainer() {
		return "host " + v(s.Binary)
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

// WriteTable writes one block per subject: its coverage, capabilities,
// verdicts and the recommendation, within 120 columns: short verdict words
// (explained once below), times of day (the date is in the coverage line), the
// first binaries and syscalls with a count of the rest. Colors are put in
// after the columns are laid out, so that they do not shift them.
func WriteTable(w io.Writer, p *Profile, colored bool) error {
	green, red, dim := color.New(color.FgGreen), color.New(color.FgRed, color.Bold), color.New(color.Faint)
	for _, c := range []*color.Color{green, red, dim} {
		if colored {
			c.EnableColor()
		} else {
			c.DisableColor()
		}
	}
	if p.Len() == 0 {
		_, err := fmt.Fprintln(w, "no capability checks recorded")
		return err
	}
	used := map[Verdict]bool{}
	for i, sp := range p.Subjects() {
		if i > 0 {
			fmt.Fprintln(w)
		}
		Wrap(w, "", "  ", fmt.Sprintf("%s: %d checks", sp.Subject.Title(), sp.Checks), TableWidth)
		if sp.Subject.IsContainer() {
			Wrap(w, "  workload", "    ", fmt.Sprintf("%s (%s); pods %s", textsafe.Visible(sp.Subject.Workload), textsafe.Visible(sp.Subject.WorkloadRule), firstOf(sp.Pods, 3, ", ")), TableWidth)
		}
		for _, line := range p.CoverageLines(sp) {
			Wrap(w, "  ", "    ", line, TableWidth)
		}
		var table strings.Builder
		tw := tabwriter.NewWriter(&table, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  CAPABILITY\tGRANT\tDENY\tVERDICT\tBINARIES\tSYSCALLS\tFIRST\tLAST")
		capsSorted := sp.SortedCaps()
		for _, c := range capsSorted {
			used[c.Verdict()] = true
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", caps.Name(c.Cap), c.Granted, c.Denied, c.Verdict().Short(),
				cell(c.Binaries, 32, true), cell(c.Syscalls, 16, false), timeOfDay(c.First), timeOfDay(c.Last))
		}
		tw.Flush()
		rows := strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n")
		at := strings.Index(rows[0], "VERDICT")
		for j, row := range rows {
			if j > 0 && at >= 0 {
				c := capsSorted[j-1]
				word := c.Verdict().Short()
				paint := dim
				switch {
				case c.IsNeed():
					paint = green
				case c.Verdict() == DeniedTried:
					paint = red
				}
				row = row[:at] + paint.Sprint(word) + row[at+len(word):]
			}
			fmt.Fprintln(w, row)
		}
		r := sp.Recommend()
		if sp.Subject.IsContainer() {
			fmt.Fprintf(w, "  securityContext.capabilities: drop [%s], add [%s]\n", strings.Join(r.Drop, ", "), strings.Join(r.Add, ", "))
			if len(r.UnusedDefaults) > 0 {
				Wrap(w, "  runtime defaults never needed:", "    ", strings.Join(r.UnusedDefaults, ", "), TableWidth)
			}
		} else {
			fmt.Fprintf(w, "  needs: [%s]\n", strings.Join(r.Add, ", "))
		}
		for _, note := range notes(r) {
			Wrap(w, "  note:", "    ", note, TableWidth)
		}
	}
	if len(used) > 0 {
		fmt.Fprintln(w)
	}
	for _, v := range Verdicts {
		if used[v] {
			Wrap(w, v.Short()+":", "    ", v.Explained(), TableWidth)
		}
	}
	if p.Ignored > 0 || p.Skipped > 0 {
		fmt.Fprintf(w, "\n%d events of other hooks ignored, %d malformed lines skipped\n", p.Ignored, p.Skipped)
	}
	if p.Folded > 0 {
		fmt.Fprintf(w, "\n%d checks of host binaries past the first %d are profiled together as %s\n", p.Folded, MaxHostBinaries, OtherBinaries)
	}
	return nil
}

// Explained is what a verdict means, for the table's legend.
func (v Verdict) Explained() string {
	switch v {
	case Needed:
		return "granted to the workload's own code: in the add list"
	case NeededNoCallSite:
		return "granted in an event without a call site (Tetragon input), not known to be noaudit: in the add list"
	case DeniedTried:
		return "the workload tried and was refused: add it only if that operation is wanted"
	case ProbeOnly:
		return "granted in kernel probes only: not needed"
	case RuntimeOnly:
		return "granted to the container runtime's setup only: not needed"
	case OverrideOnly:
		return "granted under override_creds (someone else's credentials) only: not needed"
	case UserNSOnly:
		return "granted only in a user namespace the workload made or owns (unshare -U, the namespace owner's rule): no capability of the container decides it, not needed"
	case DeniedUserNS:
		return "refused only from inside a user namespace of the workload's own: no capability added to the container would grant it"
	}
	return "denied in probes, runtime setup or override_creds only: not a need"
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
const StartNotObserved = "start not observed: start-time needs may be missing; use --restart"

// CoverageLines say, for people, what the recordings saw of sp: for a
// container whether its start was seen, then the window and what was lost.
func (p *Profile) CoverageLines(sp *SubjectProfile) []string {
	var lines []string
	c := sp.Coverage()
	if sp.Subject.IsContainer() {
		if c.StartObserved {
			lines = append(lines, fmt.Sprintf("coverage: start observed in %d of %d pods", c.PodsStarted, c.Pods))
		} else {
			lines = append(lines, fmt.Sprintf("coverage: %s (%d of %d pods)", StartNotObserved, c.PodsStarted, c.Pods))
		}
	}
	first, last := c.First, c.Last
	r := p.Recorded
	if r.Sessions > 0 {
		first, last = r.Start, r.End
	}
	window := "window " + span(first, last)
	switch {
	case r.Sessions == 0:
		window += "; losses unknown (no capsrec summary in the input)"
	case r.Lost > 0:
		window += fmt.Sprintf("; %d records lost: partial", r.Lost)
	default:
		window += fmt.Sprintf("; %d recording(s), nothing lost", r.Sessions)
	}
	return append(lines, window)
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

// Wrap breaks text at spaces into lines of at most width, each after prefix
// (the first) or indent (the rest).
func Wrap(w io.Writer, prefix, indent, text string, width int) {
	line := prefix
	for i, word := range strings.Fields(text) {
		if i > 0 && len(line)+1+len(word) > width {
			fmt.Fprintln(w, line)
			line = indent + word
			continue
		}
		if !strings.HasSuffix(line, " ") && line != "" {
			line += " "
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
	return n
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
		if len(r.Denied) > 0 {
			fmt.Fprintf(w, "# denied: %s: the workload tried and was refused; add only if that operation is wanted\n", strings.Join(r.Denied, ", "))
		}
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
	}{Subjects: []jsonSubject{}, Ignored: p.Ignored, Skipped: p.Skipped, Folded: p.Folded,
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
	for _, sp := range p.Subjects() {
		if !sp.Subject.IsContainer() {
			continue
		}
		r := sp.Recommend()
		fmt.Fprintf(w, "# %s\n", sp.Subject.Title())
		p.writeCoverage(w, sp)
		fmt.Fprint(w, "--cap-drop=ALL")
		for _, a := range r.Add {
			fmt.Fprintf(w, " --cap-add=%s", a)
		}
		fmt.Fprintln(w)
	}
	return nil
}

func writeSystemd(w io.Writer, p *Profile) error {
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
		fmt.Fprintf(w, "# %s\n", textsafe.Visible(sp.Subject.Binary))
		p.writeCoverage(w, sp)
		fmt.Fprintf(w, "CapabilityBoundingSet=%s\n", strings.Join(names, " "))
		fmt.Fprintf(w, "AmbientCapabilities=%s\n", strings.Join(names, " "))
	}
	return nil
}
