//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * A peer for make bench: capability checks recorded as libbpf-tools' capable
 * records them, on kernels without fexit (what a user of a kprobe-based tool
 * pays): a kprobe keeps cap_capable's arguments by thread, the kretprobe sends
 * one event per check through a perf buffer. Not capsrec's design: its cost.
 */
#include "../../bpf/vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

/* Not in capsrec's minimal vmlinux header (include/uapi/linux/bpf.h). */
#define PERF_EVENT_ARRAY 4
#define CURRENT_CPU 0xffffffffULL

struct args_t {
	int cap;
	int cap_opt;
};

struct cap_event {
	__u32 pid;
	__u32 tgid;
	__u32 uid;
	int cap;
	int audit;
	int insetid;
	int ret;
	char task[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, struct args_t);
} start SEC(".maps");

struct {
	__uint(type, PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

const struct cap_event *const unused_cap_event __attribute__((unused)) = 0;

SEC("kprobe/cap_capable")
int BPF_KPROBE(peer_capable_entry, const struct cred *cred, struct user_namespace *targ_ns, int cap, int cap_opt)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct args_t args = {.cap = cap, .cap_opt = cap_opt};

	bpf_map_update_elem(&start, &id, &args, BPF_ANY);
	return 0;
}

SEC("kretprobe/cap_capable")
int BPF_KRETPROBE(peer_capable_exit)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct cap_event ev = {};
	struct args_t *ap = bpf_map_lookup_elem(&start, &id);

	if (!ap)
		return 0;
	ev.pid = id >> 32;
	ev.tgid = (__u32)id;
	ev.cap = ap->cap;
	ev.uid = (__u32)bpf_get_current_uid_gid();
	ev.audit = (ap->cap_opt & 0b10) == 0;
	ev.insetid = (ap->cap_opt & 0b100) != 0;
	ev.ret = PT_REGS_RC(ctx);
	bpf_get_current_comm(&ev.task, sizeof(ev.task));
	bpf_perf_event_output(ctx, &events, CURRENT_CPU, &ev, sizeof(ev));
	bpf_map_delete_elem(&start, &id);
	return 0;
}
