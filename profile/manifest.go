package profile

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/capsrec/capsrec/internal/boundedfile"
	"github.com/capsrec/capsrec/internal/caps"
	"github.com/capsrec/capsrec/internal/textsafe"
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
		JobTemplate struct {
			Spec struct {
				Template struct {
					Spec podSpec `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		} `json:"jobTemplate"`
	} `json:"spec"`
	// Items are a List's (kubectl get -o yaml of many).
	Items []json.RawMessage `json:"items"`
}

// pods is the pod spec of a workload kind, and whether the kind is one.
func (m *manifest) pods() (podSpec, bool) {
	switch m.Kind {
	case "Pod":
		return m.Spec.podSpec, true
	case "Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job", "ReplicationController":
		return m.Spec.Template.Spec, true
	case "CronJob":
		return m.Spec.JobTemplate.Spec.Template.Spec, true
	}
	return podSpec{}, false
}

// Finding is one difference between a manifest and a profile. A definite one
// holds whatever the profile missed (a need the manifest lacks, a name that is
// no capability); the others may come from what a partial profile did not see.
type Finding struct {
	Workload, Container string
	Text                string
	Definite            bool
}

func (f Finding) String() string { return f.Workload + " container " + f.Container + ": " + f.Text }

// ManifestCheck is what CheckManifest found: the differences, how many
// workloads it compared, and the documents it passed over by kind (a
// Service, a ConfigMap: no containers).
type ManifestCheck struct {
	Findings  []Finding
	Workloads int
	Ignored   map[string]int
}

// IgnoredText says which documents were passed over ("1 Service, 2 ConfigMap"); empty if none.
func (m ManifestCheck) IgnoredText() string {
	var parts []string
	for _, kind := range slices.Sorted(maps.Keys(m.Ignored)) {
		parts = append(parts, fmt.Sprintf("%d %s", m.Ignored[kind], textsafe.Visible(kind)))
	}
	return strings.Join(parts, ", ")
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// MaxManifest bounds a --check manifest.
const MaxManifest = 16 << 20

// maxListDepth bounds Lists within Lists.
const maxListDepth = 4

// CheckManifest compares the containers of the workloads (Pod, Deployment,
// DaemonSet, StatefulSet, ReplicaSet, ReplicationController, Job, CronJob) in
// a YAML file with the profile: many documents (Helm's and kustomize's
// output), Lists (kubectl get -o yaml), other kinds passed over and counted.
func CheckManifest(path string, p *Profile) (ManifestCheck, error) {
	out := ManifestCheck{Ignored: map[string]int{}}
	data, err := boundedfile.ReadFile(path, MaxManifest)
	if err != nil {
		return out, err
	}
	for i, doc := range docSeparator.Split(string(data), -1) {
		if onlyComments(doc) {
			continue
		}
		var m manifest
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			return out, fmt.Errorf("%s: document %d: %w", path, i+1, err)
		}
		if err := out.add(p, &m, path+": ", fmt.Sprintf("document %d", i+1), 0); err != nil {
			return out, err
		}
	}
	if out.Workloads == 0 {
		if len(out.Ignored) > 0 {
			return out, fmt.Errorf("%s: no workload in it, only %s (not a workload: Pod, Deployment, DaemonSet, StatefulSet, ReplicaSet, Job, CronJob)", path, out.IgnoredText())
		}
		return out, fmt.Errorf("%s: no workload in it", path)
	}
	return out, nil
}

// add compares one document (or a List's item) with the profile; where names
// it in findings, file+where in errors.
func (out *ManifestCheck) add(p *Profile, m *manifest, file, where string, depth int) error {
	if strings.HasSuffix(m.Kind, "List") && m.Items != nil {
		if depth >= maxListDepth {
			return fmt.Errorf("%s%s: Lists nested deeper than %d", file, where, maxListDepth)
		}
		for j, raw := range m.Items {
			var item manifest
			if err := json.Unmarshal(raw, &item); err != nil {
				return fmt.Errorf("%s%s, item %d: %w", file, where, j+1, err)
			}
			if err := out.add(p, &item, file, fmt.Sprintf("%s, item %d", where, j+1), depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	spec, ok := m.pods()
	if !ok {
		kind := m.Kind
		if kind == "" {
			kind = "document without a kind"
		}
		out.Ignored[kind]++
		return nil
	}
	if m.Metadata.Name == "" || len(spec.Containers) == 0 {
		return fmt.Errorf("%s%s (%s) has no name or no containers", file, where, m.Kind)
	}
	out.Workloads++
	ns := m.Metadata.Namespace
	if ns == "" {
		ns = "default"
	}
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		out.Findings = append(out.Findings, checkContainer(p, m.Kind, ns, m.Metadata.Name, c)...)
		for _, name := range unknownCapabilities(c) {
			out.Findings = append(out.Findings, Finding{ns + "/" + m.Metadata.Name, c.Name,
				fmt.Sprintf("%s names an unknown capability %q (the runtime would refuse the container)", where, name), true})
		}
	}
	return nil
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
	switch kind {
	case "Pod":
		return slices.Contains(sp.Pods, name)
	case "CronJob": // its Jobs are NAME-<minutes since the epoch>
		rest, ok := strings.CutPrefix(s.Workload, name+"-")
		return s.Workload == name || (ok && rest != "" && strings.Trim(rest, "0123456789") == "")
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
		return []Finding{{where, c.Name, "never seen in the profile", false}}
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
		out = append(out, Finding{where, c.Name, "grants capabilities it never needed: " + strings.Join(unused, ", "), false})
	}
	if len(refused) > 0 {
		out = append(out, Finding{where, c.Name, "grants capabilities the workload tried and was refused while recorded (recorded without them: whether it needs them is not known): " + strings.Join(refused, ", "), false})
	}
	if len(deniedList) > 0 {
		out = append(out, Finding{where, c.Name, "was denied capabilities the manifest does not grant: " + strings.Join(deniedList, ", "), false})
	}
	if len(missing) > 0 {
		out = append(out, Finding{where, c.Name, "needed capabilities the manifest does not grant: " + strings.Join(missing, ", "), true})
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
