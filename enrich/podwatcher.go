package enrich

import (
	"context"
	"io/fs"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/capsrec/capsrec/bpf"
	"github.com/capsrec/capsrec/recorder"
)

// PodWatcher keeps the kernel's cgroup filter in step with the pods. With pod
// filters the kernel drops only the checks of cgroups known to be no pod of
// the filter's, and keeps those of cgroups not known yet: a container's first
// checks, made microseconds after its exec and long before the runtime can say
// whose it is, are sent, and user space decides. Known means: there when the
// session started and no matching container's, or a container the runtime
// reported (polled each second), or a cgroup whose check user space dropped
// for being a host process's or another pod's.
type PodWatcher struct {
	e   *Enricher
	f   *PodFilter
	set func(id uint64, v uint8) error

	mu    sync.Mutex
	known map[uint64]uint8 // what the kernel's set holds, as far as we put it there
}

// maxKnown is the kernel's cgroup_filter size.
const maxKnown = 16384

// NewPodWatcher watches for f; set writes the kernel's set (Session.SetCgroup).
func NewPodWatcher(e *Enricher, f *PodFilter, set func(id uint64, v uint8) error) *PodWatcher {
	return &PodWatcher{e: e, f: f, set: set, known: map[uint64]uint8{}}
}

// InitialSet is the kernel's set at attach: with pod filters every cgroup that
// exists now is excluded but the matching containers' (listed); with --host
// the containers are listed (dropped).
func InitialSet(f *PodFilter, infos []*Info) map[uint64]uint8 {
	set := map[uint64]uint8{}
	if f.KernelMode() == bpf.CgroupsOnly {
		if root, err := cgroup2Root(); err == nil {
			_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.IsDir() || len(set) >= maxKnown {
					return nil
				}
				var st syscall.Stat_t
				if syscall.Stat(p, &st) == nil {
					set[st.Ino] = bpf.CgroupExcluded
				}
				return nil
			})
		}
	}
	for _, in := range infos {
		if in.HostPID == 0 || !f.Kernel(in.Container) {
			continue
		}
		if id, err := in.CgroupID(); err == nil {
			set[id] = bpf.CgroupListed
		}
	}
	return set
}

// Known records what the kernel's set was filled with at attach.
func (w *PodWatcher) Known(set map[uint64]uint8) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, v := range set {
		w.known[id] = v
	}
}

// put writes id's value into the kernel's set unless it holds it already.
func (w *PodWatcher) put(id uint64, v uint8) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.known[id]; (ok && old == v) || (!ok && len(w.known) >= maxKnown) {
		return
	}
	if w.set(id, v) == nil {
		w.known[id] = v
	}
}

// Add lists the matching containers' cgroups; with pod filters the other
// containers' are excluded.
func (w *PodWatcher) Add(infos []*Info) {
	podMode := w.f.KernelMode() == bpf.CgroupsOnly
	for _, in := range infos {
		if in.HostPID == 0 {
			continue
		}
		keep := w.f.Kernel(in.Container)
		if !keep && !podMode {
			continue
		}
		id, err := in.CgroupID()
		if err != nil {
			continue
		}
		if keep {
			w.put(id, bpf.CgroupListed)
		} else {
			w.put(id, bpf.CgroupExcluded)
		}
	}
}

// Dropped is told of each check user space dropped for the pod filter: a host
// process's cgroup, or another pod's container's, is excluded in the kernel
// from then on. A container the runtime has not described yet is left alone.
func (w *PodWatcher) Dropped(c *recorder.Check) {
	if w.f.KernelMode() != bpf.CgroupsOnly || c.CgroupID == 0 {
		return
	}
	if c.Container == nil || (c.Container.Pod != nil && !w.f.Matches(c.Container)) {
		w.put(c.CgroupID, bpf.CgroupExcluded)
	}
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
