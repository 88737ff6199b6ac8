package profile

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/capsrec/capsrec/internal/textsafe"
)

// PatchTarget is a workload as the API names it, and which of its containers
// are init containers: known when the pod template was read (kubectl capsrec),
// else guessed from the pod names (capsrec profile).
type PatchTarget struct {
	Kind, Name, Namespace string // Kind: deployment, daemonset, statefulset, ...; "" unknown
	Init                  map[string]bool
	InitKnown             bool
}

// kindOfRule guesses the kind a workload rule (Workload's) points to.
func kindOfRule(rule string) string {
	switch {
	case strings.HasPrefix(rule, "Deployment"):
		return "deployment"
	case strings.HasPrefix(rule, "StatefulSet"):
		return "statefulset"
	case strings.HasPrefix(rule, "DaemonSet"):
		return "daemonset" // or a Job's: its pods are named alike
	}
	return ""
}

// WritePatch writes, per workload, a strategic merge patch that `kubectl
// patch KIND/NAME --patch-file` applies as is: each container (init
// containers apart, by name) drops ALL and adds what it needs. targets names
// the workloads by namespace/workload; a workload missing there is named by
// its pods' names. Options: the applicable capability-free alternatives
// replace the capabilities they grant; hostUsers: false where every
// container is ready for it.
func WritePatch(w io.Writer, p *Profile, targets map[string]PatchTarget, o PatchOptions) error {
	byWorkload := map[string][]*SubjectProfile{}
	var order []string
	for _, sp := range p.Subjects() {
		if !sp.Subject.IsContainer() {
			continue
		}
		k := sp.Subject.Namespace + "/" + sp.Subject.Workload
		if _, ok := byWorkload[k]; !ok {
			order = append(order, k)
		}
		byWorkload[k] = append(byWorkload[k], sp)
	}
	if len(order) == 0 {
		_, err := fmt.Fprintln(w, "# no containers in this profile")
		return err
	}
	slices.Sort(order)
	for i, k := range order {
		if i > 0 {
			fmt.Fprintln(w, "---")
		}
		subjects := byWorkload[k]
		t, ok := targets[k]
		if !ok {
			s := subjects[0].Subject
			t = PatchTarget{Kind: kindOfRule(s.WorkloadRule), Name: s.Workload, Namespace: s.Namespace}
		}
		p.writeWorkloadPatch(w, t, subjects, o)
	}
	return nil
}

// PatchOptions are what a patch may set beyond the capabilities.
type PatchOptions struct {
	Alternatives bool // the applicable capability-free alternatives
	UserNS       bool // hostUsers: false, when every container is ready
	// Omit are capabilities (Kubernetes spelling) a container's add leaves
	// out, by container name: those a --minimize run proved optional.
	Omit map[string][]string
}

// recommend is sp's recommendation as the patch writes it.
func (o PatchOptions) recommend(sp *SubjectProfile) Recommendation {
	r := sp.Recommend()
	if o.Alternatives {
		r = r.WithAlternatives()
	}
	if omit := o.Omit[sp.Subject.Container]; len(omit) > 0 {
		r.Add = slices.DeleteFunc(slices.Clone(r.Add), func(c string) bool { return slices.Contains(omit, c) })
		r.NonRoot = r.NonRoot && len(r.Add) > 0
	}
	return r
}

// ContainerCap is one capability a container's patch adds.
type ContainerCap struct {
	Container, Cap string
}

// PatchAdds are what the patch of p's containers adds, in the order it writes them.
func (p *Profile) PatchAdds(o PatchOptions) []ContainerCap {
	var out []ContainerCap
	for _, sp := range p.Subjects() {
		if !sp.Subject.IsContainer() {
			continue
		}
		for _, c := range o.recommend(sp).Add {
			out = append(out, ContainerCap{sp.Subject.Container, c})
		}
	}
	return out
}

func (p *Profile) writeWorkloadPatch(w io.Writer, t PatchTarget, subjects []*SubjectProfile, o PatchOptions) {
	v := textsafe.Visible
	kind := t.Kind
	if kind == "" {
		kind = "KIND"
	}
	fmt.Fprintf(w, "# kubectl patch %s/%s -n %s --patch-file FILE\n", kind, v(t.Name), v(t.Namespace))
	writeVerification(w, "# ", p.Verification)
	switch t.Kind {
	case "daemonset":
		if !t.InitKnown {
			fmt.Fprintf(w, "# (pods named NAME-<5> belong to a DaemonSet or a Job: a Job's template cannot be patched)\n")
		}
	case "":
		fmt.Fprintf(w, "# the kind is not known from the pod names: a bare Pod's containers cannot be patched, only its manifest\n")
	}
	var containers, inits []*SubjectProfile
	for _, sp := range subjects {
		if t.Init[sp.Subject.Container] {
			inits = append(inits, sp)
		} else {
			containers = append(containers, sp)
		}
	}
	if !t.InitKnown {
		fmt.Fprintf(w, "# init containers are not known here: move any of these to initContainers (kubectl capsrec knows them)\n")
	}
	for _, sp := range subjects {
		for _, line := range p.CoverageLines(sp) {
			fmt.Fprintf(w, "# %s: %s\n", v(sp.Subject.Container), line)
		}
		writeDenied(w, "# "+v(sp.Subject.Container)+": ", o.recommend(sp))
		writeNotes(w, "# "+v(sp.Subject.Container)+": note: ", o.recommend(sp))
	}
	fmt.Fprintln(w, "spec:\n  template:\n    spec:")
	var sysctls []Sysctl // pod-level: every container's
	for _, sp := range subjects {
		for _, s := range o.recommend(sp).Sysctls {
			sysctls = mergeSysctls(sysctls, s)
		}
	}
	if len(sysctls) > 0 {
		fmt.Fprintln(w, "      # a patch replaces the pod's sysctls list: add any it already has")
		fmt.Fprintln(w, "      securityContext:\n        sysctls:")
		for _, s := range sysctls {
			fmt.Fprintf(w, "        - name: %s\n          value: %s\n", s.Name, yamlString(s.Value))
		}
	}
	if o.UserNS {
		writeHostUsers(w, subjects)
	}
	for _, part := range []struct {
		key  string
		list []*SubjectProfile
	}{{"containers", containers}, {"initContainers", inits}} {
		if len(part.list) == 0 {
			continue
		}
		fmt.Fprintf(w, "      %s:\n", part.key)
		for _, sp := range part.list {
			r := o.recommend(sp)
			fmt.Fprintf(w, "      - name: %s\n", yamlString(sp.Subject.Container))
			fmt.Fprintf(w, "        securityContext:\n          capabilities:\n")
			fmt.Fprintf(w, "            drop: [%s]\n            add: [%s]\n", strings.Join(r.Drop, ", "), strings.Join(r.Add, ", "))
		}
	}
}

// yamlString quotes a name for YAML: container names are DNS labels, but a
// recording may hold anything.
func yamlString(s string) string {
	return fmt.Sprintf("%q", s)
}

// writeHostUsers sets hostUsers: false when every container is ready for a
// user namespace of its own, and says why not otherwise.
func writeHostUsers(w io.Writer, subjects []*SubjectProfile) {
	ready := true
	for _, sp := range subjects {
		if r := sp.UserNSReadiness(); r == nil || !r.Ready {
			ready = false
			fmt.Fprintf(w, "      # hostUsers: false is not set: %s is not ready for it (see its note)\n", textsafe.Visible(sp.Subject.Container))
		}
	}
	if ready {
		fmt.Fprintln(w, "      hostUsers: false")
	}
}
