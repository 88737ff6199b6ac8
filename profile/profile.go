// Package profile aggregates capability checks per container or host binary
// and turns them into what a securityContext should add and drop.
package profile

import (
	"cmp"
	"maps"
	"regexp"
	"slices"
	"time"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/caps"
)

// Audit is what is known of whether the kernel audited a check; it matters
// only for events without a class (Tetragon's), where it is all there is.
type Audit uint8

const (
	AuditUnknown Audit = iota // no opts: the tracepoint, or Tetragon without them
	Audited
	NotAudited // CAP_OPT_NOAUDIT: the kernel probing, not the workload asking
)

// Subject is what a profile is about: a container, or a binary on the host.
type Subject struct {
	Namespace    string `json:"namespace,omitempty"`
	Workload     string `json:"workload,omitempty"`
	WorkloadRule string `json:"workload_rule,omitempty"`
	Pod          string `json:"pod,omitempty"`
	Container    string `json:"container,omitempty"`
	Image        string `json:"image,omitempty"`
	// Binary names a host subject; containers leave it empty.
	Binary string `json:"binary,omitempty"`
	// Command names the command line a session ran and followed (record --
	// COMMAND): every binary of its process tree is in its one profile.
	Command string `json:"command,omitempty"`
}

// IsContainer tells a container subject from a host binary.
func (s Subject) IsContainer() bool { return s.Container != "" || s.Pod != "" }

// InPod tells a pod's container from one the runtime put in no pod (or did not describe).
func (s Subject) InPod() bool { return s.Namespace != "" || s.Workload != "" || s.Pod != "" }

// Key groups pods of one workload together: the pod name is not part of it.
func (s Subject) key() Subject {
	k := s
	if k.IsContainer() {
		k.Pod = ""
	}
	return k
}

// Observation is one capability check, from a live session or a JSON line.
type Observation struct {
	Time    time.Time
	Subject Subject
	Binary  string
	Cap     int
	Granted bool
	Audit   Audit
	// Class is whose check it is, as capsrec decided it; ClassKnown is false
	// for events that do not say (Tetragon's): then the audit rules apply.
	Class         core.Class
	ClassKnown    bool
	OverrideCreds bool
	Syscall       string
	// EUID is the effective uid the check was made with; EUIDKnown false when the event lacks it.
	EUID      uint32
	EUIDKnown bool
	// Exec: no check but a program's exec in the subject's container (a
	// process_exec event); Start: that exec was the container's start.
	Exec, Start bool
	// CallSite is the kernel function that asked ("" unknown); Net the
	// network facts of a NET_BIND_SERVICE or NET_RAW check or a Listen item.
	CallSite string
	// CallSiteVia is the capability function the call site called; NS which
	// namespaces were the host's (user-namespace readiness, userns.go).
	CallSiteVia string
	NS          HostNS
	Net         NetObservation
	// Listen: no check but a low port listened on with none (the network
	// namespace's sysctl let it): Net.Port and Net.PortStart say which.
	Listen bool
	// session: no check but a recording's summary event.
	session *Recorded
}

// maxListed bounds the binaries and syscalls kept per capability.
const maxListed = 16

// CapStats is what one subject did with one capability.
type CapStats struct {
	Cap           int       `json:"-"`
	Granted       uint64    `json:"granted"`
	Denied        uint64    `json:"denied"`
	GrantedNeed   uint64    `json:"granted_need"`
	GrantedNoSite uint64    `json:"granted_no_call_site,omitempty"` // events without a class (Tetragon), not known noaudit
	Probe         uint64    `json:"probe"`
	Runtime       uint64    `json:"runtime"`
	OverrideCreds uint64    `json:"override_creds"`
	UserNS        uint64    `json:"userns,omitempty"`        // granted in a user namespace not the subject's own
	DeniedUserNS  uint64    `json:"denied_userns,omitempty"` // refused there (the level rule, or the nested set)
	DeniedNeed    uint64    `json:"denied_need"`
	First         time.Time `json:"first_seen"`
	Last          time.Time `json:"last_seen"`
	Binaries      []string  `json:"binaries"`
	Syscalls      []string  `json:"syscalls,omitempty"`
}

// Verdict classifies a capability for a subject.
type Verdict string

const (
	// Needed: granted in a check of class need, the workload's own code asking.
	Needed Verdict = "needed"
	// NeededNoCallSite: granted in an event without a call site (Tetragon's) that was
	// not known to be noaudit: probes and runtime setup cannot be told apart there.
	NeededNoCallSite Verdict = "needed (no call site: Tetragon input)"
	// ProbeOnly: granted only in kernel probes.
	ProbeOnly Verdict = "not needed: kernel probes only"
	// RuntimeOnly: granted only to the container runtime setting the container up.
	RuntimeOnly Verdict = "not needed: container runtime setup only"
	// OverrideOnly: granted only under override_creds (someone else's credentials).
	OverrideOnly Verdict = "not needed: under override_creds only"
	// UserNSOnly: granted only in a user namespace the workload made or owns:
	// the container's capabilities did not decide it.
	UserNSOnly Verdict = "not needed: granted in a user namespace of the workload's own only"
	// DeniedUserNS: refused only in checks the container's capabilities do not
	// decide (from inside a user namespace of the workload's own).
	DeniedUserNS Verdict = "denied in a user namespace of the workload's own only: adding it would not help"
	// DeniedTried: refused in the workload's own check and never granted there.
	DeniedTried Verdict = "denied: the workload tried and was refused; add only if that operation is wanted"
	// DeniedProbe: refused only in probes, runtime setup or override_creds checks.
	DeniedProbe Verdict = "denied in probes, runtime setup or override_creds only: not a need"
)

// Short is the verdict's word in the profile table; Explained says it whole.
func (v Verdict) Short() string {
	switch v {
	case Needed:
		return "needed"
	case NeededNoCallSite:
		return "needed*"
	case ProbeOnly:
		return "probe"
	case RuntimeOnly:
		return "runtime"
	case OverrideOnly:
		return "override"
	case UserNSOnly:
		return "userns"
	case DeniedUserNS:
		return "userns-denied"
	case DeniedTried:
		return "denied"
	}
	return "refused"
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

// Verdicts are every verdict, in the order the table's legend explains them.
var Verdicts = []Verdict{Needed, NeededNoCallSite, DeniedTried, ProbeOnly, RuntimeOnly, OverrideOnly, UserNSOnly, DeniedUserNS, DeniedProbe}

// Verdict says what the checks of this capability mean.
func (c *CapStats) Verdict() Verdict {
	switch {
	case c.GrantedNeed > 0:
		return Needed
	case c.GrantedNoSite > 0:
		return NeededNoCallSite
	case c.Granted > 0 && c.Granted == c.OverrideCreds:
		return OverrideOnly
	case c.Granted > 0 && c.Granted == c.UserNS:
		return UserNSOnly
	case c.Granted > 0 && c.Probe == 0:
		return RuntimeOnly
	case c.Granted > 0:
		return ProbeOnly
	case c.DeniedNeed > 0:
		return DeniedTried
	case c.Denied > 0 && c.Denied == c.DeniedUserNS:
		return DeniedUserNS
	}
	return DeniedProbe
}

// IsNeed tells whether the capability belongs in the add list.
func (c *CapStats) IsNeed() bool {
	v := c.Verdict()
	return v == Needed || v == NeededNoCallSite
}

// SubjectProfile is one subject's capabilities.
type SubjectProfile struct {
	Subject Subject
	Pods    []string // the pods of the workload seen (bounded)
	Checks  uint64
	Caps    map[int]*CapStats
	// NonRootNeeds: some need was asked with a non-zero effective uid.
	NonRootNeeds bool
	// Net is what its network needs were made of (alternatives.go); UserNS
	// what its needs and namespaces say of hostUsers: false (userns.go).
	Net    NetProfile
	UserNS UserNSFacts
	// First and Last are the subject's first and last event, checks and execs.
	First, Last time.Time
	// seen and started are its pods (containers' subjects) seen at all, and
	// those whose container start was seen (bounded: maxPods).
	seen, started map[string]bool
}

// maxPods bounds the pods a subject's coverage counts.
const maxPods = 1024

// Coverage is what a recording saw of one container: a profile that did not
// see a container start may miss what it needs only at start.
type Coverage struct {
	Pods          int       `json:"pods"`
	PodsStarted   int       `json:"pods_started"`
	StartObserved bool      `json:"start_observed"`
	First         time.Time `json:"first"`
	Last          time.Time `json:"last"`
}

func (sp *SubjectProfile) mergeCoverage(q *SubjectProfile) {
	if !q.First.IsZero() && (sp.First.IsZero() || q.First.Before(sp.First)) {
		sp.First = q.First
	}
	if q.Last.After(sp.Last) {
		sp.Last = q.Last
	}
	for pod := range q.seen {
		sp.seePod(pod, q.started[pod])
	}
}

// seePod counts a pod of the subject seen, and its start when started (bounded: maxPods).
func (sp *SubjectProfile) seePod(pod string, started bool) {
	if sp.seen == nil {
		sp.seen, sp.started = map[string]bool{}, map[string]bool{}
	}
	if len(sp.seen) < maxPods {
		sp.seen[pod] = true
	}
	if started && sp.seen[pod] && len(sp.started) < maxPods {
		sp.started[pod] = true
	}
}

// Coverage says whether the start of every pod's container was seen.
func (sp *SubjectProfile) Coverage() Coverage {
	c := Coverage{Pods: len(sp.seen), PodsStarted: len(sp.started), First: sp.First, Last: sp.Last}
	c.StartObserved = c.Pods > 0 && c.PodsStarted == c.Pods
	return c
}

func (sp *SubjectProfile) see(o Observation, last time.Time) {
	if !o.Time.IsZero() && (sp.First.IsZero() || o.Time.Before(sp.First)) {
		sp.First = o.Time
	}
	if last.After(sp.Last) {
		sp.Last = last
	}
	if !o.Subject.IsContainer() {
		return
	}
	sp.seePod(o.Subject.Pod+"/"+o.Subject.Container, o.Start) // a pod of no name: the container
}

// Recorded is what the recordings say of themselves (capsrec's summary
// events): how many, their window, and the checks they lost. Sessions 0: not
// known (Tetragon's events, or a recording cut short).
type Recorded struct {
	Sessions   int       `json:"sessions"`
	Start, End time.Time `json:"-"`
	Lost       uint64    `json:"lost"`
}

// Profile aggregates observations; memory grows with subjects and capabilities, not checks.
type Profile struct {
	subjects map[Subject]*SubjectProfile
	// Ignored counts events that were not capability checks (other Tetragon hooks).
	Ignored uint64
	// Skipped counts malformed lines passed over with --skip-invalid.
	Skipped uint64
	// Folded counts checks of host binaries past MaxHostBinaries, profiled
	// together as OtherBinaries: any user can make binary names without end.
	Folded uint64
	hosts  int
	// Recorded is what the recordings say of themselves.
	Recorded Recorded
	// Verification, when set, is what applying the profile's patch proved.
	Verification *Verification
	// workloads caches Workload(pod): pods are few, checks many.
	workloads map[string][2]string
}

// New makes an empty profile.
func New() *Profile {
	return &Profile{subjects: map[Subject]*SubjectProfile{}, workloads: map[string][2]string{}}
}

// Add counts one check.
func (p *Profile) Add(o Observation) { p.AddN(o, 1, o.Time) }

// AddN counts n checks like o, the last of them at last. A container subject
// without a workload gets one derived from its pod name.
func (p *Profile) AddN(o Observation, n uint64, last time.Time) {
	if r := o.session; r != nil {
		p.addRecorded(*r)
		return
	}
	if o.Exec {
		p.seen(o)
		return
	}
	p.workload(&o)
	if o.Listen { // no check: only what it says of the network
		sp, _ := p.subject(o.Subject.key(), n)
		sp.see(o, last)
		sp.Net.seeNet(o, n)
		return
	}
	p.add(o, n, last)
}

// workload names a container subject's workload when the event did not.
func (p *Profile) workload(o *Observation) {
	if o.Subject.IsContainer() && o.Subject.Workload == "" {
		w, ok := p.workloads[o.Subject.Pod]
		if !ok {
			w[0], w[1] = Workload(o.Subject.Pod)
			if len(p.workloads) < 1<<16 {
				p.workloads[o.Subject.Pod] = w
			}
		}
		o.Subject.Workload, o.Subject.WorkloadRule = w[0], w[1]
	}
}

func addListed(list []string, v string) []string {
	if v == "" || len(list) >= maxListed || slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

// MaxHostBinaries bounds the host binaries a profile holds apart; the checks
// of more are profiled together as OtherBinaries, and counted in Folded.
const MaxHostBinaries = 1024

// OtherBinaries is the host subject past MaxHostBinaries.
const OtherBinaries = "(other binaries)"

// subject finds k's profile, or makes it (made); a host binary past
// MaxHostBinaries finds OtherBinaries', and its n checks are counted as folded.
func (p *Profile) subject(k Subject, n uint64) (sp *SubjectProfile, made bool) {
	if sp := p.subjects[k]; sp != nil {
		return sp, false
	}
	if !k.IsContainer() && k.Binary != OtherBinaries {
		if p.hosts >= MaxHostBinaries {
			p.Folded += n
			return p.subject(Subject{Binary: OtherBinaries}, 0)
		}
		p.hosts++
	}
	sp = &SubjectProfile{Subject: k, Caps: map[int]*CapStats{}}
	p.subjects[k] = sp
	return sp, true
}

// seen says that o's container was seen (an exec in it), its start too when o.Start.
func (p *Profile) seen(o Observation) {
	if !o.Subject.IsContainer() {
		return
	}
	p.workload(&o)
	sp, _ := p.subject(o.Subject.key(), 0)
	sp.see(o, o.Time)
}

// SeenRunning says that a container ran in pod during the recording, as the
// cluster's API says, though the recording may have seen nothing of it: it
// is in the profile, and its start was not observed unless an exec said so.
func (p *Profile) SeenRunning(namespace, pod, container, image string) {
	o := Observation{Subject: Subject{Namespace: namespace, Pod: pod, Container: container, Image: image}}
	p.workload(&o)
	for k, sp := range p.subjects {
		if k.IsContainer() && k.Namespace == namespace && k.Workload == o.Subject.Workload && k.Container == container {
			sp.see(o, time.Time{})
			return
		}
	}
	sp, _ := p.subject(o.Subject.key(), 0)
	sp.see(o, time.Time{})
}

// Session adds what one recording says of itself.
func (p *Profile) Session(start, end time.Time, lost uint64) {
	p.addRecorded(Recorded{Sessions: 1, Start: start, End: end, Lost: lost})
}

// addRecorded adds what recordings say of themselves: their sessions, window and losses.
func (p *Profile) addRecorded(q Recorded) {
	if q.Sessions == 0 {
		return
	}
	r := &p.Recorded
	if r.Sessions == 0 || q.Start.Before(r.Start) {
		r.Start = q.Start
	}
	if q.End.After(r.End) {
		r.End = q.End
	}
	r.Sessions += q.Sessions
	r.Lost += q.Lost
}

// add counts n checks like o, the last of them at last.
func (p *Profile) add(o Observation, n uint64, last time.Time) {
	sp, _ := p.subject(o.Subject.key(), n)
	sp.see(o, last)
	sp.Checks += n
	sp.Pods = addListed(sp.Pods, o.Subject.Pod)
	cs := sp.Caps[o.Cap]
	if cs == nil {
		cs = &CapStats{Cap: o.Cap, First: o.Time, Last: last}
		sp.Caps[o.Cap] = cs
	}
	if o.Time.Before(cs.First) {
		cs.First = o.Time
	}
	if last.After(cs.Last) {
		cs.Last = last
	}
	cs.Binaries = addListed(cs.Binaries, o.Binary)
	cs.Syscalls = addListed(cs.Syscalls, o.Syscall)
	class, known := o.class()
	if known && class == core.ClassNeed && o.Granted && o.EUIDKnown && o.EUID != 0 { // a refusal adds nothing to note
		sp.NonRootNeeds = true
	}
	if (o.Cap == capNetBindService || o.Cap == capNetRaw) && class == core.ClassNeed {
		sp.Net.seeNet(o, n)
	}
	if sp.Subject.IsContainer() {
		sp.UserNS.see(o, class)
	}
	if !o.Granted {
		cs.Denied += n
		switch class {
		case core.ClassNeed:
			cs.DeniedNeed += n
		case core.ClassUserNS:
			cs.DeniedUserNS += n
		}
		return
	}
	cs.Granted += n
	switch {
	case class == core.ClassNeed && known:
		cs.GrantedNeed += n
	case class == core.ClassNeed:
		cs.GrantedNoSite += n
	case class == core.ClassProbe:
		cs.Probe += n
	case class == core.ClassRuntime:
		cs.Runtime += n
	case class == core.ClassOverrideCreds:
		cs.OverrideCreds += n
	case class == core.ClassUserNS:
		cs.UserNS += n
	}
}

// class is the observation's class; events without one (Tetragon's) keep the
// audit rules: noaudit is a probe, override_creds borrowed, audited a need, and
// the rest a need not known to be one (known false: counted, and flagged).
func (o Observation) class() (c core.Class, known bool) {
	switch {
	case o.ClassKnown:
		return o.Class, true
	case o.OverrideCreds:
		return core.ClassOverrideCreds, true
	case o.Audit == NotAudited:
		return core.ClassProbe, true
	case o.Audit == Audited:
		return core.ClassNeed, true
	}
	return core.ClassNeed, false
}

// Merge adds q's counts into p (profiles of several nodes or workers).
func (p *Profile) Merge(q *Profile) {
	p.Ignored += q.Ignored
	p.Skipped += q.Skipped
	p.Folded += q.Folded
	p.addRecorded(q.Recorded)
	for k, qs := range q.subjects {
		ps, made := p.subject(k, qs.Checks)
		if made {
			subject := ps.Subject // OtherBinaries when folded
			*ps = *qs             // new here: take it whole
			ps.Subject = subject
			continue
		}
		ps.Checks += qs.Checks
		ps.NonRootNeeds = ps.NonRootNeeds || qs.NonRootNeeds
		ps.Net.merge(&qs.Net)
		ps.UserNS.merge(&qs.UserNS)
		ps.mergeCoverage(qs)
		for _, pod := range qs.Pods {
			ps.Pods = addListed(ps.Pods, pod)
		}
		for c, qc := range qs.Caps {
			pc := ps.Caps[c]
			if pc == nil {
				ps.Caps[c] = qc
				continue
			}
			pc.Granted += qc.Granted
			pc.Denied += qc.Denied
			pc.GrantedNeed += qc.GrantedNeed
			pc.GrantedNoSite += qc.GrantedNoSite
			pc.Probe += qc.Probe
			pc.Runtime += qc.Runtime
			pc.OverrideCreds += qc.OverrideCreds
			pc.UserNS += qc.UserNS
			pc.DeniedUserNS += qc.DeniedUserNS
			pc.DeniedNeed += qc.DeniedNeed
			if qc.First.Before(pc.First) {
				pc.First = qc.First
			}
			if qc.Last.After(pc.Last) {
				pc.Last = qc.Last
			}
			for _, b := range qc.Binaries {
				pc.Binaries = addListed(pc.Binaries, b)
			}
			for _, s := range qc.Syscalls {
				pc.Syscalls = addListed(pc.Syscalls, s)
			}
		}
	}
}

// Subjects lists the profiles: containers by namespace, workload and
// container, then host binaries.
func (p *Profile) Subjects() []*SubjectProfile {
	list := slices.Collect(maps.Values(p.subjects))
	for _, sp := range list {
		slices.Sort(sp.Pods) // merge order must not show
	}
	slices.SortFunc(list, func(a, b *SubjectProfile) int {
		x, y := a.Subject, b.Subject
		if x.IsContainer() != y.IsContainer() {
			if x.IsContainer() {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Workload, y.Workload),
			cmp.Compare(x.Container, y.Container), cmp.Compare(x.Image, y.Image), cmp.Compare(x.Binary, y.Binary))
	})
	return list
}

// Keep drops the subjects keep refuses.
func (p *Profile) Keep(keep func(*SubjectProfile) bool) {
	maps.DeleteFunc(p.subjects, func(_ Subject, sp *SubjectProfile) bool { return !keep(sp) })
}

// Len is the number of subjects.
func (p *Profile) Len() int { return len(p.subjects) }

// SortedCaps lists a subject's capabilities by value.
func (sp *SubjectProfile) SortedCaps() []*CapStats {
	list := slices.Collect(maps.Values(sp.Caps))
	slices.SortFunc(list, func(a, b *CapStats) int { return cmp.Compare(a.Cap, b.Cap) })
	for _, c := range list {
		slices.Sort(c.Binaries)
		slices.Sort(c.Syscalls)
	}
	return list
}

// RuntimeDefaults are the capabilities containerd and Docker give a container
// unless told otherwise.
var RuntimeDefaults = []int{0, 1, 4, 3, 27, 13, 6, 7, 31, 8, 10, 18, 5, 29}

// Recommendation is the securityContext change for one subject.
type Recommendation struct {
	Drop []string `json:"drop"`
	Add  []string `json:"add"`
	// Denied lists what the workload tried and was refused (not added).
	Denied []string `json:"denied,omitempty"`
	// UnusedDefaults lists runtime default capabilities the subject never needed.
	UnusedDefaults []string `json:"unused_runtime_defaults,omitempty"`
	// NoCallSite is set when some need came from events without a call site
	// (Tetragon's): probes and runtime setup may be among them.
	NoCallSite bool `json:"no_call_site,omitempty"`
	// NonRoot is set when the needs were asked by a non-root user: add alone does
	// not raise a non-root process's effective set (kubernetes/kubernetes#56374).
	NonRoot bool `json:"non_root,omitempty"`
	// Sysctls are pod-level sysctls the profile depends on: what let a low
	// port pass with no check here, set explicitly for any runtime.
	Sysctls []Sysctl `json:"sysctls,omitempty"`
	// Alternatives are capability-free ways to needs in Add (Applies: proven).
	Alternatives []Alternative `json:"alternatives,omitempty"`
	// UserNS is the container's readiness for hostUsers: false.
	UserNS *Readiness `json:"user_namespace,omitempty"`
	// HostNetUnchecked says why NET_BIND_SERVICE is in Add though no check
	// asked it: a namespace's sysctl let a low port pass here, and the
	// subject cannot set it itself (hostNetwork, a host process).
	HostNetUnchecked string `json:"unchecked_bind,omitempty"`
}

// Recommend is drop ALL, add what was needed, in Kubernetes spelling.
func (sp *SubjectProfile) Recommend() Recommendation {
	r := Recommendation{Drop: []string{"ALL"}, Add: []string{}}
	needed := map[int]bool{}
	for _, c := range sp.SortedCaps() {
		switch c.Verdict() {
		case NeededNoCallSite:
			r.NoCallSite = true
			fallthrough
		case Needed:
			needed[c.Cap] = true
			r.Add = append(r.Add, caps.KubernetesName(c.Cap))
		case DeniedTried:
			r.Denied = append(r.Denied, caps.KubernetesName(c.Cap))
		}
	}
	if n := &sp.Net; !sp.ownPodNet() && len(n.Unchecked) > 0 && !needed[capNetBindService] {
		// No pod sysctl can stand in: a node with the kernel's default refuses.
		needed[capNetBindService] = true
		r.HostNetUnchecked = n.uncheckedNote()
		r.Add = append(r.Add, caps.KubernetesName(capNetBindService))
		slices.SortFunc(r.Add, func(a, b string) int { return cmpCap(a) - cmpCap(b) })
	}
	r.Sysctls = sp.RequiredSysctls()
	r.Alternatives = sp.Alternatives()
	r.UserNS = sp.UserNSReadiness()
	r.NonRoot = sp.NonRootNeeds && len(r.Add) > 0
	defaults := slices.Clone(RuntimeDefaults)
	slices.Sort(defaults)
	for _, d := range defaults {
		if !needed[d] {
			r.UnusedDefaults = append(r.UnusedDefaults, caps.KubernetesName(d))
		}
	}
	return r
}

// Pod-name suffixes Kubernetes controllers generate, from its random-string
// alphabet (no vowels, no 0, 1, 3).
var workloadRules = []struct {
	re   *regexp.Regexp
	rule string
}{
	{regexp.MustCompile(`^(.+)-[bcdfghjklmnpqrstvwxz2456789]{6,10}-[bcdfghjklmnpqrstvwxz2456789]{5}$`), "Deployment: pod name less ReplicaSet's -<hash>-<5>"},
	{regexp.MustCompile(`^(.+)-[bcdfghjklmnpqrstvwxz2456789]{5}$`), "DaemonSet or Job: pod name less -<5>"},
	{regexp.MustCompile(`^(.+)-[0-9]+$`), "StatefulSet: pod name less -<ordinal>"},
}

// Workload derives a pod's workload name and says which rule applied.
func Workload(pod string) (name, rule string) {
	for _, r := range workloadRules {
		if m := r.re.FindStringSubmatch(pod); m != nil {
			return m[1], r.rule
		}
	}
	return pod, "bare pod: the pod's own name"
}

// cmpCap orders Kubernetes capability names by value.
func cmpCap(name string) int {
	v, err := caps.Parse(name)
	if err != nil {
		return caps.MaxValue + 1
	}
	return v
}
