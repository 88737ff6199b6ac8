package enrich

import (
	"context"
	"sync"
	"time"

	"github.com/capsrec/capsrec/core"
)

// Runtime is what the enricher asks of the node's container runtime: the
// CRI client (*CRI), or a fake in tests.
type Runtime interface {
	// List describes every running container.
	List(ctx context.Context) ([]*Info, error)
	// Lookup describes one container; an error when the runtime does not know it.
	Lookup(ctx context.Context, id string) (*Info, error)
}

// Enricher joins checks to their containers through a cache keyed by
// container id. The event path never waits on the runtime: a check whose
// container is not known yet is held, in order, until its lookup answers or
// times out (Queue).
type Enricher struct {
	cri  Runtime // nil: no runtime, checks go on without pod fields
	warn func(string)
	// hostUserNS is the node's user namespace: a container's own unless the
	// runtime gave it one.
	hostUserNS uint32

	// byCg is the kernel's cgroup id -> what its name or path said. It belongs
	// to the one goroutine that resolves checks (a Queue's): it is asked for
	// every check, and needs no lock.
	byCg map[uint64]cgroupAnswer

	mu      sync.Mutex
	byID    map[string]*entry
	missing map[string]time.Time // ids the runtime did not know, and when asked
	Lookups uint64               // runtime lookups made
}

type entry struct {
	info *Info
	done chan struct{} // closed when the lookup has answered
}

type cgroupAnswer struct {
	ref CgroupRef
	ok  bool
}

// retryMissing is how long an id the runtime did not know stays unknown before it is asked again.
const retryMissing = 10 * time.Second

// NewEnricher fills the cache from the runtime's containers; cri may be nil
// (a nil *CRI too).
func NewEnricher(cri Runtime, warn func(string)) *Enricher {
	if c, ok := cri.(*CRI); ok && c == nil {
		cri = nil
	}
	e := &Enricher{cri: cri, warn: warn, byID: map[string]*entry{}, byCg: map[uint64]cgroupAnswer{}, missing: map[string]time.Time{},
		hostUserNS: core.HostNamespaces()[core.NSUser]}
	if cri != nil {
		e.Refresh(context.Background())
	}
	return e
}

// Refresh adds every running container to the cache; removed ones stay, so late checks resolve.
func (e *Enricher) Refresh(ctx context.Context) []*Info {
	infos, err := e.cri.List(ctx)
	if err != nil {
		e.warn("listing containers: " + err.Error())
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, in := range infos {
		if old, ok := e.byID[in.Container.ID]; !ok || old.info == nil {
			done := make(chan struct{})
			close(done)
			e.byID[in.Container.ID] = &entry{info: in, done: done}
		}
	}
	return infos
}

// ref finds the container id of a check, once per cgroup: from the kernel's
// cgroup name (which the cgroup id names), or from /proc/PID/cgroup when the
// name alone does not say.
func (e *Enricher) ref(c *core.Check) (CgroupRef, bool) {
	a, seen := e.byCg[c.CgroupID]
	if seen {
		return a.ref, a.ok
	}
	if a.ref, a.ok = ParseCgroup(c.CgroupName); !a.ok {
		if path, err := ProcCgroup(c.Process.Tgid); err == nil {
			a.ref, a.ok = ParseCgroup(path)
		}
	}
	if len(e.byCg) < 1<<16 {
		e.byCg[c.CgroupID] = a
	}
	return a.ref, a.ok
}

// Resolve sets c.Container when the cache knows it and returns a channel that is
// closed once the answer is final; nil when it is final already. Resolve and
// Fill are for one goroutine (see byCg).
func (e *Enricher) Resolve(c *core.Check) <-chan struct{} {
	ref, ok := e.ref(c)
	if !ok {
		return nil // not in a container
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// A runtime's hand-over in a container described before it started (no
	// pid yet) asks again: whether it is the container's start depends on it.
	starting := c.Exec && c.Handoff
	if en, ok := e.byID[ref.ID]; ok {
		select {
		case <-en.done:
			if !starting || en.info == nil || !en.info.Container.StartTime.IsZero() || e.cri == nil {
				e.fill(c, ref, en.info)
				return nil
			}
		default:
			return en.done
		}
	} else if e.cri == nil || time.Since(e.missing[ref.ID]) < retryMissing {
		e.fill(c, ref, nil)
		return nil
	}
	en := &entry{done: make(chan struct{})}
	e.byID[ref.ID] = en
	e.Lookups++
	go func() {
		info, err := e.cri.Lookup(context.Background(), ref.ID)
		// The runtime records a container's start just after it starts it: at a
		// hand-over, give it a moment (within the queue's wait). A container
		// removed meanwhile keeps the answer it had: it was that pod's.
		for tries := 0; starting && err == nil && info.Container.StartTime.IsZero() && tries < 15; tries++ {
			time.Sleep(100 * time.Millisecond)
			next, nerr := e.cri.Lookup(context.Background(), ref.ID)
			if nerr != nil {
				break
			}
			info = next
		}
		e.mu.Lock()
		if err != nil {
			delete(e.byID, ref.ID)
			e.missing[ref.ID] = time.Now()
		} else {
			en.info = info
		}
		e.mu.Unlock()
		close(en.done)
	}()
	return en.done
}

// Fill completes c after its lookup has answered (or timed out: then it gets the id alone).
func (e *Enricher) Fill(c *core.Check) {
	ref, ok := e.ref(c)
	if !ok {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var info *Info
	if en, ok := e.byID[ref.ID]; ok {
		select {
		case <-en.done:
			info = en.info
		default:
		}
	}
	e.fill(c, ref, info)
}

func (e *Enricher) fill(c *core.Check, ref CgroupRef, info *Info) {
	if info != nil {
		// Identity from the runtime, not from names: a cgroup named after a
		// container (anyone with a delegated cgroup can make one) is not it.
		if info.CgroupV2 != 0 && c.CgroupID != 0 && c.CgroupID != info.CgroupV2 {
			return
		}
		c.Container = info.Container
		return
	}
	// A container the runtime does not show: its id, and what the path said.
	runtime := ref.Runtime
	if runtime == "" {
		runtime = "containerd"
	}
	c.Container = &core.Container{ID: ref.ID, Runtime: runtime, Undescribed: true}
}

// Classify marks a need that the subject's capabilities did not decide
// (ClassUserNS): answered by the owner or the level rule of cap_capable, or
// in a user namespace other than the subject's own (one the workload made).
// A container's own namespace is the node's unless the runtime gave it one.
func (e *Enricher) Classify(c *core.Check) {
	if c.Exec || c.Listen || c.Class != core.ClassNeed {
		return
	}
	own := e.hostUserNS
	if c.Container != nil && c.Container.UserNS != 0 {
		own = c.Container.UserNS
	}
	switch c.NSAnswer {
	case core.AnswerOwner, core.AnswerLevel:
		c.Class = core.ClassUserNS
	case core.AnswerCaps:
		if own != 0 && c.CredUserNS != 0 && c.CredUserNS != own {
			c.Class = core.ClassUserNS
		}
	}
}
