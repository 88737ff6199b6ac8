package profile

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fatih/color"

	"github.com/capsrec/capsrec/caps"
	"github.com/capsrec/capsrec/textsafe"
)

// Formats of capsrec profile's -o.
var Formats = []string{"table", "yaml", "json", "docker", "systemd"}

// CheckFormat rejects a format capsrec cannot write.
func CheckFormat(f string) error {
	for _, ok := range Formats {
		if f == ok {
			return nil
		}
	}
	return fmt.Errorf("unknown output format %q (want %s)", f, strings.Join(Formats, ", "))
}

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

// visibleList escapes each element and joins them with sep.
func visibleList(list []string, sep string) string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = textsafe.Visible(s)
	}
	return strings.Join(out, sep)
}

// WriteTable writes one block per subject: its capabilities, verdicts and the recommendation.
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
	for i, sp := range p.Subjects() {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s: %d checks\n", sp.Subject.Title(), sp.Checks)
		if sp.Subject.IsContainer() {
			fmt.Fprintf(w, "  workload %s (%s); pods %s\n", textsafe.Visible(sp.Subject.Workload), textsafe.Visible(sp.Subject.WorkloadRule), visibleList(sp.Pods, ", "))
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  CAPABILITY\tGRANTED\tDENIED\tVERDICT\tBINARIES\tSYSCALLS\tFIRST\tLAST")
		for _, c := range sp.SortedCaps() {
			v := string(c.Verdict())
			switch {
			case c.IsNeed():
				v = green.Sprint(v)
			case c.Verdict() == DeniedTried:
				v = red.Sprint(v)
			default:
				v = dim.Sprint(v)
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", caps.Name(c.Cap), c.Granted, c.Denied, v,
				visibleList(c.Binaries, ","), visibleList(c.Syscalls, ","), stamp(c.First), stamp(c.Last))
		}
		tw.Flush()
		r := sp.Recommend()
		if sp.Subject.IsContainer() {
			fmt.Fprintf(w, "  securityContext.capabilities: drop [%s], add [%s]\n", strings.Join(r.Drop, ", "), strings.Join(r.Add, ", "))
			if len(r.UnusedDefaults) > 0 {
				fmt.Fprintf(w, "  runtime defaults never needed: %s\n", strings.Join(r.UnusedDefaults, ", "))
			}
		} else {
			fmt.Fprintf(w, "  needs: [%s]\n", strings.Join(r.Add, ", "))
		}
		writeNotes(w, "  note: ", r)
	}
	if p.Ignored > 0 || p.Skipped > 0 {
		fmt.Fprintf(w, "\n%d events of other hooks ignored, %d malformed lines skipped\n", p.Ignored, p.Skipped)
	}
	if p.Folded > 0 {
		fmt.Fprintf(w, "\n%d checks of host binaries past the first %d are profiled together as %s\n", p.Folded, MaxHostBinaries, OtherBinaries)
	}
	return nil
}

// NonRootNote and NoCallSiteNote explain a recommendation's limits.
const (
	NonRootNote    = "these needs were asked by a non-root user: capabilities.add alone does not raise a non-root process's effective set (kubernetes/kubernetes#56374); run as root with drop ALL + add, or give the binary file capabilities (setcap) or ambient ones"
	NoCallSiteNote = "some events carry no call site (Tetragon's): kernel probes and runtime setup count as needs there unless marked noaudit"
)

func writeNotes(w io.Writer, prefix string, r Recommendation) {
	if r.NonRoot {
		fmt.Fprintln(w, prefix+NonRootNote)
	}
	if r.NoCallSite {
		fmt.Fprintln(w, prefix+NoCallSiteNote)
	}
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
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
	}{Subjects: []jsonSubject{}, Ignored: p.Ignored, Skipped: p.Skipped, Folded: p.Folded}
	for _, sp := range p.Subjects() {
		js := jsonSubject{Subject: sp.Subject, Pods: sp.Pods, Checks: sp.Checks, Capabilities: map[string]jsonCap{}, Recommendation: sp.Recommend()}
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
		fmt.Fprintf(w, "# %s\n--cap-drop=ALL", sp.Subject.Title())
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
		fmt.Fprintf(w, "CapabilityBoundingSet=%s\n", strings.Join(names, " "))
		fmt.Fprintf(w, "AmbientCapabilities=%s\n", strings.Join(names, " "))
	}
	return nil
}
