/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Process tracking: exec, fork and exit records that feed user space's
 * process cache, and the container runtime's marks passed down its tree.
 * Included by capsrec.bpf.c, whose maps and helpers it uses.
 */
#ifndef __CAPSREC_PROCESS_H
#define __CAPSREC_PROCESS_H

/*
 * Writes a path backwards so that it ends at buf[PATH_LEN-1] and sets *off to
 * where it starts. The offset lives in the record, not on the stack: the
 * verifier does not track it there, so the loop's states prune instead of
 * multiplying with every possible offset.
 */
static __always_inline void write_path(char *buf, __u32 *off_p, __u8 *truncated, struct dentry *dentry,
				       struct vfsmount *vfsmnt)
{
	__u32 mnt_offset = bpf_core_field_offset(struct mount, mnt);
	struct mount *mnt = (void *)vfsmnt - mnt_offset;

	buf[PATH_LEN - 1] = 0;
	*off_p = PATH_LEN - 1;
	*truncated = 1;
	for (int i = 0; i < MAX_PATH_DEPTH; i++) {
		struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
		struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
		/* A file of no directory (a memfd): its own parent, not its mount's root.
		 * Its name is the whole path, as /proc/PID/exe shows it. */
		bool pseudo = dentry == parent && dentry != mnt_root;

		if (!pseudo && (dentry == mnt_root || dentry == parent)) {
			struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);

			if (dentry == mnt_root && mnt != mnt_parent) {
				dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
				mnt = mnt_parent;
				vfsmnt = (void *)mnt + mnt_offset;
				continue;
			}
			*truncated = 0;
			break;
		}
		struct qstr name;
		BPF_CORE_READ_INTO(&name, dentry, d_name);
		__u32 len = name.len;
		__u32 off = *off_p;
		if (len >= NAME_MAX_LEN || len + 1 > off)
			break;
		off = (off - len) & (PATH_LEN - 1);
		bpf_probe_read_kernel(&buf[off], len & (NAME_MAX_LEN - 1), name.name);
		off = (off - 1) & (PATH_LEN - 1);
		buf[off] = '/';
		*off_p = off;
		if (pseudo) {
			*truncated = 0;
			break;
		}
		dentry = parent;
	}
	if (*off_p == PATH_LEN - 1) {
		buf[PATH_LEN - 2] = '/';
		*off_p = PATH_LEN - 2;
	}
}

static __always_inline void write_cwd(struct exec_event *ev, struct task_struct *task)
{
	struct path pwd;

	BPF_CORE_READ_INTO(&pwd, task, fs, pwd);
	write_path(ev->cwd, &ev->cwd_off, &ev->cwd_truncated, pwd.dentry, pwd.mnt);
	/* A root dentry (a container's /) is never hashed: only a removed directory is unlinked. */
	ev->cwd_unlinked = BPF_CORE_READ(pwd.dentry, d_hash.pprev) == 0 && BPF_CORE_READ(pwd.dentry, d_parent) != pwd.dentry;
}

static __always_inline void *reserve_proc(__u64 size)
{
	void *rec = bpf_ringbuf_reserve(&events, size, 0);
	struct check_stats *st;

	if (!rec && (st = stats_here()))
		st->lost_proc++;
	return rec;
}

/*
 * Whether exe lies on a mount of no mount namespace: detached, or an
 * anonymous one from fsmount(2) (inum 0). No path reaches it: runc 1.2+
 * seals its copy of itself so (libcontainer/exeseal, overlayfs).
 */
static __always_inline bool unreachable(struct file *exe)
{
	struct vfsmount *vfsmnt = BPF_CORE_READ(exe, f_path.mnt);
	struct mount *mnt = (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);
	struct mnt_namespace *ns = BPF_CORE_READ(mnt, mnt_ns);

	return !ns || BPF_CORE_READ(ns, ns.inum) == 0;
}

/*
 * A process's runtime mark after it execs exe (capsrec.h's MARK_*): only a
 * marked process can keep one. The server or a runtime execing a runtime binary
 * marks it with that binary; a runtime (not its clone) execing a sealed file
 * of its own binary's size is its re-exec of itself (runc init from a memfd
 * copy, or since runc 1.2 from an overlayfs mount of no namespace); anything else, and any exec of a clone (the container's command), ends
 * the mark. Returns the mark, 0 none.
 */
static __always_inline __u8 mark_runtime_exec(struct task_struct *task, __u32 tgid, struct file *exe, bool sealed,
					      __u8 *handoff)
{
	struct exe_key k = {};
	__u8 *rt, was, mark = 0;
	__u32 idx;
	__u64 *size;

	*handoff = 0;
	was = mark_of(tgid, task);
	if (!was) {
		bpf_map_delete_elem(&runtime_tasks, &tgid); /* a stale entry: another process's */
		return 0;
	}
	/* MARK_SERVER has every bit set: it is no clone. */
	bool server = was == MARK_SERVER, clone = !server && (was & MARK_CLONE);

	k.ino = BPF_CORE_READ(exe, f_inode, i_ino);
	k.dev = BPF_CORE_READ(exe, f_inode, i_sb, s_dev);
	rt = bpf_map_lookup_elem(&runtime_exes, &k);
	if (rt && !clone) {
		mark = *rt;
	} else if (sealed && !server && !clone) {
		idx = was & MARK_INDEX;
		size = bpf_map_lookup_elem(&runtime_sizes, &idx);
		if (size && *size && *size == BPF_CORE_READ(exe, f_inode, i_size))
			mark = was | MARK_CLONE;
	}
	if (mark) {
		set_mark(tgid, BPF_CORE_READ(task, group_leader, start_boottime), mark);
	} else {
		/* A runtime (not the server) ran a program of no runtime: it handed over. */
		*handoff = !server;
		bpf_map_delete_elem(&runtime_tasks, &tgid);
	}
	return mark;
}

/* The process programs read only with probe reads, so that raw tracepoints can run
 * them where the kernel has no BTF of its own (--btf). */
static __always_inline int on_exec(struct task_struct *task, struct linux_binprm *bprm)
{
	struct exec_event *ev;
	struct mm_struct *mm;
	unsigned long arg_start, arg_end;
	__u64 len;
	struct file *exe;
	struct dentry *exe_dentry;
	bool unlinked;
	__u8 runtime, handoff;

	__u32 tid = BPF_CORE_READ(task, pid);

	resolve_capset(tid, task); /* its credentials are those its last capset left */
	/* The runtime mark cached with the thread's context may change below. */
	bpf_map_delete_elem(&ctx_sent, &tid);
	if (!cfg.track_processes)
		return 0;
	exe = BPF_CORE_READ(task, mm, exe_file);
	exe_dentry = BPF_CORE_READ(exe, f_path.dentry);
	unlinked = BPF_CORE_READ(exe_dentry, d_hash.pprev) == 0;
	runtime = mark_runtime_exec(task, BPF_CORE_READ(task, tgid), exe, unlinked || unreachable(exe), &handoff);
	ev = reserve_proc(sizeof(*ev));
	if (!ev)
		return 0;
	ev->runtime = runtime;
	ev->handoff = handoff;
	ev->ns_pid = pid_upid(BPF_CORE_READ(task, group_leader, thread_pid)).nr;
	ev->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	bpf_probe_read_kernel_str(ev->cgroup_name, sizeof(ev->cgroup_name), BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, name));
	ev->exe_unlinked = unlinked;
	/* The executable's own path: what ran, whatever name it was run by (a
	 * symlink, /dev/fd/N). */
	write_path(ev->exe_path, &ev->exe_off, &ev->exe_truncated, exe_dentry, BPF_CORE_READ(exe, f_path.mnt));
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

/* A process a followed one forks is followed: record -- COMMAND keeps the
 * command's whole tree, decided in the kernel before the child runs. */
static __always_inline void follow(__u32 ptgid, __u32 tgid)
{
	__u8 one = 1;

	if (!bpf_map_lookup_elem(&pid_filter, &ptgid))
		return;
	if (bpf_map_update_elem(&pid_filter, &tgid, &one, BPF_ANY)) {
		struct check_stats *st = stats_here();
		if (st)
			st->follow_full++;
	}
}

static __always_inline int on_fork(struct task_struct *parent, struct task_struct *child)
{
	struct fork_event *ev;
	__u32 ptgid, tgid;
	__u8 mark;

	if (!cfg.track_processes || BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	ptgid = BPF_CORE_READ(parent, tgid);
	tgid = BPF_CORE_READ(child, tgid);
	if (cfg.follow_pids)
		follow(ptgid, tgid);
	mark = mark_of(ptgid, parent);
	if (mark)
		set_mark(tgid, BPF_CORE_READ(child, start_boottime), mark);
	else
		bpf_map_delete_elem(&runtime_tasks, &tgid); /* a stale entry of a pid reused */
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
	__u32 tgid;

	__u32 tid = BPF_CORE_READ(task, pid);

	resolve_capset(tid, task);
	bpf_map_delete_elem(&ctx_sent, &tid); /* every thread: its tid may come back as another's */
	/*
	 * The process ends with its last thread (do_exit decrements signal->live
	 * before this tracepoint), not with its leader: a leader may exit first,
	 * and a thread that execs kills the leader, takes its pid and goes on.
	 */
	if (!cfg.track_processes || BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	tgid = BPF_CORE_READ(task, tgid);
	bpf_map_delete_elem(&runtime_tasks, &tgid);
	if (cfg.follow_pids) /* its pid, reused, is someone else */
		bpf_map_delete_elem(&pid_filter, &tgid);
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

#endif /* __CAPSREC_PROCESS_H */
