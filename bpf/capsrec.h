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
};

enum attach_method {
	METHOD_TRACEPOINT = 1,
	METHOD_FEXIT = 2,
	METHOD_KPROBE = 3,
};

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
};

struct event_header {
	__u8 type;
	__u8 pad[3];
	__u32 tgid;
	__u64 ktime; /* CLOCK_BOOTTIME ns */
};

struct cap_event {
	struct event_header hdr;
	__u64 cgroup_id;
	__u64 start_boottime; /* of the thread group leader */
	__u64 cap_effective;
	__u64 cap_permitted;
	__u64 cap_inheritable;
	__u64 exe_ino; /* the executable's inode and device: a binary's identity in the kernel */
	__u32 exe_dev;
	__u32 tid;
	__u32 ptgid;
	__u32 uid;
	__u32 gid;
	__u32 euid;
	__u32 auid;
	__s32 cap;
	__s32 ret;
	__u32 opts;       /* cap_capable's 4th argument; fexit and kprobe only */
	__s32 syscall_nr; /* -1: not in a syscall, or unknown */
	__u32 ns_pid;     /* tgid as seen in the task's own pid namespace */
	__u32 target_ns_level;
	__u32 target_ns_uid;
	__u32 target_ns_gid;
	__u32 target_ns_inum;
	__u32 ns[NS_COUNT];
	__u8 method;
	__u8 override_creds; /* the checked cred is not the task's real_cred */
	__u8 has_opts;
	__u8 pad;
	char comm[TASK_COMM_LEN];
	char cgroup_name[CGROUP_NAME_LEN];
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
	__u8 pad[5];
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
	__u8 pad[2];
	char comm[TASK_COMM_LEN];
	char filename[FILENAME_LEN];
	char args[ARGS_LEN];
	char cwd[PATH_LEN + NAME_MAX_LEN];
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

#endif
