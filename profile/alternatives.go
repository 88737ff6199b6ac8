package profile

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/capsrec/capsrec/internal/english"
)

// Capabilities whose needs a network namespace's sysctls can grant instead.
const (
	capNetBindService = 10
	capNetRaw         = 13
)

// Sysctl names (Kubernetes' safe sysctls: a pod sets them in its own
// network namespace, never with hostNetwork).
const (
	SysctlPortStart = "net.ipv4.ip_unprivileged_port_start" // safe since Kubernetes 1.22
	SysctlPingGroup = "net.ipv4.ping_group_range"           // safe since 1.18
)

// NetObservation is what an observation says of the network: the facts a
// capability-free alternative rests on.
type NetObservation struct {
	// Port is bind(2)'s port under a NET_BIND_SERVICE check, or a Listen
	// item's; 0 unknown. Protocol is socket(2)'s under a NET_RAW check; -1 unknown.
	Port     uint16
	Protocol int32
	// PortStart is the network namespace's ip_unprivileged_port_start; -1 unknown.
	PortStart int32
	// HostNet: made in the host's network namespace; HostNetKnown false when
	// the event does not say.
	HostNet, HostNetKnown bool
}

// bindSites are the kernel functions whose CAP_NET_BIND_SERVICE check
// ip_unprivileged_port_start decides: inet_port_requires_bind_service()
// (net/ipv4/af_inet.c, net/ipv6/af_inet6.c), asked only below the sysctl.
var bindSites = []string{"__inet_bind", "__inet6_bind", "inet_bind", "inet6_bind", "inet_bind_sk"}

// rawSites are where a raw socket asks CAP_NET_RAW (inet_create, inet6_create).
var rawSites = []string{"inet_create", "inet6_create"}

const (
	ipprotoICMP   = 1
	ipprotoICMPv6 = 58
)

// NetProfile is what a subject's needs of NET_BIND_SERVICE and NET_RAW were
// made of, and the binds that needed no check.
type NetProfile struct {
	BindPorts  []uint16 // ports bound under a NET_BIND_SERVICE need (sorted, bounded)
	BindUnread uint64   // NET_BIND_SERVICE needs whose port was not read (io_uring, ...)
	// BindOther counts NET_BIND_SERVICE needs at a call site the sysctl does
	// not decide, or of no call site (Tetragon's events); OtherSites names them.
	BindOther  uint64
	OtherSites []string
	// Unchecked are low ports listened on with no check: the namespace's
	// ip_unprivileged_port_start (UncheckedStart, the lowest seen) let them.
	Unchecked      []uint16
	UncheckedStart int32
	// RawICMP counts NET_RAW needs that were raw ICMP sockets; RawOther the rest.
	RawICMP, RawOther uint64
	// HostNet, OwnNet: facts seen in the host's network namespace, in another.
	HostNet, OwnNet bool
}

func addPort(list []uint16, p uint16) []uint16 {
	i, found := slices.BinarySearch(list, p)
	if found || len(list) >= maxListed {
		return list
	}
	return slices.Insert(list, i, p)
}

// seeNet takes in what a NET_BIND_SERVICE or NET_RAW need, or a Listen
// item, says (class need or unknown; granted or not: a refused bind is a
// need the alternative must cover too).
func (n *NetProfile) seeNet(o Observation, count uint64) {
	if o.Net.HostNetKnown {
		n.HostNet = n.HostNet || o.Net.HostNet
		n.OwnNet = n.OwnNet || !o.Net.HostNet
	}
	site := baseSite(o.CallSite)
	switch {
	case o.Listen:
		n.Unchecked = addPort(n.Unchecked, o.Net.Port)
		if o.Net.PortStart >= 0 && (n.UncheckedStart <= 0 || o.Net.PortStart < n.UncheckedStart) {
			n.UncheckedStart = o.Net.PortStart
		}
	case o.Cap == capNetBindService && slices.Contains(bindSites, site):
		if o.Net.Port == 0 {
			n.BindUnread += count
		} else {
			n.BindPorts = addPort(n.BindPorts, o.Net.Port)
		}
	case o.Cap == capNetBindService:
		n.BindOther += count
		n.OtherSites = addListed(n.OtherSites, siteOrUnknown(site))
	case o.Cap == capNetRaw && slices.Contains(rawSites, site) && (o.Net.Protocol == ipprotoICMP || o.Net.Protocol == ipprotoICMPv6):
		n.RawICMP += count
	case o.Cap == capNetRaw:
		n.RawOther += count
	}
}

func (n *NetProfile) merge(q *NetProfile) {
	for _, p := range q.BindPorts {
		n.BindPorts = addPort(n.BindPorts, p)
	}
	for _, p := range q.Unchecked {
		n.Unchecked = addPort(n.Unchecked, p)
	}
	for _, s := range q.OtherSites {
		n.OtherSites = addListed(n.OtherSites, s)
	}
	if q.UncheckedStart > 0 && (n.UncheckedStart <= 0 || q.UncheckedStart < n.UncheckedStart) {
		n.UncheckedStart = q.UncheckedStart
	}
	n.BindUnread += q.BindUnread
	n.BindOther += q.BindOther
	n.RawICMP += q.RawICMP
	n.RawOther += q.RawOther
	n.HostNet = n.HostNet || q.HostNet
	n.OwnNet = n.OwnNet || q.OwnNet
}

// baseSite drops the compiler's suffixes (.isra.0, .constprop.0, .cold).
func baseSite(site string) string {
	name, _, _ := strings.Cut(site, ".")
	return name
}

func siteOrUnknown(site string) string {
	if site == "" {
		return "no call site"
	}
	return site
}

// Sysctl is a pod-level securityContext.sysctls entry.
type Sysctl struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	// Why the profile depends on it, for a required one.
	Why string `json:"why,omitempty"`
}

// Alternative is a capability-free way to the same operation.
type Alternative struct {
	Replaces string `json:"replaces"` // the capability, Kubernetes spelling
	Sysctl   Sysctl `json:"sysctl"`
	// Covers is what the recording saw the capability do, that the sysctl grants.
	Covers string `json:"covers"`
	// Applies: the kernel makes no check for any of those operations once
	// the sysctl is set (proven from its source), so the capability can go.
	// When false, Why says what is missing.
	Applies bool   `json:"applies"`
	Why     string `json:"why,omitempty"`
	// Conditional: it may apply, on a condition only a run can prove (Why).
	Conditional bool `json:"conditional,omitempty"`
}

func portList(ports []uint16) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ", ")
}

// lowest is the lowest port of both lists; 0 when both are empty.
func lowest(a, b []uint16) uint16 {
	all := append(slices.Clone(a), b...)
	if len(all) == 0 {
		return 0
	}
	return slices.Min(all)
}

// ownPodNet tells whether the subject is a container the recording saw in
// a network namespace of its own, never the host's: a pod that can set net
// sysctls.
func (sp *SubjectProfile) ownPodNet() bool {
	return sp.Subject.IsContainer() && sp.Net.OwnNet && !sp.Net.HostNet
}

// Alternatives are the capability-free alternatives to the subject's needs,
// applicable or not (Why says). Only containers have them: a pod sets them.
func (sp *SubjectProfile) Alternatives() []Alternative {
	var alts []Alternative
	n := &sp.Net
	if !sp.Subject.IsContainer() {
		return nil
	}
	if c := sp.Caps[capNetBindService]; c != nil && c.IsNeed() {
		alts = append(alts, n.bindAlternative())
	}
	if c := sp.Caps[capNetRaw]; c != nil && c.IsNeed() && n.RawICMP > 0 {
		a := Alternative{Replaces: "NET_RAW", Sysctl: Sysctl{Name: SysctlPingGroup, Value: "0 2147483647"},
			Covers: english.Count(n.RawICMP, "raw ICMP socket")}
		switch {
		case n.HostNet:
			a.Why = "hostNetwork: the sysctl is the node's, a pod cannot set it"
		case n.RawOther > 0:
			a.Why = fmt.Sprintf("NET_RAW is also needed for %s of other kinds (raw IP, packet)", english.Count(n.RawOther, "socket"))
		default:
			a.Why = "only if the program can use ICMP datagram sockets instead (iputils ping can, busybox ping cannot): the recording cannot tell; prove it with a run without NET_RAW"
			a.Conditional = true
		}
		alts = append(alts, a)
	}
	return alts
}

func (n *NetProfile) bindAlternative() Alternative {
	a := Alternative{Replaces: "NET_BIND_SERVICE"}
	port := lowest(n.BindPorts, n.Unchecked)
	var covers []string
	switch len(n.BindPorts) {
	case 0:
	case 1:
		covers = append(covers, "bind(2) to port "+portList(n.BindPorts))
	default:
		covers = append(covers, "bind(2) to ports "+portList(n.BindPorts))
	}
	if n.BindUnread > 0 {
		port = 0 // a port not read may be any
		covers = append(covers, english.Count(n.BindUnread, "bind")+" whose port was not read (io_uring or another path)")
	}
	if n.BindOther > 0 {
		covers = append(covers, english.Count(n.BindOther, "check")+" elsewhere ("+strings.Join(n.OtherSites, ", ")+")")
	}
	a.Covers = strings.Join(covers, " and ")
	a.Sysctl = Sysctl{Name: SysctlPortStart, Value: strconv.Itoa(int(port))}
	switch {
	case n.HostNet:
		a.Why = "hostNetwork: the sysctl is the node's, a pod cannot set it"
	case n.BindOther > 0:
		a.Why = fmt.Sprintf("%s at a call site the sysctl does not decide (%s)",
			english.Count(n.BindOther, "need"), strings.Join(n.OtherSites, ", "))
	case !n.OwnNet:
		a.Why = "the recording does not say which network namespace the binds were in"
	default:
		a.Applies = true
	}
	return a
}

// RequiredSysctls are sysctls the profile depends on: a low port bound with
// no check because the namespace's sysctl let it (a runtime's default, as
// containerd 2's). A patch sets them, so that it holds on any runtime.
func (sp *SubjectProfile) RequiredSysctls() []Sysctl {
	n := &sp.Net
	if len(n.Unchecked) == 0 || !sp.ownPodNet() {
		return nil
	}
	return []Sysctl{{SysctlPortStart, strconv.Itoa(int(n.Unchecked[0])), n.uncheckedNote()}}
}

// WithAlternatives is r with its applicable alternatives used: their
// sysctls set, the capabilities they replace no longer added.
func (r Recommendation) WithAlternatives() Recommendation {
	out := r
	out.Add = slices.Clone(r.Add)
	out.Sysctls = slices.Clone(r.Sysctls)
	for _, a := range r.Alternatives {
		if !a.Applies {
			continue
		}
		out.Add = slices.DeleteFunc(out.Add, func(c string) bool { return c == a.Replaces })
		out.Sysctls = mergeSysctls(out.Sysctls, Sysctl{a.Sysctl.Name, a.Sysctl.Value, "instead of " + a.Replaces + ": " + a.Covers})
	}
	out.NonRoot = r.NonRoot && len(out.Add) > 0
	return out
}

// mergeSysctls adds s to list; two port starts keep the lower, which grants both.
func mergeSysctls(list []Sysctl, s Sysctl) []Sysctl {
	for i, have := range list {
		if have.Name != s.Name {
			continue
		}
		if s.Name == SysctlPortStart {
			a, _ := strconv.Atoi(have.Value)
			b, _ := strconv.Atoi(s.Value)
			if b < a {
				list[i].Value = s.Value
			}
		}
		if !strings.Contains(list[i].Why, s.Why) {
			list[i].Why = strings.TrimPrefix(list[i].Why+"; "+s.Why, "; ")
		}
		return list
	}
	return append(list, s)
}

// alternativeNotes explain, for people, the sysctls a recommendation sets
// and the alternatives it could use.
func alternativeNotes(r Recommendation) []string {
	var n []string
	for _, s := range r.Sysctls {
		n = append(n, fmt.Sprintf("pod securityContext.sysctls: %s=%s: %s", s.Name, s.Value, s.Why))
	}
	if r.HostNetUnchecked != "" {
		n = append(n, "NET_BIND_SERVICE is added though no check asked it: "+r.HostNetUnchecked+
			"; where "+SysctlPortStart+" is the kernel's default (1024) the bind needs it")
	}
	for _, a := range r.Alternatives {
		switch {
		case a.Applies:
			line := fmt.Sprintf("alternative: %s=%s instead of %s (%s); -o patch --alternatives uses it", a.Sysctl.Name, a.Sysctl.Value, a.Replaces, a.Covers)
			if r.NonRoot {
				line += "; for a non-root process it is the fix: add does not raise its effective set"
			}
			n = append(n, line)
		case a.Conditional:
			n = append(n, fmt.Sprintf("possible alternative: %s=%s instead of %s (%s), %s", a.Sysctl.Name, a.Sysctl.Value, a.Replaces, a.Covers, a.Why))
		}
	}
	return n
}

// uncheckedNote says why a low port needed no capability here.
func (n *NetProfile) uncheckedNote() string {
	if len(n.Unchecked) == 0 {
		return ""
	}
	ports := "port " + portList(n.Unchecked)
	if len(n.Unchecked) > 1 {
		ports = "ports " + portList(n.Unchecked)
	}
	where := "its network namespace sets"
	if n.HostNet {
		where = "the node's network namespace sets"
	}
	return fmt.Sprintf("listened on %s with no NET_BIND_SERVICE check: %s %s=%d (a runtime default: containerd 2 sets it, CRI-O does not)",
		ports, where, SysctlPortStart, n.UncheckedStart)
}
