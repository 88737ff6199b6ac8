package bpf

import "github.com/capsrec/capsrec/core"

// Record types (EventHeader.Type), capsrec.h's enum event_type.
const (
	EventCap  = uint8(capsrecEventTypeEVENT_CAP)
	EventExec = uint8(capsrecEventTypeEVENT_EXEC)
	EventFork = uint8(capsrecEventTypeEVENT_FORK)
	EventExit = uint8(capsrecEventTypeEVENT_EXIT)
	// EventLearn carries a stack sample the call-site walk learns frame sizes from.
	EventLearn = uint8(capsrecEventTypeEVENT_LEARN)
	// EventCtx carries a thread's context: checks made under it refer to it by seq.
	EventCtx = uint8(capsrecEventTypeEVENT_CTX)
	// EventListen is a CapEvent for no check: a low port bound with none (capsrec.h).
	EventListen = uint8(capsrecEventTypeEVENT_LISTEN)
)

// Go names for the records of capsrec.h.
type (
	CapEvent    = capsrecCapEvent
	CtxEvent    = capsrecCtxEvent
	ExecEvent   = capsrecExecEvent
	ForkEvent   = capsrecForkEvent
	ExitEvent   = capsrecExitEvent
	EventHeader = capsrecEventHeader
)

// Stats are the kernel-side counters, summed over CPUs.
type Stats struct {
	Seen, Filtered, Lost, LostProcess, MissedReturns uint64
	// Aggregated checks were only counted (profile --live); AggFull were sent whole
	// because the aggregation map was full.
	Aggregated, AggFull uint64
	// Hidden counts checks of each class counted in the kernel, not sent.
	Hidden [core.ClassCount]uint64
	// UnwindFailed checks had no readable kernel stack: their call site is unknown.
	UnwindFailed uint64
	// FastWalks found the call site on the learned frames, SlowWalks through the
	// kernel's unwinder; WalkVerified fast walks were checked against the unwinder,
	// and WalkMismatch of them disagreed (the fast walk then turned itself off).
	FastWalks, SlowWalks, WalkVerified, WalkMismatch uint64
	// Contexts are the ctx_events sent: a thread's context changed, or was not known.
	Contexts uint64
	// CapsetPendingFull granted capset checks were decided by the call's
	// arguments, not its outcome: no room was left to wait for it.
	CapsetPendingFull uint64
	// FollowFull processes a followed one forked were not followed: the
	// follow set was full (MaxFollowed).
	FollowFull uint64
}

// AggKey is the kernel's aggregation key (capsrec.h's struct agg_key).
type AggKey = capsrecAggKey

// AggEntry is one key's count, summed over CPUs.
type AggEntry struct {
	Key       AggKey
	Count     uint64
	LastKtime uint64
}
