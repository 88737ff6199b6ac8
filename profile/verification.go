package profile

import (
	"fmt"
	"io"
	"strings"

	"github.com/capsrec/capsrec/internal/caps"
	"github.com/capsrec/capsrec/internal/english"
	"github.com/capsrec/capsrec/internal/textsafe"
)

// Verification is what applying a profile's patch under recording proved
// (kubectl capsrec profile --verify): which pods ran it, for how long, by
// which health signals, and the needs the kernel refused them.
type Verification struct {
	Verified bool     `json:"verified"`
	Pods     []string `json:"pods"`
	Window   string   `json:"window"` // watched this long after the rollout
	// Signals are the health signals the verdict rests on: a pod with no
	// readiness probe and no --verify-cmd is judged by Running and no restart.
	Signals  []string `json:"signals"`
	Denied   []string `json:"denied_needs"` // needs refused under the patch
	Problems []string `json:"problems"`     // what failed, a line each
	// Tries are --minimize's runs, each without one capability.
	Tries []Try `json:"minimize,omitempty"`
	// Untried are capabilities --max-tries left untried: needed, as far as anyone knows.
	Untried []ContainerCap `json:"untried,omitempty"`
	// RolledBack: the workload was put back on its template from before.
	RolledBack bool `json:"rolled_back"`
	// Outcome says what the workload was left on, for people.
	Outcome string `json:"outcome"`
}

// Try is one --minimize run: the verified patch without one capability.
type Try struct {
	Container string `json:"container"`
	Cap       string `json:"capability"`
	// Optional: the workload stayed healthy without it.
	Optional bool `json:"optional"`
	// Tolerated are its checks the kernel refused while the workload stayed
	// healthy (optional), or Problems what failed without it.
	Tolerated []string `json:"tolerated,omitempty"`
	Problems  []string `json:"problems,omitempty"`
}

// Denial is a need refused.
type Denial struct {
	Container, Cap string // Cap: Kubernetes spelling
	Text           string
}

// DeniedNeeds are the needs the profile saw refused, each with a line for
// people: capability, container, binaries and syscalls.
func DeniedNeeds(p *Profile) []Denial {
	var out []Denial
	v := textsafe.Visible
	for _, sp := range p.Subjects() {
		for _, c := range sp.SortedCaps() {
			if c.DeniedNeed == 0 {
				continue
			}
			line := fmt.Sprintf("%s denied %s to %s", caps.Name(c.Cap), english.Count(c.DeniedNeed, "time"), sp.Subject.Title())
			if len(c.Binaries) > 0 {
				line += " (" + v(strings.Join(c.Binaries, ", "))
				if len(c.Syscalls) > 0 {
					line += "; " + strings.Join(c.Syscalls, ", ")
				}
				line += ")"
			}
			out = append(out, Denial{sp.Subject.Container, caps.KubernetesName(c.Cap), line})
		}
	}
	return out
}

// Lines are v for people: comment lines in a patch, a table's footer.
func (v *Verification) Lines() []string {
	if v == nil {
		return nil
	}
	head := "verified: "
	if !v.Verified {
		head = "NOT verified: "
	}
	pods := "no pod"
	if len(v.Pods) > 0 {
		pods = english.Count(len(v.Pods), "pod") + " (" + textsafe.Visible(strings.Join(v.Pods, ", ")) + ")"
	}
	lines := []string{fmt.Sprintf("%sapplied under recording to %s, watched %s after the rollout, by %s", head, pods, v.Window, strings.Join(v.Signals, ", "))}
	if len(v.Denied) == 0 {
		lines = append(lines, "verify: no need was denied")
	}
	for _, d := range v.Denied {
		lines = append(lines, "verify: "+d)
	}
	for _, p := range v.Problems {
		lines = append(lines, "verify: "+textsafe.Visible(textsafe.OneLine(p)))
	}
	for _, t := range v.Tries {
		what := fmt.Sprintf("minimize: %s of container %s ", t.Cap, textsafe.Visible(t.Container))
		if t.Optional {
			what += "is optional: healthy without it for " + v.Window
			if len(t.Tolerated) > 0 {
				what += "; refused and tolerated: " + strings.Join(t.Tolerated, "; ")
			} else {
				what += ", and no check of it was refused"
			}
		} else {
			what += "is needed: without it " + textsafe.Visible(textsafe.OneLine(strings.Join(t.Problems, "; ")))
		}
		lines = append(lines, what)
	}
	for _, u := range v.Untried {
		lines = append(lines, fmt.Sprintf("minimize: %s of container %s was not tried (--max-tries)", u.Cap, textsafe.Visible(u.Container)))
	}
	if v.Outcome != "" {
		lines = append(lines, "verify: "+v.Outcome)
	}
	return lines
}

func writeVerification(w io.Writer, prefix string, v *Verification) {
	for _, l := range v.Lines() {
		fmt.Fprintf(w, "%s%s\n", prefix, l)
	}
}
