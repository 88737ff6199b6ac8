//go:build ignore

// SPDX-License-Identifier: GPL-2.0
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "capsrec.h"
#include "arch.h"

char LICENSE[] SEC("license") = "GPL";

#define PF_KTHREAD 0x00200000
#define MAX_PATH_DEPTH 48

/* Set from Go before load, in one piece (pwru style): the verifier prunes what it turns off. */
const volatile struct config cfg = {
	.cap_mask = ~0ULL,
	.track_processes = 1,
	.opts_bitmask = 1,
	.verify_every = 1024,
};
#define CAP_OPT_NOAUDIT (1 << 1)

/* Pod filters: every cgroup id up to here is decided (see cgroup_filter). */
__u64 cgroup_watermark = 0;
/* The core kernel's text: frames outside it before the first kernel frame are BPF
 * programs and trampolines. Written after load, with the call-site table, so that
 * reading /proc/kallsyms overlaps the verifier's work. */
__u64 text_start = 0;
__u64 text_end = 0;

/* How many site_ranges are filled. Not const on purpose: the verifier must not know
 * it, or it walks the binary search once per constant index and never prunes. */
__u32 n_sites = 0;
/* How many overlay_ranges are filled; overlay_known: they were read (kallsyms). */
__u32 n_overlay = 0;
__u8 overlay_known = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* The context last sent for each thread (tid): see struct ctx_key. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct ctx_sent);
} ctx_sent SEC(".maps");

/* One entry per CPU: a single lookup per check counts it. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct check_stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} pid_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct agg_key);
	__type(value, struct agg_value);
} agg SEC(".maps");

/*
 * The cgroup filter's set, by cgroup (v2) id: the pods kept, or with --host
 * the containers dropped. With pod filters a cgroup not in it is dropped only
 * when it is at most cgroup_watermark: cgroup ids grow with each cgroup made,
 * and user space has decided every one up to there; a newer one (a container
 * starting, whose pod the runtime cannot name yet) is kept, and user space
 * decides on its checks.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_filter SEC(".maps");

/* The functions the call-site walk knows, sorted by start, filled from /proc/kallsyms before attach. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SITES);
	__type(key, __u32);
	__type(value, struct site_range);
} site_ranges SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_OVERLAY_RANGES);
	__type(key, __u32);
	__type(value, struct site_range);
} overlay_ranges SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[OVERRIDE_DEPTH]);
} override_stack SEC(".maps");

/* Pass-through frames of the fast walk, by return address; learned in user space. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct frame_info);
} frames SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct walk_state);
} walk_states SEC(".maps");

/* The raw stack window and the unwinder's addresses: too big for the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct learn_event);
} walk_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct walk_cache);
} walk_caches SEC(".maps");

/* Container runtime executables by identity; the value is 1 + the runtime's index. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct exe_key);
	__type(value, __u8);
} runtime_exes SEC(".maps");

/* The runtime executables' sizes, by 1 + index: a re-exec of an unlinked copy
 * keeps the mark only when the copy is the size of the binary it copies. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u64);
} runtime_sizes SEC(".maps");

/*
 * Processes (tgids) of the container runtime server's tree (capsrec.h's MARK_*):
 * the server, seeded by user space after a CRI call proved it the server; a
 * runtime binary exec'd by a marked process; a runtime's re-exec of an unlinked
 * copy of itself (runc init). Inherited on fork, cleared on exit and on any
 * other exec (the container's command). A runtime binary exec'd by anyone else
 * is an ordinary process. Comm is never used: anyone can set it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct runtime_mark);
} runtime_tasks SEC(".maps");

/* Granted cap_capset checks until their call's outcome is known (struct capset_pending). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct capset_pending);
} capsets_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct capset_pending);
} pending_scratch SEC(".maps");

struct cap_args {
	__u64 cred;    /* const struct cred * */
	__u64 targ_ns; /* struct user_namespace * */
	__u64 call_site;
	__u64 call_site_via;
	__s32 cap;
	__u32 opts;
	__u8 probe;
	__u8 capset;
	__u8 failed; /* no kernel stack could be read: the call site is unknown */
	__u8 pad[5];
};

/* kprobe entry -> kretprobe: LRU so that entries whose return never came age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct cap_args);
} kprobe_args SEC(".maps");

/* Keeps the event structs in the object's BTF for bpf2go -type. */
const struct cap_event *const unused_cap_event __attribute__((unused)) = 0;
const struct ctx_event *const unused_ctx_event __attribute__((unused)) = 0;
const struct exec_event *const unused_exec_event __attribute__((unused)) = 0;
const struct fork_event *const unused_fork_event __attribute__((unused)) = 0;
const struct exit_event *const unused_exit_event __attribute__((unused)) = 0;
const struct site_range *const unused_site_range __attribute__((unused)) = 0;
const struct exe_key *const unused_exe_key __attribute__((unused)) = 0;
const struct learn_event *const unused_learn_event __attribute__((unused)) = 0;
const struct frame_info *const unused_frame_info __attribute__((unused)) = 0;
const struct walk_state *const unused_walk_state __attribute__((unused)) = 0;
const struct walk_cache *const unused_walk_cache __attribute__((unused)) = 0;
const struct runtime_mark *const unused_runtime_mark __attribute__((unused)) = 0;
const struct capset_pending *const unused_capset_pending __attribute__((unused)) = 0;
/* ... and the enums Go uses, for bpf2go -type. */
const enum event_type *const unused_event_type __attribute__((unused)) = 0;
const enum check_class *const unused_check_class __attribute__((unused)) = 0;
const enum site_kind *const unused_site_kind __attribute__((unused)) = 0;
const enum ns_index *const unused_ns_index __attribute__((unused)) = 0;
const enum ns_answer *const unused_ns_answer __attribute__((unused)) = 0;
const enum attach_method *const unused_attach_method __attribute__((unused)) = 0;
const enum runtime_mark_bits *const unused_runtime_mark_bits __attribute__((unused)) = 0;
const enum verdict_filter *const unused_verdict_filter __attribute__((unused)) = 0;
const enum cgroup_filter_mode *const unused_cgroup_filter_mode __attribute__((unused)) = 0;

/*
 * Wakes the reader once per cfg.wakeup_bytes this CPU sent: a reader that lags is
 * awake and reading anyway, and a wake-up per record (~800 ns) is what
 * batching is for. Counted per CPU, not asked of the ring (a helper call per
 * record): the reader's poll picks up what a quiet CPU leaves below the mark.
 */
static __always_inline void submit(void *rec, __u64 size)
{
	__u64 flags = 0;
	if (cfg.wakeup_bytes) {
		__u32 zero = 0;
		struct check_stats *st = bpf_map_lookup_elem(&stats, &zero);

		flags = BPF_RB_NO_WAKEUP;
		if (st) {
			st->unwoken_bytes += size + 8;
			if (st->unwoken_bytes >= cfg.wakeup_bytes) {
				st->unwoken_bytes = 0;
				flags = BPF_RB_FORCE_WAKEUP;
			}
		}
	}
	bpf_ringbuf_submit(rec, flags);
}

static __always_inline bool comm_matches(void)
{
	char comm[TASK_COMM_LEN];
	bpf_get_current_comm(comm, sizeof(comm));
#pragma unroll
	for (int i = 0; i < TASK_COMM_LEN; i++) {
		if (comm[i] != cfg.comm_filter[i])
			return false;
		if (comm[i] == 0)
			return true;
	}
	return true;
}

/*
 * The filters that need only the check's entry arguments: the kprobe path runs
 * them before it stores anything, the others right away.
 */
static __always_inline bool keep_check(__u64 pid_tgid, int cap, struct task_struct *task)
{
	if (cap < 0 || cap > 63 || !(cfg.cap_mask & (1ULL << cap)))
		return false;
	if (cfg.filter_pids) {
		__u32 tgid = pid_tgid >> 32;
		if (!bpf_map_lookup_elem(&pid_filter, &tgid))
			return false;
	}
	if (cfg.filter_comm && !comm_matches())
		return false;
	if (cfg.filter_cgroups) {
		/* With a task BTF pointer, what bpf_get_current_cgroup_id() returns, without the call. */
		__u64 cg = task ? task->cgroups->dfl_cgrp->kn->id : bpf_get_current_cgroup_id();
		bool listed = bpf_map_lookup_elem(&cgroup_filter, &cg) != 0;
		if (cfg.filter_cgroups == CGROUPS_ONLY ? !listed && cg <= cgroup_watermark : listed)
			return false;
	}
	return true;
}

static __always_inline bool keep_verdict(int ret)
{
	if (cfg.verdict_filter == VERDICT_GRANTED && ret != 0)
		return false;
	if (cfg.verdict_filter == VERDICT_DENIED && ret == 0)
		return false;
	return true;
}

/* The pid_namespace of a struct pid and the number in it, at the pid's own level. */
static __always_inline struct upid pid_upid(struct pid *pid)
{
	struct upid up = {};
	unsigned int level = BPF_CORE_READ(pid, level);
	void *numbers = (void *)pid + bpf_core_field_offset(struct pid, numbers);

	bpf_probe_read_kernel(&up, sizeof(up), numbers + (level & 31) * sizeof(struct upid));
	return up;
}

#include "callsite.h"

/* A process's mark, 0 none: an entry holds only for the process that started
 * at its start (the thread group leader's start_boottime), read only when
 * there is an entry: nearly every process has none. */
static __always_inline __u8 mark_of(__u32 tgid, struct task_struct *task)
{
	struct runtime_mark *m = bpf_map_lookup_elem(&runtime_tasks, &tgid);
	__u64 leader_start;

	if (!m)
		return 0;
	leader_start = BPF_CORE_READ(task, group_leader, start_boottime);
	if (m->ticks ? leader_start / USER_HZ_NS != m->start : leader_start != m->start)
		return 0;
	return m->mark;
}

static __always_inline void set_mark(__u32 tgid, __u64 leader_start, __u8 mark)
{
	struct runtime_mark m = {.start = leader_start, .mark = mark};

	bpf_map_update_elem(&runtime_tasks, &tgid, &m, BPF_ANY);
}

/* The runtime server itself is marked only to pass the mark on: its own checks are not setup. */
static __always_inline bool runtime_task(struct task_struct *task, __u32 tgid)
{
	__u8 mark = mark_of(tgid, task);

	return mark && mark != MARK_SERVER;
}

/* Whether ip is in overlayfs's text: a binary search over overlay_ranges. */
__noinline bool in_overlay(__u64 ip)
{
	__u32 lo = 0, hi = n_overlay;
	struct site_range *r;

	for (int i = 0; i < 6; i++) { /* log2(MAX_OVERLAY_RANGES) */
		if (lo + 1 >= hi)
			break;
		__u32 mid = (lo + hi) / 2, key = mid;
		r = bpf_map_lookup_elem(&overlay_ranges, &key);
		if (!r)
			return false;
		if (r->start <= ip)
			lo = mid;
		else
			hi = mid;
	}
	__u32 key = lo;
	r = bpf_map_lookup_elem(&overlay_ranges, &key);
	return r && r->start <= ip && ip < r->end;
}

/*
 * A check under credentials that are not the task's own real ones is
 * borrowed (class override_creds) only when overlayfs borrowed them: its
 * mounter's, for a copy-up or a lower file (fs/overlayfs: ovl_override_creds).
 * Others are the workload's own: io_uring's personalities and the submitter's
 * credentials in its workers, access(2)'s real ids. Without kallsyms it
 * cannot be told: borrowed, as before.
 */
static __always_inline bool borrowed_by_overlayfs(void *ctx)
{
	__u32 zero = 0;
	__u64 *ips;
	long n;

	if (!overlay_known)
		return true;
	ips = bpf_map_lookup_elem(&override_stack, &zero);
	if (!ips)
		return true;
	n = bpf_get_stack(ctx, ips, OVERRIDE_DEPTH * sizeof(__u64), 0);
	if (n <= 0)
		return true;
	for (int i = 0; i < OVERRIDE_DEPTH; i++) {
		if (i * (long)sizeof(__u64) >= n)
			break;
		if (in_overlay(ips[i]))
			return true;
	}
	return false;
}

static __always_inline __u8 check_class(bool runtime, bool probe, bool override_creds)
{
	if (runtime)
		return CLASS_RUNTIME;
	if (probe)
		return CLASS_PROBE;
	if (override_creds)
		return CLASS_OVERRIDE_CREDS;
	return CLASS_NEED;
}

static __always_inline bool hidden(__u8 class)
{
	return cfg.hide_classes & (1 << class);
}

/* Counts a check of a hidden class instead of sending it; false when it is shown. */
static __always_inline bool hide(struct check_stats *st, __u8 class)
{
	if (!hidden(class))
		return false;
	if (st && class < CLASS_COUNT)
		st->hidden[class]++;
	return true;
}

/* The current task's user registers (its syscall's number and arguments); to be probe-read. */
static __always_inline struct pt_regs *user_regs(struct task_struct *task)
{
	if (cfg.has_task_pt_regs) /* needs a trusted task pointer; both helpers exist wherever task_pt_regs does */
		return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	/* task_pt_regs(): the user registers sit at the top of the kernel stack. */
	void *stack = BPF_CORE_READ(task, stack);
	return (struct pt_regs *)(stack + THREAD_SIZE) - 1;
}

static __always_inline __s32 syscall_nr_probe(struct task_struct *task)
{
	if (BPF_CORE_READ(task, flags) & PF_KTHREAD)
		return -1;
	return (__s32)BPF_CORE_READ(user_regs(task), REGS_SYSCALL_NR);
}

/* On the BTF path the kernel has bpf_task_pt_regs (5.15) whenever it has the tracepoint or
 * bpf_get_current_task_btf (5.11) ... but not always both: ask the flag. */
static __always_inline __s32 syscall_nr_btf(struct task_struct *task)
{
	if (task->flags & PF_KTHREAD)
		return -1;
	if (!cfg.has_task_pt_regs)
		return syscall_nr_probe(task);
	return (__s32)((struct pt_regs *)bpf_task_pt_regs(task))->REGS_SYSCALL_NR;
}

/*
 * What a capability-free alternative of a CAP_NET_BIND_SERVICE or CAP_NET_RAW
 * check rests on (cap_event.net_arg): the port bind(2) asked for (a sockaddr's
 * port is at the same offset in sockaddr_in and sockaddr_in6), or socket(2)'s
 * protocol + 1. These checks are rare: probe reads do.
 */
static __always_inline __u16 net_arg(struct task_struct *task, int cap)
{
	struct pt_regs *regs;
	__u16 head[2];
	__s32 nr;

	if (BPF_CORE_READ(task, flags) & PF_KTHREAD)
		return 0;
	regs = user_regs(task);
	nr = (__s32)BPF_CORE_READ(regs, REGS_SYSCALL_NR);
	if (cap == CAP_NET_BIND_SERVICE && nr == NR_BIND) {
		if (bpf_probe_read_user(head, sizeof(head), (void *)BPF_CORE_READ(regs, REGS_ARG1)))
			return 0;
		return __builtin_bswap16(head[1]);
	}
	if (cap == CAP_NET_RAW && nr == NR_SOCKET)
		return (__u16)(BPF_CORE_READ(regs, REGS_ARG2) + 1);
	return 0;
}

/*
 * A check's key is read on every check: plain loads where the verifier knows
 * the pointer's type (a helper call costs tens of ns here). kernel_cap_t is
 * u32[2] before 6.3 and u64 after: two 4-byte loads fit both.
 */
static __always_inline __u64 read_cap_btf(const kernel_cap_t *c)
{
	const __u32 *w = (const __u32 *)c;
	return w[0] | (__u64)w[1] << 32;
}

static __always_inline __u64 read_cap_probe(const kernel_cap_t *c)
{
	__u64 v = 0;
	bpf_core_read(&v, sizeof(v), c);
	return v;
}

static __always_inline void read_comm_btf(char *dst, struct task_struct *task)
{
	const __u32 *src = (const __u32 *)task->comm;
	__u32 *d = (__u32 *)dst;

	d[0] = src[0];
	d[1] = src[1];
	d[2] = src[2];
	d[3] = src[3];
}

static __always_inline void read_comm_probe(char *dst, struct task_struct *task)
{
	bpf_get_current_comm(dst, TASK_COMM_LEN);
}

#define READ(src, ...) ___arrow(src, __VA_ARGS__)
/* What bpf_get_current_cgroup_id() returns, without the call. */
#define READ_CGROUP_ID(task) ((task)->cgroups->dfl_cgrp->kn->id)
#define READ_CAP read_cap_btf
#define READ_COMM read_comm_btf
#define SYSCALL_NR syscall_nr_btf
#define FILL_CAP_EVENT fill_cap_event_btf
#define FILL_CTX_KEY fill_ctx_key_btf
#define FILL_CTX_EVENT fill_ctx_event_btf
#define AGG_KEY agg_key_btf
#define OVERRIDE_CREDS override_creds_btf
#define NS_ANSWER ns_answer_btf
#include "fill_cap_event.h"
#undef READ
#undef READ_CGROUP_ID
#undef READ_CAP
#undef READ_COMM
#undef SYSCALL_NR
#undef FILL_CAP_EVENT
#undef FILL_CTX_KEY
#undef FILL_CTX_EVENT
#undef AGG_KEY
#undef OVERRIDE_CREDS
#undef NS_ANSWER

#define READ BPF_CORE_READ
#define READ_CGROUP_ID(task) bpf_get_current_cgroup_id()
#define READ_CAP read_cap_probe
#define READ_COMM read_comm_probe
#define SYSCALL_NR syscall_nr_probe
#define FILL_CAP_EVENT fill_cap_event_probe
#define FILL_CTX_KEY fill_ctx_key_probe
#define FILL_CTX_EVENT fill_ctx_event_probe
#define AGG_KEY agg_key_probe
#define OVERRIDE_CREDS override_creds_probe
#define NS_ANSWER ns_answer_probe
#include "fill_cap_event.h"
#undef READ
#undef READ_CGROUP_ID
#undef READ_CAP
#undef READ_COMM
#undef SYSCALL_NR
#undef FILL_CAP_EVENT
#undef FILL_CTX_KEY
#undef FILL_CTX_EVENT
#undef AGG_KEY
#undef OVERRIDE_CREDS
#undef NS_ANSWER

/*
 * profile --live: count the check under its key. Returns true when the check
 * must also be sent whole: the key's first check (it names the subject), or
 * any check once the map is full.
 */
static __always_inline bool aggregated(struct check_stats *st, struct task_struct *task, const struct cred *cred,
				       struct user_namespace *targ_ns, int cap, __u32 opts, int ret, bool has_opts, bool btf,
				       __u8 class, bool override)
{
	struct agg_key k = {};
	struct agg_value *v, init = {.count = 1};

	if (btf)
		agg_key_btf(&k, task, cred, targ_ns, cap, opts, ret, has_opts, class, override);
	else
		agg_key_probe(&k, task, cred, targ_ns, cap, opts, ret, has_opts, class, override);
	init.last_ktime = bpf_ktime_get_boot_ns();
	v = bpf_map_lookup_elem(&agg, &k);
	if (v) {
		v->count++;
		v->last_ktime = init.last_ktime;
		st->aggregated++;
		return true;
	}
	if (bpf_map_update_elem(&agg, &k, &init, BPF_NOEXIST) == 0)
		return false; /* first of its key: send it */
	v = bpf_map_lookup_elem(&agg, &k);
	if (v) { /* another CPU inserted it meanwhile */
		v->count++;
		v->last_ktime = init.last_ktime;
		st->aggregated++;
		return true;
	}
	st->agg_full++;
	return false;
}

static __always_inline struct check_stats *stats_here(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&stats, &zero);
}

/* The key just built, per CPU: 112 bytes are too many for the stack next to the rest. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ctx_sent);
} ctx_scratch SEC(".maps");

static __always_inline bool same_key(const struct ctx_key *a, const struct ctx_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;

#pragma unroll
	for (int i = 0; i < sizeof(*a) / 8; i++)
		if (x[i] != y[i])
			return false;
	return true;
}

/*
 * Sends the calling thread's context, now (its key, filled): it differs from
 * the one last sent for the thread (last), or none is known (evicted, or never
 * sent). Returns the context's seq, 0 when it could not be sent: then nothing
 * is remembered, so the next check tries again, and no check is ever joined to
 * a context user space did not get.
 */
static __always_inline __u32 send_context(struct check_stats *st, struct task_struct *task, __u64 pid_tgid,
					  const struct cred *cred, bool btf, struct ctx_sent *now)
{
	__u32 tid = (__u32)pid_tgid;
	struct ctx_event *ev;

	/* Never 0; a new entry starts anywhere, so that a reused tid's seq is not its predecessor's. */
	now->seq = now->seq ? now->seq + 1 : (__u32)bpf_ktime_get_ns();
	now->seq += !now->seq;
	now->changed = 0;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev)
		return 0;
	if (btf)
		fill_ctx_event_btf(ev, task, pid_tgid, cred, &now->key, now->seq);
	else
		fill_ctx_event_probe(ev, task, pid_tgid, cred, &now->key, now->seq);
	submit(ev, sizeof(*ev));
	bpf_map_update_elem(&ctx_sent, &tid, now, BPF_ANY);
	st->contexts++;
	return now->seq;
}

/*
 * Sends tid's granted capset check waiting for its outcome, now that the
 * thread's credentials are those its call left (struct capset_pending): a
 * need when the inheritable set went beyond the old inheritable and permitted
 * sets, else a probe. Called on the thread itself, before anything of its new
 * context is sent.
 */
static __always_inline void resolve_capset(__u32 tid, struct task_struct *task)
{
	struct capset_pending *p = bpf_map_lookup_elem(&capsets_pending, &tid);
	struct check_stats *st;
	struct cap_event *ev;
	__u64 inh;
	__u8 class;

	if (!p)
		return;
	inh = read_cap_probe(&((const struct cred *)BPF_CORE_READ(task, cred))->cap_inheritable);
	class = (inh & ~p->old_sets) ? CLASS_NEED : CLASS_PROBE;
	st = stats_here();
	if (!hide(st, class)) {
		ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
		if (ev) {
			__builtin_memcpy(ev, &p->ev, sizeof(*ev));
			ev->class = class;
			ev->site_probe = class == CLASS_PROBE;
			submit(ev, sizeof(*ev));
		} else if (st) {
			st->lost++;
		}
	}
	bpf_map_delete_elem(&capsets_pending, &tid);
}

/*
 * Fills now with the thread's context key and what the last one sent for it
 * says: its seq (0 none), whether the key changed, and the runtime mark. The
 * mark rides with the context: it changes only at exec (which forgets the
 * thread's context) and fork (a new thread). What the lookup found goes to the
 * scratch, not the stack: the verifier then does not walk the rest once per
 * outcome. The key, tid, is the caller's, set once at the start: set here, the
 * verifier did 40% more work.
 */
static __always_inline void load_context(struct ctx_sent *now, struct task_struct *task, const struct cred *cred,
					 __u64 pid_tgid, __u32 *tid, bool btf)
{
	struct ctx_sent *last;

	if (btf)
		fill_ctx_key_btf(&now->key, task, cred);
	else
		fill_ctx_key_probe(&now->key, task, cred);
	last = bpf_map_lookup_elem(&ctx_sent, tid);
	now->seq = last ? last->seq : 0;
	now->changed = !last || !same_key(&last->key, &now->key);
	if (now->changed) {
		resolve_capset(*tid, task); /* a capset that succeeded changed the credentials */
		now->runtime = runtime_task(task, pid_tgid >> 32);
	}
	else
		now->runtime = last->runtime;
}

#define CAP_VERSION_1 0x19980330 /* one __user_cap_data_struct; versions 2 and 3 have two */

struct user_cap_header {
	__u32 version;
	int pid;
};

struct user_cap_data {
	__u32 effective;
	__u32 permitted;
	__u32 inheritable;
};

/*
 * Whether cap_capset's CAP_SETPCAP check gates the call: security/commoncap.c
 * refuses (EPERM) a new inheritable set beyond the old inheritable and permitted
 * sets unless the caller has CAP_SETPCAP, and asks on every capset. The set asked
 * for is read from the syscall's own arguments; cred is the caller's (old)
 * credentials. Anything unreadable (a 32-bit capset, a fault) counts as gating.
 */
static __always_inline bool capset_gates(struct task_struct *task, const struct cred *cred)
{
	struct pt_regs *regs = user_regs(task);
	struct user_cap_header h;
	struct user_cap_data d[2] = {};
	__u64 asked, had;

	if ((__s32)BPF_CORE_READ(regs, REGS_SYSCALL_NR) != NR_CAPSET)
		return true;
	if (bpf_probe_read_user(&h, sizeof(h), (void *)BPF_CORE_READ(regs, REGS_ARG0)) != 0)
		return true;
	if (h.version == CAP_VERSION_1) {
		if (bpf_probe_read_user(&d[0], sizeof(d[0]), (void *)BPF_CORE_READ(regs, REGS_ARG1)) != 0)
			return true;
	} else if (bpf_probe_read_user(d, sizeof(d), (void *)BPF_CORE_READ(regs, REGS_ARG1)) != 0) {
		return true;
	}
	asked = d[0].inheritable | (__u64)d[1].inheritable << 32;
	had = read_cap_probe(&cred->cap_inheritable) | read_cap_probe(&cred->cap_permitted);
	return (asked & ~had) != 0;
}

/*
 * Keeps a granted capset check until its call's outcome says whether it gated
 * the call (resolve_capset). False when there is no room: then the call's
 * arguments decide, as for a refused one, and that is counted.
 */
static __always_inline bool hold_capset(struct check_stats *st, struct task_struct *task, __u64 pid_tgid,
					const struct cred *cred, struct user_namespace *targ_ns, int cap, __u32 opts, int ret,
					__u8 method, bool has_opts, bool btf, struct call_site *cs, bool override,
					__u64 cgroup_id, __u32 ctx_seq)
{
	__u32 zero = 0, tid = (__u32)pid_tgid;
	struct capset_pending *p = bpf_map_lookup_elem(&pending_scratch, &zero);

	if (!p)
		return false;
	if (btf)
		fill_cap_event_btf(&p->ev, task, pid_tgid, cred, targ_ns, cap, opts, ret, method, has_opts, cs, CLASS_NEED,
				   override, cgroup_id, ctx_seq);
	else
		fill_cap_event_probe(&p->ev, task, pid_tgid, cred, targ_ns, cap, opts, ret, method, has_opts, cs, CLASS_NEED,
				     override, cgroup_id, ctx_seq);
	p->old_sets = read_cap_probe(&cred->cap_inheritable) | read_cap_probe(&cred->cap_permitted);
	resolve_capset(tid, task); /* an earlier one of this thread, left undecided: its outcome is in */
	if (bpf_map_update_elem(&capsets_pending, &tid, p, BPF_ANY) != 0) {
		st->capset_pending_full++;
		return false;
	}
	return true;
}

/*
 * btf: task may be read with plain loads (a trusted BTF pointer). site: the call
 * site found at kprobe entry; NULL to find it here. A check is classified only
 * once it passed the filters, and a runtime check the user hides is dropped
 * before the stack is read.
 */
static __always_inline int record_check(void *ctx, const struct cred *cred, struct user_namespace *targ_ns, int cap,
					__u32 opts, int ret, __u8 method, bool has_opts, bool btf,
					struct call_site *site, __u16 listen_port)
{
	__u32 tid, zero = 0, ctx_seq;
	struct call_site cs = {};
	struct check_stats *st;
	struct ctx_sent *now;
	struct task_struct *task;
	struct cap_event *ev;
	__u64 pid_tgid;
	bool override, pending;
	__u8 class, args_class = CLASS_NEED;

	/* A helper call costs tens of ns here: with a BTF task, ids are two loads. */
	if (btf) {
		task = bpf_get_current_task_btf();
		pid_tgid = (__u64)task->tgid << 32 | (__u32)task->pid;
	} else {
		task = (struct task_struct *)bpf_get_current_task();
		pid_tgid = bpf_get_current_pid_tgid();
	}
	tid = (__u32)pid_tgid;
	if ((pid_tgid >> 32) == cfg.self_tgid)
		return 0;
	st = stats_here();
	if (!st)
		return 0;
	st->seen++;
	if (!keep_check(pid_tgid, cap, btf ? task : NULL) || !keep_verdict(ret)) {
		st->filtered++;
		return 0;
	}
	now = bpf_map_lookup_elem(&ctx_scratch, &zero);
	if (!now)
		return 0;
	/* profile --live counts most checks in the kernel: it reads the context
	 * only for a check it sends (a probe read each, on older kernels). */
	if (cfg.aggregate)
		now->runtime = runtime_task(task, pid_tgid >> 32);
	else
		load_context(now, task, cred, pid_tgid, &tid, btf);
	if (now->runtime && hide(st, CLASS_RUNTIME))
		return 0;
	if (site)
		cs = *site;
	else if (cfg.classify_sites)
		cs = find_call_site(ctx, ctx, st);
	if (cs.failed)
		st->unwind_failed++;
	if (btf)
		override = override_creds_btf(task, cred);
	else
		override = override_creds_probe(task, cred);
	/* A granted capset check waits for its call's outcome (resolve_capset);
	 * a refused one is decided by the call's arguments: it gates no add list. */
	pending = cs.capset && ret == 0 && !now->runtime && !override;
	if (cs.capset)
		cs.probe = !capset_gates(task, cred);
	/* The stack is read again only for a check that would be override_creds. */
	class = check_class(now->runtime, cs.probe, override && !now->runtime && !cs.probe && borrowed_by_overlayfs(ctx));
	if (pending) {
		args_class = class;
		class = CLASS_NEED; /* not hidden before it is decided */
	}
	if (hide(st, class))
		return 0;
	if (cfg.aggregate) { /* a capset check waiting for its outcome is sent whole */
		if (!pending && !listen_port && aggregated(st, task, cred, targ_ns, cap, opts, ret, has_opts, btf, class, override))
			return 0;
		load_context(now, task, cred, pid_tgid, &tid, btf);
	}
	ctx_seq = now->changed ? send_context(st, task, pid_tgid, cred, btf, now) : now->seq;
	if (!ctx_seq) {
		st->lost++; /* its context could not be sent: the check is not sent either */
		return 0;
	}
	if (pending) {
		if (hold_capset(st, task, pid_tgid, cred, targ_ns, cap, opts, ret, method, has_opts, btf, &cs, override,
				now->key.cgroup_id, ctx_seq))
			return 0;
		class = args_class; /* no room to wait: the call's arguments decide, counted */
		if (hide(st, class))
			return 0;
	}
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		st->lost++;
		return 0;
	}
	if (btf)
		fill_cap_event_btf(ev, task, pid_tgid, cred, targ_ns, cap, opts, ret, method, has_opts, &cs, class, override,
				   now->key.cgroup_id, ctx_seq);
	else
		fill_cap_event_probe(ev, task, pid_tgid, cred, targ_ns, cap, opts, ret, method, has_opts, &cs, class, override,
				     now->key.cgroup_id, ctx_seq);
	if (listen_port) { /* opts: the sysctl, as the caller passed it */
		ev->hdr.type = EVENT_LISTEN;
		ev->net_arg = listen_port;
		ev->has_opts = 0;
	}
	submit(ev, sizeof(*ev));
	return 0;
}

SEC("tp_btf/cap_capable")
int BPF_PROG(tp_cap_capable, const struct cred *cred, struct user_namespace *targ_ns,
	     const struct user_namespace *capable_ns, int cap, int ret)
{
	return record_check(ctx, cred, targ_ns, cap, 0, ret, METHOD_TRACEPOINT, false, true, NULL, 0);
}

SEC("fexit/cap_capable")
int BPF_PROG(fexit_cap_capable, const struct cred *cred, struct user_namespace *targ_ns, int cap,
	     unsigned int opts, int ret)
{
	return record_check(ctx, cred, targ_ns, cap, opts, ret, METHOD_FEXIT, true, true, NULL, 0);
}

/* 5.10 has no bpf_get_current_task_btf: the task is read with probe reads. */
SEC("fexit/cap_capable")
int BPF_PROG(fexit_cap_capable_legacy, const struct cred *cred, struct user_namespace *targ_ns, int cap,
	     unsigned int opts, int ret)
{
	return record_check(ctx, cred, targ_ns, cap, opts, ret, METHOD_FEXIT, true, false, NULL, 0);
}

SEC("kprobe/cap_capable")
int BPF_KPROBE(kprobe_cap_capable, const struct cred *cred, struct user_namespace *targ_ns, int cap,
	       unsigned int opts)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct cap_args args = {.cred = (__u64)cred, .targ_ns = (__u64)targ_ns, .cap = cap, .opts = opts};

	if ((pid_tgid >> 32) == cfg.self_tgid)
		return 0;
	/* The call site must be read here: at the return cap_capable's frame is gone. */
	struct check_stats *st = stats_here();
	if (cfg.classify_sites && st && keep_check(pid_tgid, cap, NULL)) {
		/* Always the kernel's unwinder here: where a kprobe's sp points differs
		 * between kprobe mechanisms (int3, ftrace), and kprobes are the slow path anyway. */
		__u64 ips[STACK_DEPTH] = {};
		long n;
		struct call_site cs = unwind_kprobe_call_site(ctx, ips, &n);

		st->slow_walks++;
		args.call_site = cs.ip;
		args.call_site_via = cs.via;
		args.probe = cs.probe;
		args.capset = cs.capset;
		args.failed = cs.failed;
	}
	/* An entry still here means its return was missed (maxactive). */
	if (bpf_map_update_elem(&kprobe_args, &pid_tgid, &args, BPF_NOEXIST) != 0) {
		if (st)
			st->missed_return++;
		bpf_map_update_elem(&kprobe_args, &pid_tgid, &args, BPF_ANY);
	}
	return 0;
}

SEC("kretprobe/cap_capable")
int BPF_KRETPROBE(kretprobe_cap_capable, int ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct cap_args *args = bpf_map_lookup_elem(&kprobe_args, &pid_tgid);
	struct call_site cs = {};
	struct cap_args a;

	if (!args)
		return 0;
	a = *args;
	bpf_map_delete_elem(&kprobe_args, &pid_tgid);
	cs.ip = a.call_site;
	cs.via = a.call_site_via;
	cs.probe = a.probe;
	cs.capset = a.capset;
	cs.failed = a.failed;
	return record_check(ctx, (const struct cred *)a.cred, (struct user_namespace *)a.targ_ns, a.cap, a.opts, ret,
			    METHOD_KPROBE, true, false, &cs, 0);
}

#include "process.h"

#define TCP_LISTEN 10

/*
 * A socket starts listening (any path: listen(2), io_uring) on a port below
 * 1024 that its bind made no CAP_NET_BIND_SERVICE check for: the network
 * namespace's ip_unprivileged_port_start let it. Sent as a check would be, so
 * that the profile sees the bind a runtime's sysctl default hid, and filtered
 * as a granted CAP_NET_BIND_SERVICE check is. (A UDP bind has no such hook.)
 */
static __always_inline int on_listen(void *ctx, struct sock *sk, int newstate)
{
	struct call_site none = {};
	struct task_struct *task;
	struct net *net;
	__u16 port;
	int start;

	if (newstate != TCP_LISTEN)
		return 0;
	port = BPF_CORE_READ(sk, __sk_common.skc_num);
	net = BPF_CORE_READ(sk, __sk_common.skc_net.net);
	if (!bpf_core_field_exists(net->ipv4.sysctl_ip_prot_sock))
		return 0;
	start = BPF_CORE_READ(net, ipv4.sysctl_ip_prot_sock);
	if (port == 0 || port >= PRIVILEGED_PORTS || port < start)
		return 0; /* not low, or its bind was checked (a cap_event says so) */
	/* Rare: probe reads on every kernel, whatever the check programs use. */
	task = (struct task_struct *)bpf_get_current_task();
	return record_check(ctx, (const struct cred *)BPF_CORE_READ(task, cred), BPF_CORE_READ(net, user_ns),
			    CAP_NET_BIND_SERVICE, (__u32)start, 0, METHOD_TRACEPOINT, false, false, &none, port);
}

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(raw_inet_sock_set_state, struct sock *sk, int oldstate, int newstate)
{
	return on_listen(ctx, sk, newstate);
}

/* The floor the benchmark compares against: the cost of the hook alone. */
SEC("tp_btf/cap_capable")
int BPF_PROG(noop_cap_capable)
{
	return 0;
}

/* The floor of any design that sends a record per check: reserve one
 * cap_event, stamp it (time, thread, capability, verdict) and submit it
 * without waking the reader. Benchmarks only. */
SEC("tp_btf/cap_capable")
int BPF_PROG(floor_cap_capable, const struct cred *cred, struct user_namespace *targ_ns,
	     const struct user_namespace *capable_ns, int cap, int ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct cap_event *ev;

	if ((pid_tgid >> 32) == cfg.self_tgid)
		return 0;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev)
		return 0;
	ev->hdr.type = EVENT_CAP;
	ev->hdr.tgid = pid_tgid >> 32;
	ev->hdr.ktime = bpf_ktime_get_boot_ns();
	ev->tid = (__u32)pid_tgid;
	ev->cap = cap;
	ev->ret = ret;
	bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
	return 0;
}
