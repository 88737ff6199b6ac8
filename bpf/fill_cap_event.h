/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The bodies of a check's records, included twice by capsrec.bpf.c: once with
 * READ as plain loads through BTF pointers (tracepoint and fexit where the
 * kernel has bpf_get_current_task_btf: a load costs a nanosecond), once with
 * READ as BPF_CORE_READ probe reads (kprobe, and fexit on 5.10).
 */

/* What identifies the task's context now: compared with what was last sent for it. */
static __always_inline void FILL_CTX_KEY(struct ctx_key *k, struct task_struct *task, const struct cred *cred)
{
	const struct cred *real_cred = READ(task, real_cred);

	k->cred = (__u64)cred;
	k->real_cred = (__u64)real_cred;
	k->nsproxy = (__u64)READ(task, nsproxy);
	k->exe_file = (__u64)READ(task, mm, exe_file);
	k->parent = (__u64)READ(task, real_parent);
	k->cgroup_id = READ_CGROUP_ID(task);
	k->start = READ(task, start_boottime);
	k->cap_effective = READ_CAP(&cred->cap_effective);
	k->uid = READ(real_cred, uid.val);
	k->euid = READ(real_cred, euid.val);
	k->auid = bpf_core_field_exists(task->loginuid) ? READ(task, loginuid.val) : (__u32)-1;
	k->pad = 0;
	READ_COMM(k->comm, task);
}

/* The context a ctx_key identifies, read whole: only when it changed. */
static __always_inline void FILL_CTX_EVENT(struct ctx_event *ev, struct task_struct *task, __u64 pid_tgid,
					   const struct cred *cred, const struct ctx_key *k, __u32 seq)
{
	/* Read again, not taken from the key: BTF loads need pointers the verifier trusts. */
	const struct cred *real_cred = READ(task, real_cred);
	struct task_struct *leader = READ(task, group_leader);
	struct nsproxy *nsp = READ(task, nsproxy);
	struct upid up = pid_upid(READ(leader, thread_pid));

	ev->hdr.type = EVENT_CTX;
	ev->hdr.tgid = pid_tgid >> 32;
	ev->hdr.ktime = bpf_ktime_get_boot_ns();
	ev->tid = (__u32)pid_tgid;
	ev->seq = seq;
	ev->cgroup_id = k->cgroup_id;
	ev->start_boottime = READ(leader, start_boottime);
	ev->ptgid = READ(task, real_parent, tgid);
	ev->uid = k->uid;
	ev->gid = READ(real_cred, gid.val);
	ev->euid = k->euid;
	ev->auid = k->auid;
	ev->cap_effective = k->cap_effective;
	bpf_core_read(&ev->cap_permitted, sizeof(__u64), &cred->cap_permitted);
	bpf_core_read(&ev->cap_inheritable, sizeof(__u64), &cred->cap_inheritable);
	ev->ns_pid = up.nr;
	__builtin_memset(ev->ns, 0, sizeof(ev->ns));
	if (nsp) {
		ev->ns[NS_UTS] = READ(nsp, uts_ns, ns.inum);
		ev->ns[NS_IPC] = READ(nsp, ipc_ns, ns.inum);
		ev->ns[NS_MNT] = READ(nsp, mnt_ns, ns.inum);
		ev->ns[NS_PID_FOR_CHILDREN] = READ(nsp, pid_ns_for_children, ns.inum);
		ev->ns[NS_NET] = READ(nsp, net_ns, ns.inum);
		if (bpf_core_field_exists(nsp->time_ns)) {
			ev->ns[NS_TIME] = READ(nsp, time_ns, ns.inum);
			ev->ns[NS_TIME_FOR_CHILDREN] = READ(nsp, time_ns_for_children, ns.inum);
		}
		ev->ns[NS_CGROUP] = READ(nsp, cgroup_ns, ns.inum);
	}
	ev->ns[NS_USER] = READ(real_cred, user_ns, ns.inum);
	ev->cred_user_ns = READ(cred, user_ns, ns.inum);
	ev->pad = 0;
	ev->ip_prot_sock = -1;
	ev->ping_gid[0] = 1;
	ev->ping_gid[1] = 0;
	if (nsp) {
		struct net *net = READ(nsp, net_ns);

		if (bpf_core_field_exists(net->ipv4.sysctl_ip_prot_sock))
			ev->ip_prot_sock = READ(net, ipv4.sysctl_ip_prot_sock);
		/* Probe reads: 6.1's verifier cannot walk into an array of kgid_t. */
		if (bpf_core_field_exists(net->ipv4.ping_group_range))
			bpf_core_read(ev->ping_gid, sizeof(ev->ping_gid), &net->ipv4.ping_group_range.range);
	}
	ev->exe_ino = READ(task, mm, exe_file, f_inode, i_ino);
	ev->exe_dev = READ(task, mm, exe_file, f_inode, i_sb, s_dev);
	ev->ns[NS_PID] = BPF_CORE_READ(up.ns, ns.inum);
	__builtin_memcpy(ev->comm, k->comm, sizeof(ev->comm));
	bpf_probe_read_kernel_str(ev->cgroup_name, sizeof(ev->cgroup_name), READ(task, cgroups, dfl_cgrp, kn, name));
}

/* Which rule of cap_capable() answered (enum ns_answer): its loop, from the target up. */
static __always_inline __u8 NS_ANSWER(const struct cred *cred, struct user_namespace *targ)
{
	struct user_namespace *own = READ(cred, user_ns), *ns = targ;
	int level;
	__u32 euid;

	if (ns == own)
		return ANSWER_CAPS;
	level = READ(own, level);
	euid = READ(cred, euid.val);
	for (int i = 0; i < NS_WALK; i++) { /* a bounded loop (5.3+) */
		struct user_namespace *parent;

		if (!ns)
			return ANSWER_UNKNOWN;
		if (ns == own)
			return ANSWER_CAPS;
		if (READ(ns, level) <= level)
			return ANSWER_LEVEL;
		parent = READ(ns, parent);
		if (parent == own && READ(ns, owner.val) == euid)
			return ANSWER_OWNER;
		ns = parent;
	}
	return ANSWER_UNKNOWN;
}

/* A check: what changes from one to the next. */
static __always_inline void FILL_CAP_EVENT(struct cap_event *ev, struct task_struct *task, __u64 pid_tgid,
					   const struct cred *cred, struct user_namespace *targ_ns, int cap, __u32 opts, int ret, __u8 method,
					   bool has_opts, struct call_site *cs, __u8 class, bool override, __u64 cgroup_id,
					   __u32 ctx_seq)
{
	ev->hdr.type = EVENT_CAP;
	ev->hdr.tgid = pid_tgid >> 32;
	ev->hdr.ktime = bpf_ktime_get_boot_ns();
	ev->tid = (__u32)pid_tgid;
	ev->ctx_seq = ctx_seq;
	ev->cgroup_id = cgroup_id;
	ev->cap = cap;
	ev->ret = ret;
	ev->opts = opts;
	ev->has_opts = has_opts;
	ev->call_site = cs->ip;
	ev->call_site_via = cs->via;
	ev->site_probe = cs->probe;
	ev->class = class;
	ev->method = method;
	ev->override_creds = override;
	ev->ns_answer = NS_ANSWER(cred, targ_ns);
	ev->net_arg = (cap == CAP_NET_BIND_SERVICE || cap == CAP_NET_RAW) ? net_arg(task, cap) : 0;
	ev->syscall_nr = SYSCALL_NR(task);
	ev->target_ns_level = READ(targ_ns, level);
	ev->target_ns_uid = READ(targ_ns, owner.val);
	ev->target_ns_gid = READ(targ_ns, group.val);
	ev->target_ns_inum = READ(targ_ns, ns.inum);
}

/* The aggregation key of a check: who (cgroup and executable), which capability, what verdict. */
static __always_inline void AGG_KEY(struct agg_key *k, struct task_struct *task, const struct cred *cred,
				    struct user_namespace *targ_ns, int cap, __u32 opts, int ret, bool has_opts, __u8 class,
				    bool override)
{
	k->cgroup_id = READ_CGROUP_ID(task);
	k->exe_ino = READ(task, mm, exe_file, f_inode, i_ino);
	k->exe_dev = READ(task, mm, exe_file, f_inode, i_sb, s_dev);
	k->cap = cap;
	k->granted = ret == 0;
	k->audit = !has_opts ? 0 : (cfg.opts_bitmask ? !(opts & CAP_OPT_NOAUDIT) : opts != 0) ? 1 : 2;
	k->override_creds = override;
	k->class = class;
	k->cred_user_ns = READ(cred, user_ns, ns.inum);
	k->ns_answer = NS_ANSWER(cred, targ_ns);
}

static __always_inline bool OVERRIDE_CREDS(struct task_struct *task, const struct cred *cred)
{
	return cred != READ(task, real_cred);
}
