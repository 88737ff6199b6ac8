package callsite

import "strings"

// Scope is the user namespace a check is made against, as it would be for a
// pod of its own user namespace (hostUsers: false): the host's, which no
// capability of the pod reaches, or one the pod would own.
type Scope uint8

const (
	ScopeUnknown Scope = iota // the call site or the function it called is not known to capsrec
	ScopeHost                 // the initial user namespace: refused to a pod of its own user namespace
	ScopeOwn                  // the caller's, or one of its namespaces' owner: the pod's own
)

func (s Scope) String() string {
	switch s {
	case ScopeHost:
		return "host"
	case ScopeOwn:
		return "own"
	}
	return "unknown"
}

// viaScopes are the capability functions whose namespace their definition
// fixes, whoever calls them (kernel/capability.c, fs/inode.c,
// net/core/sock.c, net/netlink/af_netlink.c): capable() and its kin check
// against &init_user_ns; capable_wrt_inode_uidgid() against
// current_user_ns(); sk_net_capable() and netlink_net_capable() against
// the socket's network namespace's owner.
var viaScopes = map[string]Scope{
	"capable": ScopeHost, "has_capability": ScopeHost, "has_capability_noaudit": ScopeHost,
	"sk_capable": ScopeHost, "netlink_capable": ScopeHost,
	"capable_wrt_inode_uidgid": ScopeOwn, "sk_net_capable": ScopeOwn, "netlink_net_capable": ScopeOwn,
}

// nsVia are the functions that check against a namespace their caller
// passes (ns_capable() and its kin; tail calls may hide a wrapper such as
// sk_capable() behind them): the caller decides, by callerScopes.
var nsVia = map[string]bool{
	"ns_capable": true, "ns_capable_noaudit": true, "ns_capable_setid": true, "file_ns_capable": true,
	"has_ns_capability": true, "has_ns_capability_noaudit": true, "sk_ns_capable": true, "netlink_ns_capable": true,
	"checkpoint_restore_ns_capable": true, "checkpoint_restore_ns_capable_noaudit": true,
}

// callerScopes are callers of the ns_capable() family whose namespace is
// read from the sources of every kernel of the matrix (5.10 to 7.2; the
// lines are in docs/classes.md): each passes its caller's user namespace
// or the owner of one of its namespaces (network, UTS, mount), never
// &init_user_ns. Syscalls are named without their wrapper (sys_chroot for
// __x64_sys_chroot, __arm64_sys_chroot, __do_sys_chroot, ksys_chroot).
var callerScopes = map[string]Scope{
	// net->user_ns: the socket's network namespace (af_inet.c, af_inet6.c, af_packet.c, sock.c, rtnetlink.c).
	"__inet_bind": ScopeOwn, "__inet6_bind": ScopeOwn, "inet_bind": ScopeOwn, "inet6_bind": ScopeOwn,
	"inet_create": ScopeOwn, "inet6_create": ScopeOwn, "packet_create": ScopeOwn,
	"sk_setsockopt": ScopeOwn, "sock_setsockopt": ScopeOwn,
	"rtnetlink_rcv_msg": ScopeOwn, "rtnl_link_get_net_capable": ScopeOwn,
	// current->nsproxy->uts_ns->user_ns (kernel/sys.c), ->mnt_ns->user_ns (may_mount, fs/namespace.c).
	"sys_sethostname": ScopeOwn, "sys_setdomainname": ScopeOwn, "path_mount": ScopeOwn,
	// current_user_ns() (fs/open.c chroot, kernel/nsproxy.c, security/commoncap.c).
	"sys_chroot": ScopeOwn, "unshare_nsproxy_namespaces": ScopeOwn, "cap_task_prctl": ScopeOwn,
	"cap_capset": ScopeOwn, "cap_inh_is_capped": ScopeOwn,
	// old->user_ns (kernel/sys.c, kernel/groups.c): ns_capable_setid.
	"sys_setuid": ScopeOwn, "sys_setgid": ScopeOwn, "sys_setreuid": ScopeOwn, "sys_setregid": ScopeOwn,
	"sys_setresuid": ScopeOwn, "sys_setresgid": ScopeOwn, "sys_setfsuid": ScopeOwn, "sys_setfsgid": ScopeOwn,
	"sys_setgroups": ScopeOwn, "may_setgroups": ScopeOwn,
	// tcred->user_ns: the target's (kill_ok_by_cred, kernel/signal.c), inside the pod.
	"check_kill_permission": ScopeOwn, "kill_ok_by_cred": ScopeOwn,
}

// syscallPrefixes are the syscall wrappers' prefixes, longest first.
var syscallPrefixes = []string{"__arm64_sys_", "__ia32_sys_", "__x64_sys_", "__do_sys_", "__se_sys_", "__sys_", "ksys_"}

// callerKey is a caller's name without compiler suffixes, its syscall wrapper named sys_NAME.
func callerKey(site string) string {
	name := baseName(site)
	for _, p := range syscallPrefixes {
		if strings.HasPrefix(name, p) {
			return "sys_" + strings.TrimPrefix(name, p)
		}
	}
	return name
}

// UserNSScope is the user namespace a check made at site through via (the
// capability function site called) is made against, as it would be in a
// pod of its own user namespace.
func UserNSScope(site, via string) Scope {
	v := baseName(via)
	if s, ok := viaScopes[v]; ok {
		return s
	}
	if nsVia[v] {
		return callerScopes[callerKey(site)]
	}
	return ScopeUnknown
}
