package enrich

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/filter"
)

// PodWatcher keeps the kernel's cgroup filter in step with the pods. With pod
// filters the kernel keeps the checks of the listed cgroups (the matching
// pods' containers) and of every cgroup made after the watermark, and drops
// the rest. Cgroup ids grow with each cgroup made, so the watermark says
// "decided up to here": a container's first checks, made microseconds after
// its exec and long before the runtime can say whose it is, are sent, and
// user space decides. Each second the watcher lists the runtime's containers
// and moves the watermark past every cgroup decided since: a host cgroup, a
// container the runtime described, or one it has not described in
// undescribedFor (a pod sandbox, or no container of the runtime's).
type PodWatcher struct {
	e         *Enricher
	f         *filter.PodFilter
	add       func(id uint64) error
	watermark func(id uint64) error
	walk      func(fn func(id uint64, path string)) // the node's cgroups: walkCgroups

	mark   uint64
	listed map[uint64]bool
	// undescribed are container cgroups the runtime did not describe yet, and since when.
	undescribed map[uint64]time.Time
}

// undescribedFor is how long a container's cgroup may go undescribed by the
// runtime before it counts as none of the filter's: the runtime describes a
// container when it creates it, before it starts.
const undescribedFor = 5 * time.Second

// NewPodWatcher watches for f; add lists a cgroup in the kernel, watermark moves
// the kernel's watermark (Session.AddCgroup, SetCgroupWatermark).
func NewPodWatcher(e *Enricher, f *filter.PodFilter, add, watermark func(id uint64) error) *PodWatcher {
	return &PodWatcher{e: e, f: f, add: add, watermark: watermark, walk: walkCgroups, listed: map[uint64]bool{}, undescribed: map[uint64]time.Time{}}
}

// InitialSet is the kernel's set at attach: the matching containers' cgroups.
// Its watermark is InitialWatermark.
func InitialSet(f *filter.PodFilter, infos []*Info) (listed []uint64) {
	for id, in := range cgroupsOf(infos) {
		if f.Kernel(in.Container) {
			listed = append(listed, id)
		}
	}
	return listed
}

// InitialWatermark is the kernel's watermark at attach: below the first
// container cgroup the runtime did not describe (one being made, or made since
// it was listed), else the highest cgroup id. Described are the running
// containers of infos and the cgroups of pids (RuntimePIDs: pod sandboxes too).
func InitialWatermark(infos []*Info, pids []uint32) uint64 {
	described := cgroupsOf(infos)
	for _, pid := range pids {
		if id, err := cgroupOfPID(pid); err == nil {
			described[id] = nil
		}
	}
	w := &PodWatcher{walk: walkCgroups, undescribed: map[uint64]time.Time{}}
	return w.decided(described, time.Now())
}

// cgroupsOf are the cgroups of the running containers of infos, by id.
func cgroupsOf(infos []*Info) map[uint64]*Info {
	byID := map[uint64]*Info{}
	for _, in := range infos {
		if in.HostPID == 0 {
			continue
		}
		if in.CgroupV2 != 0 { // found at its lookup
			byID[in.CgroupV2] = in
		}
	}
	return byID
}

// walkCgroups calls fn with each cgroup's id and path below the cgroup2 root.
func walkCgroups(fn func(id uint64, path string)) {
	root, err := cgroup2Root()
	if err != nil {
		return
	}
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil {
			fn(st.Ino, strings.TrimPrefix(p, root))
		}
		return nil
	})
}

// Start records what the kernel was given at attach.
func (w *PodWatcher) Start(listed []uint64, mark uint64) {
	w.mark = mark
	for _, id := range listed {
		w.listed[id] = true
	}
}

// Add lists the matching containers' cgroups, then, with pod filters, moves
// the watermark past what is decided.
func (w *PodWatcher) Add(infos []*Info) {
	described := cgroupsOf(infos)
	for id, in := range described {
		if w.f.Kernel(in.Container) && !w.listed[id] && w.add(id) == nil {
			w.listed[id] = true
		}
	}
	if w.f.KernelMode() == core.CgroupsOnly {
		w.advance(described)
	}
}

// advance moves the watermark up to the first cgroup above it still
// undecided.
func (w *PodWatcher) advance(described map[uint64]*Info) {
	if mark := w.decided(described, time.Now()); mark > w.mark && w.watermark(mark) == nil {
		w.mark = mark
		for id := range w.undescribed {
			if id <= mark {
				delete(w.undescribed, id)
			}
		}
	}
}

// decided is the highest cgroup id below the first one above the watermark
// still undecided: a container's the runtime has not described (for less than
// undescribedFor). described holds the ids the runtime did describe.
func (w *PodWatcher) decided(described map[uint64]*Info, now time.Time) uint64 {
	top, hold := w.mark, uint64(0)
	w.walk(func(id uint64, path string) {
		if id <= w.mark {
			return
		}
		_, isDescribed := described[id]
		if _, isContainer := ParseCgroup(path); isContainer && !isDescribed && !w.listed[id] {
			first, seen := w.undescribed[id]
			if !seen {
				first = now
				w.undescribed[id] = now
			}
			if now.Sub(first) < undescribedFor && (hold == 0 || id < hold) {
				hold = id
			}
		}
		top = max(top, id)
	})
	if hold != 0 {
		return hold - 1
	}
	return top
}

// Run polls the runtime each second until ctx ends. Polling, not cgroup_mkdir:
// a cgroup exists before the runtime can say which pod it belongs to.
func (w *PodWatcher) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Add(w.e.Refresh(ctx))
		}
	}
}
