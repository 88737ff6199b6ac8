package core

import (
	"sync"
	"time"
)

// Tetragon's names for the namespaces, indexed like Check.NS, are NSNames:
// each is its name in capsrec.h's enum ns_index, in lower case.
var _ [NSCount]struct{} = [len(NSNames)]struct{}{} // every namespace has its name

// UserNS is the user namespace a capability was checked against.
type UserNS struct {
	Level, UID, GID, Inum uint32
}

// Class says whose check it is (capsrec.h's enum check_class): ClassNeed,
// the workload's own code asked; ClassProbe, the kernel probing (noaudit, or
// only testing the answer); ClassRuntime, the container runtime setting a
// container or exec up; ClassOverrideCreds, under borrowed credentials
// (overlayfs copy-up); ClassUserNS, answered in a user namespace other than
// the subject's own (one the workload made, or by the owner or level rule):
// the container's capabilities did not decide it. ClassUserNS is set in user
// space (enrich), never by the kernel.
type Class uint8

// The JSON's capsrec.class values are ClassNames, indexed by Class: each
// is its name in capsrec.h's enum check_class, in lower case.
var _ [ClassCount]struct{} = [len(ClassNames)]struct{}{} // every class has its name

// AnswerNames are capsrec.user_ns_rule's values, indexed by Check.NSAnswer
// (AnswerCaps: the credentials' own namespace, their effective set, decided;
// AnswerOwner: one the caller's euid owns, granted; AnswerLevel: the target is
// not below the caller's namespace, refused).
var AnswerNames = [...]string{"capabilities", "owner", "level", "unknown"}

func (c Class) String() string {
	if int(c) < len(ClassNames) {
		return ClassNames[c]
	}
	return "need"
}

// ParseClass reads a capsrec.class value.
func ParseClass(s string) (Class, bool) {
	for i, n := range ClassNames {
		if n == s {
			return Class(i), true
		}
	}
	return 0, false
}

// Check is one decoded cap_capable call.
type Check struct {
	Time  time.Time // wall clock, UTC
	Ktime uint64    // CLOCK_BOOTTIME ns

	Process *Process // never nil: a stand-in is made when nothing is known
	Parent  *Process // nil when the parent is unknown

	Tid   uint32
	NsPid uint32 // the process's pid in its own pid namespace
	UID   uint32
	GID   uint32
	EUID  uint32
	AUID  uint32
	Comm  string

	Cap int32
	Ret int32 // 0 granted, negative denied

	// Audit is whether the kernel would audit the check (not CAP_OPT_NOAUDIT);
	// AuditKnown is false on the tracepoint, which does not pass opts.
	Audit, AuditKnown bool
	InSetID           bool
	Method            Method
	OverrideCreds     bool
	Syscall           int32 // -1 when unknown or not in a syscall

	Class Class
	// CallSite names the kernel function that asked ("" when unknown); SiteProbe
	// is what the call site alone says, before opts are taken into account.
	CallSite  string
	SiteProbe bool
	// CallSiteVia names the capability function the call site called
	// (capable, ns_capable, capable_wrt_inode_uidgid, ...): which user
	// namespace the check is against follows from it ("" unknown).
	CallSiteVia string

	TargetNS UserNS
	NS       [NSCount]uint32
	// CredUserNS is the checked credentials' user namespace (NS[NSUser] is the
	// real credentials'); NSAnswer which rule of cap_capable answered.
	CredUserNS uint32
	NSAnswer   uint8

	CapEffective, CapPermitted, CapInheritable uint64

	CgroupID   uint64
	CgroupName string
	// ExeIno and ExeDev identify the executable, as the kernel's aggregation key does.
	ExeIno uint64
	ExeDev uint32

	// Container is set by enrichment for checks made inside a container.
	Container *Container

	// NetArg is what a capability-free alternative rests on: bind(2)'s port
	// under a CAP_NET_BIND_SERVICE check, socket(2)'s protocol + 1 under a
	// CAP_NET_RAW one; 0 unknown. BindPort and SocketProtocol read it.
	NetArg uint16
	// NetSysctls are the sysctls of the network namespace the check was made in.
	NetSysctls NetSysctls

	// Listen marks an item that is no check but a socket listening on a port
	// below 1024 (BindPort) that needed no CAP_NET_BIND_SERVICE check: its
	// network namespace's ip_unprivileged_port_start (NetSysctls.PortStart, as
	// of the listen) let it. Cap is CAP_NET_BIND_SERVICE, granted, for filters.
	Listen bool

	// Exec marks an item that is no check but a process's exec (DeliverExecs):
	// Process is the new program, and only the identity fields are set.
	// Handoff: a runtime handed over to it (only the runtime's process tree
	// can). Start: that hand-over was its container's start, as the recorder
	// decided (StartOf).
	Exec, Handoff, Start bool
}

// StartOf tells whether an exec item is its container's start: a runtime's
// hand-over to the container's first process (the runtime's pid for it), or
// in a container the runtime says started once the hooks were attached.
func (c *Check) StartOf(attached time.Time) bool {
	if !c.Exec || !c.Handoff || c.Container == nil {
		return false
	}
	ctr := c.Container
	return (ctr.HostPID != 0 && ctr.HostPID == c.Process.Tgid) || (!ctr.StartTime.IsZero() && !ctr.StartTime.Before(attached))
}

// Granted reports the kernel's verdict.
func (c *Check) Granted() bool { return c.Ret == 0 }

// Container is what the container runtime says about a check's container.
type Container struct {
	ID        string // without the runtime prefix
	Runtime   string // "containerd", "cri-o", "docker"
	Name      string
	ImageName string
	ImageID   string
	StartTime time.Time
	// HostPID is the container's first process, on the host, as the runtime
	// says (0 unknown): the process the runtime hands over to at its start.
	HostPID uint32
	// UserNS is the user namespace the runtime gave the container (a pod's
	// hostUsers: false), 0 when it runs in the node's.
	UserNS uint32
	// Undescribed: the runtime did not describe it (gone, or none of its
	// own): only a cgroup's name says it is a container.
	Undescribed bool
	Pod         *Pod // nil for containers outside Kubernetes
}

// Pod identifies a Kubernetes pod.
type Pod struct {
	Namespace, Name, UID   string
	Labels                 map[string]string
	Workload, WorkloadKind string
}

// NetSysctls are a network namespace's sysctls that let an operation pass
// without a capability check: binds to ports from PortStart on
// (net.ipv4.ip_unprivileged_port_start; -1 unknown), ICMP datagram sockets
// for groups PingGroup[0] to PingGroup[1] (net.ipv4.ping_group_range; none
// when [0] > [1]).
type NetSysctls struct {
	PortStart int32
	PingGroup [2]uint32
}

// Known tells whether the kernel reported them.
func (n NetSysctls) Known() bool { return n.PortStart >= 0 }

// capNetBindService and capNetRaw are the capabilities NetArg speaks of.
const (
	capNetBindService = 10
	capNetRaw         = 13
)

// BindPort is the port bind(2) asked for under a CAP_NET_BIND_SERVICE
// check, or a Listen item's port; 0 unknown.
func (c *Check) BindPort() uint16 {
	if c.Cap != capNetBindService {
		return 0
	}
	return c.NetArg
}

// SocketProtocol is socket(2)'s protocol under a CAP_NET_RAW check; -1 unknown.
func (c *Check) SocketProtocol() int32 {
	if c.Cap != capNetRaw || c.NetArg == 0 {
		return -1
	}
	return int32(c.NetArg) - 1
}

// hostNamespaces are read once: the host's do not change.
var hostNamespaces = sync.OnceValue(HostNamespaces)

// InHostNetNS tells whether the check was made in the host's network namespace.
func (c *Check) InHostNetNS() bool { return c.InHostNS(NSNet) }

// InHostNS tells whether the check was made in the host's namespace of kind i (NSNet, ...).
func (c *Check) InHostNS(i int) bool {
	host := hostNamespaces()[i]
	return host != 0 && c.NS[i] == host
}
