package bpf

import (
	"cmp"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/capsrec/capsrec/core"
)

// Config is what the programs are specialised with before load.
type Config struct {
	SelfTgid uint32
	// KernelFilter is what the kernel drops before sending: capabilities,
	// verdicts, pids, comm, cgroups. FollowPids keeps the checks of the pid
	// filter's processes and of every process they fork, from the fork on
	// (record -- COMMAND): Session.Follow adds the first.
	core.KernelFilter
	// WakeupBytes batches reader wake-ups: the kernel wakes the reader about once
	// this much data waits (each CPU once it sent its share), and the reader
	// polls for the rest. 0 wakes per record.
	WakeupBytes uint32
	// RingBufferSize in bytes, a power of two multiple of the page size; 0 keeps 8 MiB.
	RingBufferSize uint32
	// TrackProcesses attaches the exec/fork/exit programs that feed the process cache.
	TrackProcesses bool
	// KernelBTF replaces /sys/kernel/btf/vmlinux (--btf) for CO-RE relocations.
	KernelBTF *btf.Spec
	// Aggregate counts checks in the kernel per AggKey and sends only each key's first.
	Aggregate bool
	// CgroupSet lists cgroups before the programs attach.
	CgroupSet []uint64
	// CgroupWatermark: with CgroupsOnly, every cgroup id up to it is decided
	// (listed or dropped); newer ones are kept until user space decides.
	CgroupWatermark uint64
	// Sites gives the call-site walk's table once the programs are loaded and
	// before they attach (so that reading it overlaps the verifier); nil: the
	// programs do not read the stack and every check's call site is unknown.
	Sites func() SiteTable
	// HideClasses has bit n set to count checks of class n in the kernel, not send them.
	HideClasses uint8
	// RuntimeExes are container runtime executables (runc, crun, the shims), by
	// identity; the value is 1 + the runtime's index. Processes of the runtime
	// server's tree that exec them are marked.
	RuntimeExes map[ExeKey]uint8
	// RuntimeSizes are their sizes, by 1 + index: a runtime's re-exec of an
	// unlinked copy of itself is known by the size.
	RuntimeSizes map[uint32]uint64
	// BeforeChecks runs once the exec, fork and exit programs are attached and
	// before the check programs are: the start-up scan marks the runtime
	// server's tree then (MarkRuntime), so that what changes after it read
	// /proc is marked by the kernel, and no check is classified before.
	BeforeChecks func(*Session) error
	// VerifyEvery checks one fast call-site walk in this many against the
	// kernel's unwinder; 0 keeps 1024.
	VerifyEvery uint32
}

// SiteTable is the call-site walk's table: function ranges, sorted, at most
// MaxSites, and the core kernel's text. Empty ranges leave call sites unknown.
type SiteTable struct {
	Ranges             []SiteRange
	TextStart, TextEnd uint64
	// Overlay is overlayfs's text, sorted ranges (at most MaxOverlayRanges);
	// OverlayKnown says it was read. Unknown, every check under borrowed
	// credentials is override_creds.
	Overlay      []SiteRange
	OverlayKnown bool
}

// MaxOverlayRanges is capsrec.h's MAX_OVERLAY_RANGES.
const MaxOverlayRanges = 64

// MaxSites is capsrec.h's MAX_SITES.
const MaxSites = 128

// SiteRange and ExeKey are capsrec.h's struct site_range and struct exe_key.
type (
	SiteRange  = capsrecSiteRange
	ExeKey     = capsrecExeKey
	LearnEvent = capsrecLearnEvent
)

// MaxFollowed bounds the processes a FollowPids session follows at once;
// past it forks are counted (Stats.FollowFull), not followed.
const MaxFollowed = 65536

// configure specialises the programs before load: one config struct, set once.
func configure(specs *capsrecSpecs, cfg Config, ptRegs, optsBitmask bool) error {
	if len(cfg.Comm) > 15 {
		return fmt.Errorf("--comm %q is longer than the kernel's 15-character comm", cfg.Comm)
	}
	c := capsrecConfig{
		CapMask:        cmp.Or(cfg.CapMask, ^uint64(0)),
		SelfTgid:       cfg.SelfTgid,
		VerifyEvery:    cmp.Or(cfg.VerifyEvery, 1024),
		WakeupBytes:    perCPUWakeup(cfg.WakeupBytes),
		VerdictFilter:  uint8(cfg.Verdict),
		FilterPids:     Bool(len(cfg.Pids) > 0 || cfg.FollowPids),
		FollowPids:     Bool(cfg.FollowPids),
		FilterComm:     Bool(cfg.Comm != ""),
		FilterCgroups:  uint8(cfg.Cgroups),
		HasTaskPtRegs:  Bool(ptRegs),
		TrackProcesses: Bool(cfg.TrackProcesses),
		Aggregate:      Bool(cfg.Aggregate),
		OptsBitmask:    Bool(optsBitmask),
		HideClasses:    cfg.HideClasses,
		ClassifySites:  Bool(cfg.Sites != nil),
	}
	for i := range len(cfg.Comm) {
		c.CommFilter[i] = int8(cfg.Comm[i])
	}
	if err := specs.Cfg.Set(c); err != nil {
		return fmt.Errorf("setting the programs' configuration: %w", err)
	}
	if cfg.RingBufferSize != 0 {
		specs.Events.MaxEntries = cfg.RingBufferSize
	}
	if cfg.FollowPids {
		specs.PidFilter.MaxEntries = MaxFollowed
	}
	return nil
}

// perCPUWakeup is each CPU's share of a wake-up threshold: the program counts
// what it sent per CPU, without asking the ring. At least a page (so that a
// node with many CPUs still batches) unless the threshold itself is less.
func perCPUWakeup(total uint32) uint32 {
	cpus, err := ebpf.PossibleCPU()
	if err != nil || cpus < 1 {
		cpus = 1
	}
	return min(max(total/uint32(cpus), 4096), total)
}

// fillTables writes the call-site walk's state and table, and the runtime tables.
func (s *Session) fillTables(cfg Config) error {
	ws := capsrecWalkState{Anchor: -1} // learned from the first samples
	if err := s.maps.WalkStates.Put(uint32(0), ws); err != nil {
		return fmt.Errorf("initializing the call-site walk: %w", err)
	}
	if cfg.Sites != nil {
		if err := s.fillSites(cfg.Sites()); err != nil {
			return err
		}
	}
	for k, v := range cfg.RuntimeExes {
		if err := s.maps.RuntimeExes.Put(k, v); err != nil {
			return fmt.Errorf("filling the runtime executables: %w", err)
		}
	}
	for _, id := range cfg.CgroupSet {
		if err := s.maps.CgroupFilter.Put(id, uint8(1)); err != nil {
			return fmt.Errorf("filling the cgroup filter: %w", err)
		}
	}
	if err := s.vars.CgroupWatermark.Set(cfg.CgroupWatermark); err != nil {
		return fmt.Errorf("setting the cgroup watermark: %w", err)
	}
	for idx, size := range cfg.RuntimeSizes {
		if err := s.maps.RuntimeSizes.Put(idx, size); err != nil {
			return fmt.Errorf("filling the runtime executables' sizes: %w", err)
		}
	}
	return nil
}

// fillSites writes the call-site ranges, padded with ranges that start past
// every address so that the binary search reads no garbage, then their count
// and the text bounds.
func (s *Session) fillSites(st SiteTable) error {
	if len(st.Ranges) > MaxSites {
		return fmt.Errorf("%d call-site ranges, more than %d", len(st.Ranges), MaxSites)
	}
	for i := range uint32(MaxSites) {
		r := SiteRange{Start: ^uint64(0), End: ^uint64(0)}
		if int(i) < len(st.Ranges) {
			r = st.Ranges[i]
		}
		if err := s.maps.SiteRanges.Put(i, r); err != nil {
			return fmt.Errorf("filling the call-site table: %w", err)
		}
	}
	err := errors.Join(s.vars.TextStart.Set(st.TextStart), s.vars.TextEnd.Set(st.TextEnd), s.vars.N_sites.Set(uint32(len(st.Ranges))))
	if err != nil {
		return fmt.Errorf("setting the call-site table's bounds: %w", err)
	}
	if !st.OverlayKnown || len(st.Overlay) > MaxOverlayRanges {
		return nil // every check under borrowed credentials stays override_creds
	}
	for i, r := range st.Overlay {
		if err := s.maps.OverlayRanges.Put(uint32(i), r); err != nil {
			return fmt.Errorf("filling overlayfs's text ranges: %w", err)
		}
	}
	if err := errors.Join(s.vars.N_overlay.Set(uint32(len(st.Overlay))), s.vars.OverlayKnown.Set(uint8(1))); err != nil {
		return fmt.Errorf("setting overlayfs's text ranges: %w", err)
	}
	return nil
}

// Bool is b as the programs store a flag: 1 or 0.
func Bool(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
