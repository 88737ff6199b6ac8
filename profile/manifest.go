package profile

import (
	"github.com/capsrec/capsrec/internal/boundedfile"

	"fmt"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/capsrec/capsrec/internal/caps"
)

type manifestContainer struct {
	Name            string `json:"name"`
	SecurityContext *struct {
		Privileged   *bool `json:"privileged"`
		Capabilities *struct {
			Add  []string `json:"add"`
			Drop []string `json:"drop"`
		} `json:"capabilities"`
	} `json:"securityContext"`
}

type podSpec struct {
	Containers     []manifestContainer `json:"containers"`
	InitContainers []manifestContainer `json:"initContainers"`
}

type manifest struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		podSpec
		Template struct {
			Spec podSpec `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

// Finding is one difference between a manifest and a profile.
type Finding struct {
	Workload, Container string
	Text                string
}

func (f Finding) String() string { return f.Workload + " container " + f.Container + ": " + f.Text }

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// MaxManifest bounds a --check manifest.
const MaxManifest = 16 << 20

// CheckManifest compares the containers of the Pods, Deployments, DaemonSets,
// StatefulSets, ReplicaSets and Jobs in a YAML file with the profile.
func CheckManifest(path string, p *Profile) ([]Finding, error) {
	data, err := boundedfile.ReadFile(path, MaxManifest)
	if err != nil {
		return nil, err
	}
	var findings []Finding
	workloads := 0
	for i, doc := range docSeparator.Split(string(data), -1) {
		if onlyComments(doc) {
			continue
		}
		var m manifest
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i+1, err)
		}
		spec := m.Spec.Template.Spec
		switch m.Kind {
		case "Pod":
			spec = m.Spec.podSpec
		case "Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job":
		default:
			return nil, fmt.Errorf("%s: document %d is a %q, not a workload (Pod, Deployment, DaemonSet, StatefulSet, ReplicaSet, Job)", path, i+1, m.Kind)
		}
		if m.Metadata.Name == "" || len(spec.Containers) == 0 {
			return nil, fmt.Errorf("%s: document %d (%s) has no name or no containers", path, i+1, m.Kind)
		}
		workloads++
		ns := m.Metadata.Namespace
		if ns == "" {
			ns = "default"
		}
		for _, c := range append(spec.InitContainers, spec.Containers...) {
			findings = append(findings, checkContainer(p, m.Kind, ns, m.Metadata.Name, c)...)
			for _, name := range unknownCapabilities(c) {
				findings = append(findings, Finding{ns + "/" + m.Metadata.Name, c.Name,
					fmt.Sprintf("document %d names an unknown capability %q (the runtime would refuse the container)", i+1, name)})
			}
		}
	}
	if workloads == 0 {
		return nil, fmt.Errorf("%s: no workload in it", path)
	}
	return findings, nil
}

// onlyComments tells a document with nothing but blank and comment lines.
func onlyComments(doc string) bool {
	for line := range strings.SplitSeq(doc, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// unknownCapabilities lists the names in a container's add and drop lists that
// are no capability (SYS_ADMINN, NET-ADMIN).
func unknownCapabilities(c manifestContainer) []string {
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		return nil
	}
	var unknown []string
	for _, name := range append(slices.Clone(sc.Capabilities.Add), sc.Capabilities.Drop...) {
		if strings.EqualFold(name, "ALL") {
			continue
		}
		if _, err := caps.Parse(name); err != nil {
			unknown = append(unknown, name)
		}
	}
	return unknown
}

func (sp *SubjectProfile) matches(kind, ns, name, container string) bool {
	s := sp.Subject
	if !s.IsContainer() || s.Namespace != ns || s.Container != container {
		return false
	}
	if kind == "Pod" {
		return slices.Contains(sp.Pods, name)
	}
	return s.Workload == name
}

func checkContainer(p *Profile, kind, ns, name string, c manifestContainer) []Finding {
	where := ns + "/" + name
	var subjects []*SubjectProfile
	for _, sp := range p.Subjects() {
		if sp.matches(kind, ns, name, c.Name) {
			subjects = append(subjects, sp)
		}
	}
	if len(subjects) == 0 {
		return []Finding{{where, c.Name, "never seen in the profile"}}
	}
	granted := grantedBy(c)
	needed, denied := map[int]bool{}, map[int]bool{}
	for _, sp := range subjects {
		for _, cs := range sp.Caps {
			if cs.IsNeed() {
				needed[cs.Cap] = true
			} else if cs.Verdict() == DeniedTried {
				denied[cs.Cap] = true
			}
		}
	}
	var unused, refused, deniedList, missing []string
	for v := range caps.All {
		switch {
		case granted[v] && denied[v] && !needed[v]:
			refused = append(refused, caps.KubernetesName(v)) // recorded without it: tried, not known unneeded
		case granted[v] && !needed[v]:
			unused = append(unused, caps.KubernetesName(v))
		case !granted[v] && needed[v]:
			missing = append(missing, caps.KubernetesName(v))
		case !granted[v] && denied[v]:
			deniedList = append(deniedList, caps.KubernetesName(v))
		}
	}
	var out []Finding
	if len(unused) > 0 {
		out = append(out, Finding{where, c.Name, "grants capabilities it never needed: " + strings.Join(unused, ", ")})
	}
	if len(refused) > 0 {
		out = append(out, Finding{where, c.Name, "grants capabilities the workload tried and was refused while recorded (recorded without them: whether it needs them is not known): " + strings.Join(refused, ", ")})
	}
	if len(deniedList) > 0 {
		out = append(out, Finding{where, c.Name, "was denied capabilities the manifest does not grant: " + strings.Join(deniedList, ", ")})
	}
	if len(missing) > 0 {
		out = append(out, Finding{where, c.Name, "needed capabilities the manifest does not grant: " + strings.Join(missing, ", ")})
	}
	return out
}

// grantedBy computes a container's capabilities: the runtime's defaults, less
// drop (ALL drops every one), plus add; privileged grants everything.
func grantedBy(c manifestContainer) map[int]bool {
	g := map[int]bool{}
	sc := c.SecurityContext
	if sc != nil && sc.Privileged != nil && *sc.Privileged {
		for v := range caps.All {
			g[v] = true
		}
		return g
	}
	for _, d := range RuntimeDefaults {
		g[d] = true
	}
	if sc == nil || sc.Capabilities == nil {
		return g
	}
	for _, d := range sc.Capabilities.Drop {
		if strings.EqualFold(d, "ALL") {
			clear(g)
			continue
		}
		if v, err := caps.Parse(d); err == nil {
			delete(g, v)
		}
	}
	for _, a := range sc.Capabilities.Add {
		if strings.EqualFold(a, "ALL") {
			for v := range caps.All {
				g[v] = true
			}
			continue
		}
		if v, err := caps.Parse(a); err == nil {
			g[v] = true
		}
	}
	return g
}
