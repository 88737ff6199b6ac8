//go:build ignore

// SPDX-License-Identifier: GPL-2.0
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "capsrec.h"

char LICENSE[] SEC("license") = "GPL";

#define PF_KTHREAD 0x00200000
#define THREAD_SIZE (16384) /* x86-64 without KASAN */
#define MAX_PATH_DEPTH 48

/* Set from Go before load (pwru style): the verifier prunes what they turn off. */
const volatile __u32 self_tgid = 0;
const volatile __u64 cap_mask = ~0ULL; /* bit n set: keep CAP n (caps 0..63) */
const volatile __u8 verdict_filter = 0; /* 0 all, 1 granted only, 2 denied only */
const volatile __u8 filter_pids = 0;
const volatile __u8 filter_comm = 0;
/* 1: keep only checks of the cgroups in cgroup_filter (pods); 2: drop them (--host). */
const volatile __u8 filter_cgroups = 0;
const volatile char comm_filter[TASK_COMM_LEN] = {};
const volatile __u8 has_task_pt_regs = 0;
const volatile __u8 track_processes = 1;
const volatile __u8 aggregate = 0;
/* cap_capable's 4th argument is a bitmask (5.1+) rather than an audit int. */
const volatile __u8 opts_bitmask = 1;
#define CAP_OPT_NOAUDIT (1 << 1)

/* Wake the reader only past this many bytes; below it the reader polls. 0: wake on every record. */
const volatile __u32 wakeup_bytes = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_filter SEC(".maps");

struct cap_args {
	__u64 cred;    /* const struct cred * */
	__u64 targ_ns; /* struct user_namespace * */
	__s32 cap;
	__u32 opts;
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
const struct exec_event *const unused_exec_event __attribute__((unused)) = 0;
const struct fork_event *const unused_fork_event __attribute__((unused)) = 0;
const struct exit_event *const unused_exit_event __attribute__((unused)) = 0;

/*
 * Wakes the reader only for the record that carries the unread data across
 * wakeup_bytes: a reader that lags is awake and reading anyway, and a wake-up
 * per record (~800 ns) is what batching is for. Below the threshold the
 * reader finds records by polling.
 */
static __always_inline void submit(void *rec, __u64 size)
{
	__u64 flags = 0;
	if (wakeup_bytes) {
		/* The reservation has already moved the producer: avail includes this record and its 8-byte header. */
		__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
		flags = BPF_RB_NO_WAKEUP;
		if (avail >= wakeup_bytes && avail < wakeup_bytes + size + 8)
			flags = BPF_RB_FORCE_WAKEUP;
	}
	bpf_ringbuf_submit(rec, flags);
}

static __always_inline bool comm_matches(void)
{
	char comm[TASK_COMM_LEN];
	bpf_get_current_comm(comm, sizeof(comm));
#pragma unroll
	for (int i = 0; i < TASK_COMM_LEN; i++) {
		if (comm[i] != comm_filter[i])
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
static __always_inline bool keep_check(__u64 pid_tgid, int cap)
{
	if (cap < 0 || cap > 63 || !(cap_mask & (1ULL << cap)))
		return false;
	if (filter_pids) {
		__u32 tgid = pid_tgid >> 32;
		if (!bpf_map_lookup_elem(&pid_filter, &tgid))
			return false;
	}
	if (filter_comm && !comm_matches())
		return false;
	if (filter_cgroups) {
		__u64 cg = bpf_get_current_cgroup_id();
		bool listed = bpf_map_lookup_elem(&cgroup_filter, &cg) != 0;
		if (listed != (filter_cgroups == 1))
			return false;
	}
	return true;
}

static __always_inline bool keep_verdict(int ret)
{
	if (verdict_filter == 1 && ret != 0)
		return false;
	if (verdict_filter == 2 && ret == 0)
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

static __always_inline __s32 syscall_nr_probe(struct task_struct *task)
{
	struct pt_regs *regs;

	if (BPF_CORE_READ(task, flags) & PF_KTHREAD)
		return -1;
	if (has_task_pt_regs) {
		/* Needs a trusted task pointer; both helpers exist wherever task_pt_regs does. */
		regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	} else {
		/* task_pt_regs() on x86-64: the user registers sit at the top of the kernel stack. */
		void *stack = BPF_CORE_READ(task, stack);
		regs = (struct pt_regs *)(stack + THREAD_SIZE) - 1;
	}
	return (__s32)BPF_CORE_READ(regs, orig_ax);
}

/* On the BTF path the kernel has bpf_task_pt_regs (5.15) whenever it has the tracepoint or
 * bpf_get_current_task_btf (5.11) ... but not always both: ask the flag. */
static __always_inline __s32 syscall_nr_btf(struct task_struct *task)
{
	if (task->flags & PF_KTHREAD)
		return -1;
	if (!has_task_pt_regs)
		return syscall_nr_probe(task);
	return (__s32)((struct pt_regs *)bpf_task_pt_regs(task))->orig_ax;
}

#define READ(src, ...) ___arrow(src, __VA_ARGS__)
#define SYSCALL_NR syscall_nr_btf
#define FILL_CAP_EVENT fill_cap_event_btf
#define AGG_KEY agg_key_btf
#include "fill_cap_event.h"
#undef READ
#undef SYSCALL_NR
#undef FILL_CAP_EVENT
#undef AGG_KEY

#define READ BPF_CORE_READ
#define SYSCALL_NR syscall_nr_probe
#define FILL_CAP_EVENT fill_cap_event_probe
#define AGG_KEY agg_key_probe
#include "fill_cap_event.h"
#undef READ
#undef SYSCALL_NR
#undef FILL_CAP_EVENT
#undef AGG_KEY

/*
 * profile --live: count the check under its key. Returns true when the check
 * must also be sent whole: the key's first check (it names the subject), or
 * any check once the map is full.
 */
static __always_inline bool aggregated(struct check_stats *st, const struct cred *cred, int cap, __u32 opts,
				       int ret, bool has_opts, bool btf)
{
	struct agg_key k = {};
	struct agg_value *v, init = {.count = 1};

	if (btf)
		agg_key_btf(&k, bpf_get_current_task_btf(), cred, cap, opts, ret, has_opts);
	else
		agg_key_probe(&k, (struct task_struct *)bpf_get_current_task(), cred, cap, opts, ret, has_opts);
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

/* btf: task may be read with plain loads (a trusted BTF pointer). */
static __always_inline int record_check(const struct cred *cred, struct user_namespace *targ_ns, int cap,
					__u32 opts, int ret, __u8 method, bool has_opts, bool btf)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct check_stats *st;
	struct cap_event *ev;

	if ((pid_tgid >> 32) == self_tgid)
		return 0;
	st = stats_here();
	if (!st)
		return 0;
	st->seen++;
	if (!keep_check(pid_tgid, cap) || !keep_verdict(ret)) {
		st->filtered++;
		return 0;
	}
	if (aggregate && aggregated(st, cred, cap, opts, ret, has_opts, btf))
		return 0;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		st->lost++;
		return 0;
	}
	if (btf)
		fill_cap_event_btf(ev, bpf_get_current_task_btf(), pid_tgid, cred, targ_ns, cap, opts, ret, method, has_opts);
	else
		fill_cap_event_probe(ev, (struct task_struct *)bpf_get_current_task(), pid_tgid, cred, targ_ns, cap,
				     opts, ret, method, has_opts);
	submit(ev, sizeof(*ev));
	return 0;
}

SEC("tp_btf/cap_capable")
int BPF_PROG(tp_cap_capable, const struct cred *cred, struct user_namespace *targ_ns,
	     const struct user_namespace *capable_ns, int cap, int ret)
{
	return record_check(cred, targ_ns, cap, 0, ret, METHOD_TRACEPOINT, false, true);
}

SEC("fexit/cap_capable")
int BPF_PROG(fexit_cap_capable, const struct cred *cred, struct user_namespace *targ_ns, int cap,
	     unsigned int opts, int ret)
{
	return record_check(cred, targ_ns, cap, opts, ret, METHOD_FEXIT, true, true);
}

/* 5.10 has no bpf_get_current_task_btf: the task is read with probe reads. */
SEC("fexit/cap_capable")
int BPF_PROG(fexit_cap_capable_legacy, const struct cred *cred, struct user_namespace *targ_ns, int cap,
	     unsigned int opts, int ret)
{
	return record_check(cred, targ_ns, cap, opts, ret, METHOD_FEXIT, true, false);
}

SEC("kprobe/cap_capable")
int BPF_KPROBE(kprobe_cap_capable, const struct cred *cred, struct user_namespace *targ_ns, int cap,
	       unsigned int opts)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct cap_args args = {.cred = (__u64)cred, .targ_ns = (__u64)targ_ns, .cap = cap, .opts = opts};

	if ((pid_tgid >> 32) == self_tgid)
		return 0;
	/* An entry still here means its return was missed (maxactive). */
	if (bpf_map_update_elem(&kprobe_args, &pid_tgid, &args, BPF_NOEXIST) != 0) {
		struct check_stats *st = stats_here();
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
	struct cap_args a;

	if (!args)
		return 0;
	a = *args;
	bpf_map_delete_elem(&kprobe_args, &pid_tgid);
	return record_check((const struct cred *)a.cred, (struct user_namespace *)a.targ_ns, a.cap, a.opts, ret,
			    METHOD_KPROBE, true, false);
}

/*
 * Writes the cwd backwards so that it ends at cwd[PATH_LEN-1] and sets cwd_off
 * to where it starts. The offset lives in the record, not on the stack: the
 * verifier does not track it there, so the loop's states prune instead of
 * multiplying with every possible offset.
 */
static __always_inline void write_cwd(struct exec_event *ev, struct task_struct *task)
{
	struct path pwd;
	BPF_CORE_READ_INTO(&pwd, task, fs, pwd);
	struct dentry *dentry = pwd.dentry;
	struct vfsmount *vfsmnt = pwd.mnt;
	__u32 mnt_offset = bpf_core_field_offset(struct mount, mnt);
	struct mount *mnt = (void *)vfsmnt - mnt_offset;

	ev->cwd[PATH_LEN - 1] = 0;
	ev->cwd_off = PATH_LEN - 1;
	ev->cwd_truncated = 1;
	for (int i = 0; i < MAX_PATH_DEPTH; i++) {
		struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
		struct dentry *parent = BPF_CORE_READ(dentry, d_parent);

		if (dentry == mnt_root || dentry == parent) {
			struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);

			if (dentry == mnt_root && mnt != mnt_parent) {
				dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
				mnt = mnt_parent;
				vfsmnt = (void *)mnt + mnt_offset;
				continue;
			}
			ev->cwd_truncated = 0;
			break;
		}
		struct qstr name;
		BPF_CORE_READ_INTO(&name, dentry, d_name);
		__u32 len = name.len;
		__u32 off = ev->cwd_off;
		if (len >= NAME_MAX_LEN || len + 1 > off)
			break;
		off = (off - len) & (PATH_LEN - 1);
		bpf_probe_read_kernel(&ev->cwd[off], len & (NAME_MAX_LEN - 1), name.name);
		off = (off - 1) & (PATH_LEN - 1);
		ev->cwd[off] = '/';
		ev->cwd_off = off;
		dentry = parent;
	}
	if (ev->cwd_off == PATH_LEN - 1) {
		ev->cwd[PATH_LEN - 2] = '/';
		ev->cwd_off = PATH_LEN - 2;
	}
}

static __always_inline void *reserve_proc(__u64 size)
{
	void *rec = bpf_ringbuf_reserve(&events, size, 0);
	struct check_stats *st;

	if (!rec && (st = stats_here()))
		st->lost_proc++;
	return rec;
}

/* The process programs read only with probe reads, so that raw tracepoints can run
 * them where the kernel has no BTF of its own (--btf). */
static __always_inline int on_exec(struct task_struct *task, struct linux_binprm *bprm)
{
	struct exec_event *ev;
	struct mm_struct *mm;
	unsigned long arg_start, arg_end;
	__u64 len;

	if (!track_processes)
		return 0;
	ev = reserve_proc(sizeof(*ev));
	if (!ev)
		return 0;
	const struct cred *cred = BPF_CORE_READ(task, real_cred);

	ev->hdr.type = EVENT_EXEC;
	ev->hdr.tgid = BPF_CORE_READ(task, tgid);
	ev->hdr.ktime = bpf_ktime_get_boot_ns();
	ev->start_boottime = BPF_CORE_READ(task, group_leader, start_boottime);
	ev->ptgid = BPF_CORE_READ(task, real_parent, tgid);
	ev->uid = BPF_CORE_READ(cred, uid.val);
	ev->gid = BPF_CORE_READ(cred, gid.val);
	ev->euid = BPF_CORE_READ(cred, euid.val);
	ev->auid = bpf_core_field_exists(task->loginuid) ? BPF_CORE_READ(task, loginuid.val) : (__u32)-1;
	bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	bpf_probe_read_kernel_str(ev->filename, sizeof(ev->filename), BPF_CORE_READ(bprm, filename));

	mm = BPF_CORE_READ(task, mm);
	arg_start = BPF_CORE_READ(mm, arg_start);
	arg_end = BPF_CORE_READ(mm, arg_end);
	len = arg_end - arg_start;
	ev->args_truncated = 0;
	if (len >= ARGS_LEN) {
		len = ARGS_LEN - 1;
		ev->args_truncated = 1;
	}
	len &= ARGS_LEN - 1;
	if (bpf_probe_read_user(ev->args, len, (void *)arg_start) != 0)
		len = 0;
	ev->args_len = len;

	write_cwd(ev, task);
	submit(ev, sizeof(*ev));
	return 0;
}

static __always_inline int on_fork(struct task_struct *parent, struct task_struct *child)
{
	struct fork_event *ev;

	if (!track_processes || BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	ev = reserve_proc(sizeof(*ev));
	if (!ev)
		return 0;
	ev->hdr.type = EVENT_FORK;
	ev->hdr.tgid = BPF_CORE_READ(child, tgid);
	ev->hdr.ktime = bpf_ktime_get_boot_ns();
	ev->start_boottime = BPF_CORE_READ(child, start_boottime);
	ev->ptgid = BPF_CORE_READ(parent, tgid);
	ev->pad = 0;
	submit(ev, sizeof(*ev));
	return 0;
}

static __always_inline int on_exit(struct task_struct *task)
{
	struct exit_event *ev;

	if (!track_processes || BPF_CORE_READ(task, pid) != BPF_CORE_READ(task, tgid))
		return 0;
	ev = reserve_proc(sizeof(*ev));
	if (!ev)
		return 0;
	ev->hdr.type = EVENT_EXIT;
	ev->hdr.tgid = BPF_CORE_READ(task, tgid);
	ev->hdr.ktime = bpf_ktime_get_boot_ns();
	submit(ev, sizeof(*ev));
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	return on_exec(task, bprm);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	return on_fork(parent, child);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *task)
{
	return on_exit(task);
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(raw_sched_process_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	return on_exec(task, bprm);
}

SEC("raw_tp/sched_process_fork")
int BPF_PROG(raw_sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	return on_fork(parent, child);
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(raw_sched_process_exit, struct task_struct *task)
{
	return on_exit(task);
}

/* The floor the benchmark compares against: the cost of the hook alone. */
SEC("tp_btf/cap_capable")
int BPF_PROG(noop_cap_capable)
{
	return 0;
}
