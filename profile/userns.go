package profile

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/callsite"
	"github.com/capsrec/capsrec/internal/caps"
	"github.com/capsrec/capsrec/internal/textsafe"
	"github.com/capsrec/capsrec/tetragon"
)

// HostNS says which of an observation's namespaces are the host's.
type HostNS = tetragon.HostNS

// usernsNeed is one need as user-namespace readiness weighs it.
type usernsNeed struct {
	cap            int
	site, via, bin string
}

// maxUserNSNeeds bounds the needs a subject's readiness keeps apart.
const maxUserNSNeeds = 64

// UserNSFacts are what a subject's needs and namespaces say of running it
// in a user namespace of its own (hostUsers: false).
type UserNSFacts struct {
	needs    map[usernsNeed]callsite.Scope
	overflow uint64 // needs past maxUserNSNeeds: undecided
	// Known: some event said the namespaces; the rest: seen in the host's.
	Known                          bool
	HostNet, HostPID, HostIPC, Own bool
	HostUser                       bool
}

func (u *UserNSFacts) see(o Observation, class core.Class) {
	if o.NS.Known {
		u.Known = true
		u.HostNet = u.HostNet || o.NS.Net
		u.HostPID = u.HostPID || o.NS.PID
		u.HostIPC = u.HostIPC || o.NS.IPC
		u.HostUser = u.HostUser || o.NS.User
		u.Own = u.Own || !o.NS.User
	}
	if !o.Granted || class != core.ClassNeed {
		return
	}
	k := usernsNeed{o.Cap, o.CallSite, o.CallSiteVia, o.Binary}
	if _, ok := u.needs[k]; ok {
		return
	}
	if len(u.needs) >= maxUserNSNeeds {
		u.overflow++
		return
	}
	if u.needs == nil {
		u.needs = map[usernsNeed]callsite.Scope{}
	}
	u.needs[k] = callsite.UserNSScope(o.CallSite, o.CallSiteVia)
}

func (u *UserNSFacts) merge(q *UserNSFacts) {
	for k, s := range q.needs {
		if _, ok := u.needs[k]; ok {
			continue
		}
		if len(u.needs) >= maxUserNSNeeds {
			u.overflow++
			continue
		}
		if u.needs == nil {
			u.needs = map[usernsNeed]callsite.Scope{}
		}
		u.needs[k] = s
	}
	u.overflow += q.overflow
	u.Known = u.Known || q.Known
	u.HostNet, u.HostPID, u.HostIPC = u.HostNet || q.HostNet, u.HostPID || q.HostPID, u.HostIPC || q.HostIPC
	u.HostUser, u.Own = u.HostUser || q.HostUser, u.Own || q.Own
}

// Readiness says whether a container would run with hostUsers: false: in a
// user namespace of its own, its capabilities hold only there, and a check
// against the host's user namespace fails whatever its add list.
type Readiness struct {
	// Ready: every need is checked against a namespace the pod would own,
	// and no host namespace is shared. Decided false: some need's namespace
	// is not known (Reasons say which); Ready is then false.
	Ready   bool `json:"ready"`
	Decided bool `json:"decided"`
	// Already: the container runs in a user namespace of its own now.
	Already bool     `json:"already,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
	// NamespacesUnknown: the events do not say the namespaces (Tetragon's
	// without process.ns): nothing is decided, and only JSON says so.
	NamespacesUnknown bool `json:"namespaces_unknown,omitempty"`
}

// viaName is how a reason names the function a check went through.
func viaName(via string) string {
	if via == "" {
		return "an unknown capability function"
	}
	return textsafe.Visible(baseSite(via)) + "()"
}

// UserNSReadiness is the container's readiness for hostUsers: false; nil
// for a host subject.
func (sp *SubjectProfile) UserNSReadiness() *Readiness {
	if !sp.Subject.IsContainer() {
		return nil
	}
	u := &sp.UserNS
	r := &Readiness{Decided: true}
	if u.Own && !u.HostUser {
		r.Ready, r.Already = true, true
		for _, c := range sp.SortedCaps() {
			if c.DeniedUserNS > 0 {
				r.Reasons = append(r.Reasons, fmt.Sprintf("%s was refused %s against a user namespace it does not own (the host's): no add list grants it there",
					caps.Name(c.Cap), countTimes(c.DeniedUserNS)))
			}
		}
		return r
	}
	if !u.Known {
		r.Decided, r.NamespacesUnknown = false, true
		r.Reasons = append(r.Reasons, "the recording does not say the container's namespaces (capsrec's process.ns)")
		return r
	}
	for _, h := range []struct {
		shared bool
		what   string
	}{{u.HostNet, "hostNetwork"}, {u.HostPID, "hostPID"}, {u.HostIPC, "hostIPC"}} {
		if h.shared {
			r.Reasons = append(r.Reasons, h.what+": a pod sharing the host's namespaces cannot have hostUsers: false")
		}
	}
	var host, unknown []string
	keys := slices.SortedFunc(maps.Keys(u.needs), func(a, b usernsNeed) int {
		if a.cap != b.cap {
			return a.cap - b.cap
		}
		return strings.Compare(a.site+a.via+a.bin, b.site+b.via+b.bin)
	})
	for _, k := range keys {
		what := fmt.Sprintf("%s at %s (through %s) by %s", caps.Name(k.cap), textsafe.Visible(siteOrUnknown(baseSite(k.site))), viaName(k.via), textsafe.Visible(k.bin))
		switch u.needs[k] {
		case callsite.ScopeHost:
			host = append(host, what+": checked against the host's user namespace, refused in the pod's own")
		case callsite.ScopeUnknown:
			unknown = append(unknown, what+": capsrec does not know which user namespace it is checked against")
		}
	}
	if u.overflow > 0 {
		unknown = append(unknown, fmt.Sprintf("%d more needs, past the %d kept apart", u.overflow, maxUserNSNeeds))
	}
	r.Reasons = append(append(r.Reasons, host...), unknown...)
	switch {
	case len(r.Reasons) == 0:
		r.Ready = true
	case len(r.Reasons) == len(unknown):
		r.Decided = false
	}
	return r
}

func countTimes(n uint64) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

// readinessNote is the readiness as a person reads it.
func readinessNote(r *Readiness) []string {
	if r == nil || r.NamespacesUnknown {
		return nil
	}
	var head string
	switch {
	case r.Already:
		head = "user namespace: runs in one of its own already (hostUsers: false)"
	case r.Ready:
		return []string{"user namespace: ready for hostUsers: false (every need is checked in a namespace the pod would own); -o patch --userns sets it"}
	case r.Decided:
		head = "user namespace: not ready for hostUsers: false"
	default:
		head = "user namespace: hostUsers: false undecided"
	}
	if len(r.Reasons) == 0 {
		return []string{head}
	}
	return []string{head + ": " + strings.Join(r.Reasons, "; ")}
}
