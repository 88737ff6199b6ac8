/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What differs between the architectures capsrec is built for (bpf2go -target
 * amd64,arm64 sets __TARGET_ARCH_x86 or __TARGET_ARCH_arm64): the syscall's
 * number and arguments in the user registers, the kernel stack's size, and
 * whether the fast call-site walk may read the raw stack.
 */
#ifndef __CAPSREC_ARCH_H
#define __CAPSREC_ARCH_H

#if defined(__TARGET_ARCH_x86)
/* x86-64 without KASAN; used only where bpf_task_pt_regs (5.15) is missing, and by the fast walk. */
#define THREAD_SIZE (16384)
#define NR_CAPSET 126
/* struct pt_regs fields: the syscall number, and its first three arguments. */
#define REGS_SYSCALL_NR orig_ax
#define REGS_ARG0 di
#define REGS_ARG1 si
#define REGS_ARG2 dx
#define NR_SOCKET 41
#define NR_BIND 49
#define FAST_WALK 1
/* A kprobe on a function's entry: the call pushed the return address, the unwinder finds the caller. */
#define KPROBE_CALLER_IN_LR 0
#elif defined(__TARGET_ARCH_arm64)
/* arm64 with 4 KiB pages and no KASAN (THREAD_SHIFT 14); used only without bpf_task_pt_regs. */
#define THREAD_SIZE (16384)
#define NR_CAPSET 91
#define REGS_SYSCALL_NR syscallno
/* x0 is also the return value's register: the entry code keeps the first argument in orig_x0. */
#define REGS_ARG0 orig_x0
#define REGS_ARG1 regs[1]
#define REGS_ARG2 regs[2]
#define NR_SOCKET 198
#define NR_BIND 200
/* Saved return addresses on the stack may carry pointer authentication codes
 * (CONFIG_ARM64_PTR_AUTH_KERNEL), which only the kernel's unwinder strips: every
 * call site is found by the unwinder. */
#define FAST_WALK 0
/* A kprobe on a function's entry: the caller's return address is still in the link register. */
#define KPROBE_CALLER_IN_LR 1
#else
#error "capsrec's BPF programs are built for x86 and arm64 (bpf2go -target amd64,arm64)"
#endif

#endif /* __CAPSREC_ARCH_H */
