/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel types capsrec reads, declared with preserve_access_index so
 * that every field offset is relocated against the running kernel's BTF
 * (CO-RE). Only the fields used are declared; their order does not matter.
 */
#ifndef __CAPSREC_VMLINUX_MIN_H
#define __CAPSREC_VMLINUX_MIN_H
/* Tells bpf_tracing.h to use the kernel's pt_regs field names. */
#define __VMLINUX_H__

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef _Bool bool;
typedef int pid_t;
typedef struct {
	int counter;
} atomic_t;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

enum {
	false = 0,
	true = 1,
};

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_HASH = 5,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
};

enum {
	BPF_RB_NO_WAKEUP = 1,
	BPF_RB_FORCE_WAKEUP = 2,
};

enum {
	BPF_RB_AVAIL_DATA = 0,
};

typedef struct {
	u32 val;
} kuid_t;

typedef struct {
	u32 val;
} kgid_t;

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct user_namespace {
	struct user_namespace *parent;
	int level;
	kuid_t owner;
	kgid_t group;
	struct ns_common ns;
} __attribute__((preserve_access_index));

/* kernel_cap_t is u32[2] before 6.3 and u64 after: both are 8 bytes. */
typedef struct {
	u64 val;
} kernel_cap_t;

struct cred {
	kuid_t uid;
	kgid_t gid;
	kuid_t euid;
	kernel_cap_t cap_inheritable;
	kernel_cap_t cap_permitted;
	kernel_cap_t cap_effective;
	struct user_namespace *user_ns;
} __attribute__((preserve_access_index));

struct uts_namespace { struct ns_common ns; } __attribute__((preserve_access_index));
struct ipc_namespace { struct ns_common ns; } __attribute__((preserve_access_index));
struct mnt_namespace { struct ns_common ns; } __attribute__((preserve_access_index));
struct pid_namespace { struct ns_common ns; } __attribute__((preserve_access_index));
/* The network namespace's sysctls that let a bind or an ICMP socket pass without a capability check. */
struct ping_group_range { kgid_t range[2]; } __attribute__((preserve_access_index));
struct netns_ipv4 {
	struct ping_group_range ping_group_range;
	int sysctl_ip_prot_sock; /* net.ipv4.ip_unprivileged_port_start */
} __attribute__((preserve_access_index));
struct net {
	struct ns_common ns;
	struct user_namespace *user_ns;
	struct netns_ipv4 ipv4;
} __attribute__((preserve_access_index));
typedef struct { struct net *net; } possible_net_t;
struct sock_common {
	unsigned short skc_family;
	__u16 skc_num; /* the bound port, host order */
	possible_net_t skc_net;
} __attribute__((preserve_access_index));
struct sock { struct sock_common __sk_common; } __attribute__((preserve_access_index));
struct time_namespace { struct ns_common ns; } __attribute__((preserve_access_index));
struct cgroup_namespace { struct ns_common ns; } __attribute__((preserve_access_index));

struct nsproxy {
	struct uts_namespace *uts_ns;
	struct ipc_namespace *ipc_ns;
	struct mnt_namespace *mnt_ns;
	struct pid_namespace *pid_ns_for_children;
	struct net *net_ns;
	struct time_namespace *time_ns;
	struct time_namespace *time_ns_for_children;
	struct cgroup_namespace *cgroup_ns;
} __attribute__((preserve_access_index));

struct upid {
	int nr;
	struct pid_namespace *ns;
};

struct pid {
	unsigned int level;
	struct upid numbers[1];
} __attribute__((preserve_access_index));

struct kernfs_node {
	const char *name;
	u64 id; /* the cgroup id, since 5.5 */
} __attribute__((preserve_access_index));

struct cgroup {
	struct kernfs_node *kn;
} __attribute__((preserve_access_index));

struct css_set {
	struct cgroup *dfl_cgrp;
} __attribute__((preserve_access_index));

struct qstr {
	union {
		struct {
			u32 hash;
			u32 len;
		};
		u64 hash_len;
	};
	const unsigned char *name;
} __attribute__((preserve_access_index));

struct hlist_bl_node {
	struct hlist_bl_node *next;
	struct hlist_bl_node **pprev;
} __attribute__((preserve_access_index));

struct dentry {
	struct hlist_bl_node d_hash; /* pprev NULL: unhashed (a memfd, O_TMPFILE or deleted file) */
	struct dentry *d_parent;
	struct qstr d_name;
} __attribute__((preserve_access_index));

struct vfsmount {
	struct dentry *mnt_root;
} __attribute__((preserve_access_index));

struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
	struct mnt_namespace *mnt_ns; /* NULL once detached; an anonymous one (inum 0) from fsmount */
} __attribute__((preserve_access_index));

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
} __attribute__((preserve_access_index));

struct fs_struct {
	struct path pwd;
} __attribute__((preserve_access_index));

struct super_block {
	u32 s_dev;
} __attribute__((preserve_access_index));

struct inode {
	unsigned long i_ino;
	long long i_size; /* loff_t */
	struct super_block *i_sb;
} __attribute__((preserve_access_index));

struct file {
	struct inode *f_inode;
	struct path f_path;
} __attribute__((preserve_access_index));

struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
	struct file *exe_file;
} __attribute__((preserve_access_index));

struct linux_binprm {
	const char *filename;
} __attribute__((preserve_access_index));

/* Its threads still running: the process ends when it reaches 0 (do_exit). */
struct signal_struct {
	atomic_t live;
} __attribute__((preserve_access_index));

struct task_struct {
	unsigned int flags;
	pid_t pid;
	pid_t tgid;
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	const struct cred *real_cred;
	const struct cred *cred;
	kuid_t loginuid;
	struct nsproxy *nsproxy;
	struct css_set *cgroups;
	struct pid *thread_pid;
	u64 start_boottime;
	struct fs_struct *fs;
	struct mm_struct *mm;
	void *stack;
	char comm[16];
	struct signal_struct *signal;
} __attribute__((preserve_access_index));

#if defined(__TARGET_ARCH_x86)
/* x86-64 register layout, as bpf_tracing.h's PT_REGS_* macros expect. */
struct pt_regs {
	unsigned long r15;
	unsigned long r14;
	unsigned long r13;
	unsigned long r12;
	unsigned long bp;
	unsigned long bx;
	unsigned long r11;
	unsigned long r10;
	unsigned long r9;
	unsigned long r8;
	unsigned long ax;
	unsigned long cx;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
	unsigned long ip;
	unsigned long cs;
	unsigned long flags;
	unsigned long sp;
	unsigned long ss;
} __attribute__((preserve_access_index));
#elif defined(__TARGET_ARCH_arm64)
/* What a kprobe's context is on arm64, as bpf_tracing.h's PT_REGS_* macros expect. */
struct user_pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};

/* The kernel's own, whose first members are user_pt_regs' (through an anonymous union). */
struct pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
	__u64 orig_x0;
	__s32 syscallno;
} __attribute__((preserve_access_index));
#endif

#endif
