// Package core holds the types every stage of capsrec shares: a decoded
// capability check, the process, container and pod it belongs to, and the
// enums the BPF programs share with user space (generated from bpf/capsrec.h).
// It imports nothing of the bpf package: only the recorder turns kernel
// records into these types.
package core

//go:generate go run ../tools/enumgen -o enums_gen.go ../bpf/capsrec.h

// Verdict says which verdicts the kernel sends (capsrec.h's enum verdict_filter).
type Verdict uint8

// CgroupFilter is how the kernel uses its cgroup set (capsrec.h's enum
// cgroup_filter_mode): keep only the listed cgroups and those made after its
// watermark (pod filters), or drop the listed ones (--host).
type CgroupFilter uint8

// KernelFilter is the part of the filters the kernel applies: what it does
// not send is counted (Filtered), never read.
type KernelFilter struct {
	// CapMask has bit n set to keep CAP n; zero means every capability.
	CapMask uint64
	Verdict Verdict
	Pids    []uint32
	// FollowPids also keeps what the pid filter's processes fork, from the fork on.
	FollowPids bool
	Comm       string
	// Cgroups turns on the cgroup filter: keep the listed cgroups (and those
	// made after the watermark), or drop them.
	Cgroups CgroupFilter
}
