/* SPDX-License-Identifier: GPL-2.0 */
/* The records the BPF programs send to user space; bpf2go generates the Go twins. */
#ifndef __CAPSREC_H
#define __CAPSREC_H

#define TASK_COMM_LEN 16
#define CGROUP_NAME_LEN 128
#define FILENAME_LEN 1024
#define ARGS_LEN 1024
/* A path is written backwards from the end of a PATH_LEN buffer; the slack
 * past it lets the verifier see that a NAME_MAX copy never runs off the end. */
#define PATH_LEN 4096
#define NAME_MAX_LEN 256

enum event_type {
	EVENT_CAP = 1,
	EVENT_EXEC = 2,
	EVENT_FORK = 3,
	EVENT_EXIT = 4,
	EVENT_LEARN = 5,
	EVENT_CTX = 6,
	/* A cap_event for no check: a listening socket on a port below 1024 that
	 * needed no CAP_NET_BIND_SERVICE, because its network namespace's
	 * ip_unprivileged_port_start is at or below the port (net_arg: the port;
	 * opts: the sysctl). Joined to its context as a check is. */
	EVENT_LISTEN = 7,
};

#define CAP_NET_BIND_SERVICE 10
#define CAP_NET_RAW 13
#define PRIVILEGED_PORTS 1024 /* the kernel's default ip_unprivileged_port_start */

/* In the order --attach auto tries them; user space names each in lower case
 * (tools/enumgen). */
enum attach_method {
	METHOD_TRACEPOINT = 1,
	METHOD_FEXIT = 2,
	METHOD_KPROBE = 3,
};

/* Who a check belongs to (capsrec.class: the member's name in lower case): the
 * workload's own need, a kernel probe (a caller whose answer gates nothing:
 * callsite.Kinds), the container runtime setting a container up, or a check
 * under borrowed credentials. */
enum check_class {
	CLASS_NEED = 0,
	CLASS_PROBE = 1,
	CLASS_RUNTIME = 2,
	CLASS_OVERRIDE_CREDS = 3,
	/* Decided in user space, never by the programs: answered in a user
	 * namespace other than the subject's own (ns_answer), so the container's
	 * capabilities do not decide it. */
	CLASS_USERNS = 4,
	CLASS_COUNT,
};

/* What a kernel function is to the call-site walk (struct site_range.kind). */
enum site_kind {
	SITE_UNKNOWN = 0,  /* the caller: a need */
	SITE_GLUE = 1,     /* tracing machinery between the hook and cap_capable */
	SITE_PLUMBING = 2, /* capable(), ns_capable(), the noaudit wrappers, ...: look further */
	SITE_CAPSET = 3,   /* cap_capset: a need when the call raises the inheritable set beyond the
			    * old inheritable and permitted sets (then the answer gates it), else a probe */
	SITE_PROBE = 4,    /* a caller whose answer gates nothing: a probe, and the call site */
};

/*
 * A process's runtime mark (runtime_tasks). Only the container runtime server's
 * process tree carries one: the server itself (MARK_SERVER: its own checks are
 * not runtime setup), a runtime binary it or its runtimes exec (1 + the binary's
 * index), and that binary's re-exec of an unlinked copy of itself (| MARK_CLONE:
 * runc init), whose next exec is the container's command and ends the mark.
 */
enum runtime_mark_bits {
	MARK_INDEX = 0x3f,
	MARK_CLONE = 0x40,
	MARK_SERVER = 0xff,
};

/* config.verdict_filter: which verdicts the kernel sends. */
enum verdict_filter {
	VERDICT_ALL = 0,
	VERDICT_GRANTED = 1,
	VERDICT_DENIED = 2,
};

/* config.filter_cgroups: how the kernel uses cgroup_filter. */
enum cgroup_filter_mode {
	CGROUPS_ALL = 0,     /* no cgroup filter */
	CGROUPS_ONLY = 1,    /* keep listed cgroups (pods) and those above cgroup_watermark */
	CGROUPS_EXCLUDE = 2, /* drop listed ones (--host) */
};

/* A runtime_tasks entry: the mark holds only for the process that started at
 * start, so that no mark outlives its process (a pid reused by another).
 * Marks the programs set carry the leader's start_boottime in ns; those the
 * start-up scan set carry /proc's resolution, clock ticks (ticks = 1). */
struct runtime_mark {
	__u64 start;
	__u8 mark;
	__u8 ticks;
	__u8 pad[6];
};

#define USER_HZ_NS 10000000ULL /* one clock tick of /proc/PID/stat's starttime */

/*
 * Which rule of cap_capable() answered a check (cap_event.ns_answer), from
 * the checked credentials and the target user namespace, walked as the kernel
 * walks them (security/commoncap.c): the credentials' own namespace (their
 * effective set decided), the owner rule (a namespace the caller's euid owns,
 * whose parent is the caller's: granted whatever its capabilities), or the
 * level rule (the target is not below the caller's namespace: refused
 * whatever its capabilities).
 */
enum ns_answer {
	ANSWER_CAPS = 0,
	ANSWER_OWNER = 1,
	ANSWER_LEVEL = 2,
	ANSWER_UNKNOWN = 3, /* deeper than the walk goes: user space takes it for ANSWER_CAPS */
};
#define NS_WALK 8

/* What the programs are specialised with before load: the verifier prunes what it turns off. */
struct config {
	__u64 cap_mask;       /* bit n set: keep CAP n (caps 0..63) */
	__u32 self_tgid;      /* capsrec's own checks are never recorded */
	__u32 verify_every;   /* check one fast walk in this many against the kernel's unwinder (0: never) */
	__u32 wakeup_bytes;   /* each CPU wakes the reader once it sent this many bytes; 0: every record */
	__u8 verdict_filter;  /* enum verdict_filter */
	__u8 filter_pids;     /* keep only the tgids in pid_filter */
	__u8 filter_comm;     /* keep only comm_filter */
	__u8 filter_cgroups;  /* enum cgroup_filter_mode */
	__u8 has_task_pt_regs; /* bpf_task_pt_regs exists (5.15+) */
	__u8 track_processes; /* exec/fork/exit programs feed the process cache */
	__u8 aggregate;       /* count checks per agg_key, send each key's first (profile --live) */
	__u8 opts_bitmask;    /* cap_capable's 4th argument is a bitmask (5.1+), not an audit int */
	__u8 hide_classes;    /* bit n set: checks of class n are counted, not sent */
	__u8 classify_sites;  /* walk the kernel stack to find and classify each check's call site */
	__u8 follow_pids;     /* a process a tgid in pid_filter forks joins it (record -- COMMAND) */
	__u8 pad[1];
	char comm_filter[TASK_COMM_LEN];
};

#define MAX_SITES 128 /* sorted [start, end) ranges, padded with start = ~0 */
/* overlayfs's text, sorted ranges: a check under borrowed credentials is
 * overlayfs' (its mounter's) only with one of its functions on the stack. */
#define MAX_OVERLAY_RANGES 64
#define OVERRIDE_DEPTH 32 /* frames searched for overlayfs */
#define STACK_DEPTH 12
#define WALK_WORDS 64 /* the raw stack window the fast walk reads: 512 bytes above the anchor */
#define MAX_WALK 10   /* frames the fast walk passes through at most */

/* A pass-through frame of the fast walk: a return address into glue or plumbing. */
struct frame_info {
	__s32 delta; /* bytes from this return address's slot to the caller's; <= 0: always unwind */
	__u32 kind;  /* enum site_kind */
};

/* The fast walk's start, learned by user space from the kernel's unwinder. */
struct walk_state {
	__s32 anchor;       /* bytes from the program's ctx to the first slot; -1 unknown, less: never */
	__u32 broken;       /* set when a sampled check disagreed with the unwinder: always unwind */
	__u64 anchor_value; /* the return address the first slot must hold */
	__u64 mismatch_fast; /* the first disagreement: what the fast walk found ... */
	__u64 mismatch_slow; /* ... and what the unwinder found */
	__u32 generation;    /* bumped when a learned frame changes: cached walks are void */
	__u32 pad;
};

/* Per CPU, the last fast walk: the slots it read and what they held. A check
 * whose stack holds the same return addresses at those slots walks the same
 * way, to the same call site: comparing them is the whole walk. */
#define WALK_PATH 16 /* a power of two above MAX_WALK */
struct walk_cache {
	__u32 n; /* slots in idx/val; 0: empty */
	__u32 generation;
	__u32 words; /* window words the walk read up to: only those are read again */
	__u32 pad2;
	__u64 last_learn; /* ktime of this CPU's last learn event: at most one a millisecond */
	__u64 site;
	__u64 via;
	__u8 probe;
	__u8 capset;
	__u8 pad[6];
	__u32 idx[WALK_PATH];
	__u64 val[WALK_PATH];
};

struct site_range {
	__u64 start;
	__u64 end;
	__u32 kind;
	__u32 pad;
};

/* A context's namespaces, in order; lower-cased, each member names the
 * namespace as Tetragon's process.ns does (tools/enumgen). */
enum ns_index {
	NS_UTS,
	NS_IPC,
	NS_MNT,
	NS_PID,
	NS_PID_FOR_CHILDREN,
	NS_NET,
	NS_TIME,
	NS_TIME_FOR_CHILDREN,
	NS_CGROUP,
	NS_USER,
	NS_COUNT,
};

struct check_stats {
	__u64 seen;           /* checks that reached a program, capsrec's own excluded */
	__u64 filtered;       /* checks dropped by an in-kernel filter */
	__u64 lost;           /* checks the ring buffer had no room for */
	__u64 lost_proc;      /* exec/fork/exit records the ring buffer had no room for */
	__u64 missed_return;  /* kprobe entries whose return never came */
	__u64 aggregated;     /* checks counted in the aggregation map, not sent */
	__u64 agg_full;       /* checks sent whole because the aggregation map was full */
	__u64 hidden[CLASS_COUNT]; /* checks of a hidden class, counted and not sent */
	__u64 unwind_failed;  /* checks whose kernel stack could not be read: counted as needs */
	__u64 fast_walks;     /* call sites found by the fast walk */
	__u64 slow_walks;     /* call sites found by the kernel's unwinder (bpf_get_stack) */
	__u64 walk_verified;  /* fast walks checked against the unwinder */
	__u64 walk_mismatch;  /* ... that disagreed (the fast walk then turns itself off) */
	__u64 contexts;       /* ctx_events sent: a task's context changed, or was not known */
	__u64 capset_pending_full; /* granted capset checks decided by the call's arguments: no room to wait */
	__u64 follow_full;    /* processes a followed one forked that pid_filter had no room for */
	__u64 unwoken_bytes;  /* sent from this CPU since it last woke the reader */
};

struct event_header {
	__u8 type;
	__u8 pad[3];
	__u32 tgid;
	__u64 ktime; /* CLOCK_BOOTTIME ns */
};

/*
 * A check carries what changes from one check to the next. What a task's
 * checks share, its context (credentials, namespaces, executable, cgroup),
 * comes in a ctx_event, sent before the first check under each new context:
 * user space joins a check to the last ctx_event of its thread (tid) whose seq
 * is the check's ctx_seq.
 */
struct cap_event {
	struct event_header hdr;
	__u64 cgroup_id;
	__u64 call_site; /* return address into the kernel function that asked; 0 unknown */
	/* Return address into the capability function the call site called
	 * (capable, ns_capable, capable_wrt_inode_uidgid, ...): which user
	 * namespace it checks against, for user-namespace readiness; 0 unknown. */
	__u64 call_site_via;
	__u32 tid;
	__u32 ctx_seq; /* the task's ctx_event this check was made under */
	__s32 cap;
	__s32 ret;
	__u32 opts;       /* cap_capable's 4th argument; fexit and kprobe only */
	__s32 syscall_nr; /* -1: not in a syscall, or unknown */
	__u32 target_ns_level;
	__u32 target_ns_uid;
	__u32 target_ns_gid;
	__u32 target_ns_inum;
	__u8 method;
	__u8 override_creds; /* the checked cred is not the task's real_cred */
	__u8 has_opts;
	__u8 class; /* enum check_class */
	__u8 site_probe; /* the call site says probe (for cap_capset: with the call's arguments) */
	__u8 ns_answer;  /* enum ns_answer */
	/* What a capability-free alternative rests on, read from the syscall's
	 * arguments: bind(2)'s port under a CAP_NET_BIND_SERVICE check, socket(2)'s
	 * protocol + 1 under a CAP_NET_RAW one; 0 unknown (another syscall, io_uring). */
	__u16 net_arg;
};

struct ctx_event {
	struct event_header hdr;
	__u64 cgroup_id;
	__u64 start_boottime; /* of the thread group leader */
	__u64 cap_effective;  /* of the checked cred */
	__u64 cap_permitted;
	__u64 cap_inheritable;
	__u64 exe_ino; /* the executable's inode and device: a binary's identity in the kernel */
	__u32 exe_dev;
	__u32 tid;
	__u32 seq;
	__u32 ptgid;
	__u32 uid;
	__u32 gid;
	__u32 euid;
	__u32 auid;
	__u32 ns_pid; /* tgid as seen in the task's own pid namespace */
	__u32 ns[NS_COUNT];
	__u32 cred_user_ns; /* the checked cred's user namespace (ns[NS_USER] is the real cred's) */
	/* The network namespace's net.ipv4.ip_unprivileged_port_start and
	 * net.ipv4.ping_group_range: what lets a low port or an ICMP socket pass
	 * without a check there. -1, and 1 0, when the kernel lacks them. */
	__s32 ip_prot_sock;
	__u32 ping_gid[2];
	__u32 pad;
	char comm[TASK_COMM_LEN];
	char cgroup_name[CGROUP_NAME_LEN];
};

/*
 * What identifies the context last sent for a thread (ctx_sent, an LRU keyed
 * by tid): when any of it differs at a check, a new ctx_event goes first. The
 * pointers change when credentials, namespaces, executable or parent do;
 * contents besides them guard against an object freed and reused at the same
 * address, and start against a tid reused by a new thread.
 */
struct ctx_key {
	__u64 cred; /* the checked cred */
	__u64 real_cred;
	__u64 nsproxy;
	__u64 exe_file;
	__u64 parent;
	__u64 cgroup_id;
	__u64 start; /* the thread's start_boottime */
	__u64 cap_effective;
	__u32 uid;
	__u32 euid;
	__u32 auid;
	__u32 pad;
	char comm[TASK_COMM_LEN];
};

struct ctx_sent {
	struct ctx_key key;
	__u32 seq;
	__u8 runtime; /* the thread's process runs a container runtime (runtime_tasks), as of this context */
	__u8 changed; /* in the per-CPU scratch only: the key differs from the last sent, whose seq is seq */
	__u8 pad[2];
};

/*
 * A granted cap_capset check waiting for its call's outcome (capset_pending,
 * by tid). Whether its CAP_SETPCAP gated the call depends on the set the
 * kernel copied from the caller, which capsrec cannot read (the caller's
 * buffer may have changed since: another thread). The credentials after say
 * it: only capset raises the inheritable set, so a set beyond the old
 * inheritable and permitted ones (old_sets) once the call is done was a
 * raise the check allowed. Decided at the thread's next context change (a
 * capset that succeeded commits new credentials), exec or exit, and by user
 * space for those left at the end.
 */
struct capset_pending {
	struct cap_event ev; /* class not yet decided */
	__u64 old_sets;      /* the old inheritable | permitted sets */
};

/* profile --live: checks counted in the kernel per key; only a key's first check is sent. */
struct agg_key {
	__u64 cgroup_id;
	__u64 exe_ino;
	__u32 exe_dev;
	__s32 cap;
	__u8 granted;
	__u8 audit; /* 0 unknown (tracepoint), 1 audited, 2 noaudit */
	__u8 override_creds;
	__u8 class; /* enum check_class */
	/* What user space decides the userns class from (ClassUserNS): the
	 * checked cred's user namespace and which rule answered. */
	__u32 cred_user_ns;
	__u8 ns_answer;
	__u8 pad[7];
};

struct agg_value {
	__u64 count;
	__u64 last_ktime;
};

struct exec_event {
	struct event_header hdr;
	__u64 start_boottime;
	__u32 ptgid;
	__u32 uid;
	__u32 gid;
	__u32 euid;
	__u32 auid;
	__u32 args_len;
	__u32 cwd_off; /* the cwd is cwd[cwd_off:] up to its NUL */
	__u8 args_truncated;
	__u8 cwd_truncated;
	__u8 runtime;      /* 1 + index of the container runtime binary this process runs as; 0 none */
	__u8 exe_unlinked; /* the executable has no name in any directory (memfd, O_TMPFILE, deleted) */
	__u32 exe_off;     /* the executable's own path is exe_path[exe_off:] up to its NUL */
	__u8 exe_truncated;
	__u8 cwd_unlinked; /* the cwd was removed */
	/* A runtime (runc init) handed over to this program: a container's command,
	 * or a command exec'd in one. Only the runtime's tree can. */
	__u8 handoff;
	__u8 pad;
	__u32 ns_pid; /* tgid as seen in the task's own pid namespace (1: a container's first process) */
	__u64 cgroup_id;
	char cgroup_name[CGROUP_NAME_LEN];
	char comm[TASK_COMM_LEN];
	char filename[FILENAME_LEN];
	char args[ARGS_LEN];
	char cwd[PATH_LEN + NAME_MAX_LEN];
	char exe_path[PATH_LEN + NAME_MAX_LEN];
};

struct fork_event {
	struct event_header hdr;
	__u64 start_boottime;
	__u32 ptgid;
	__u32 pad;
};

struct exit_event {
	struct event_header hdr;
};

/* A container runtime's executable, by identity (runtime_exes). */
/* Sent when the fast walk met a frame it has not learned: the unwinder's
 * return addresses and the raw stack above the anchor, to learn from. */
struct learn_event {
	struct event_header hdr;
	__u32 n_ips;
	__u32 n_words; /* of the window read; past them lies an older sample */
	__u64 ips[STACK_DEPTH];
	__u64 window[WALK_WORDS];
};

struct exe_key {
	__u64 ino;
	__u32 dev;
	__u32 pad;
};

#endif
