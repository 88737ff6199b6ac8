package enrich

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/capsrec/capsrec/core"
)

// fakeRuntime answers as a runtime would: the containers it knows, each
// Lookup after its delay (block holds it until released).
type fakeRuntime struct {
	mu      sync.Mutex
	known   map[string]*Info
	listed  []*Info
	block   map[string]chan struct{}
	lookups []string
	// goneAfter removes a container after this many lookups of it.
	goneAfter map[string]int
}

func (f *fakeRuntime) List(context.Context) ([]*Info, error) { return f.listed, nil }

func (f *fakeRuntime) Lookup(_ context.Context, id string) (*Info, error) {
	f.mu.Lock()
	f.lookups = append(f.lookups, id)
	wait := f.block[id]
	f.mu.Unlock()
	if wait != nil {
		<-wait
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n, ok := f.goneAfter[id]; ok && countOf(f.lookups, id) > n {
		return nil, errors.New("NotFound")
	}
	if in, ok := f.known[id]; ok {
		return in, nil
	}
	return nil, errors.New("NotFound")
}

func countOf(l []string, s string) (n int) {
	for _, x := range l {
		if x == s {
			n++
		}
	}
	return n
}

func (f *fakeRuntime) lookupCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.lookups)
}

func containerID(c byte) string { return strings.Repeat(string(c), 64) }

func info(id, pod string, cgroup uint64) *Info {
	return &Info{CgroupV2: cgroup, Container: &core.Container{ID: id, Runtime: "containerd", Name: "app",
		Pod: &core.Pod{Namespace: "default", Name: pod}}}
}

// check is one check of the container id's cgroup, as the kernel names it;
// an empty id is a host process's check.
func check(seq uint64, id string, cgroup uint64) *core.Check {
	c := &core.Check{Ktime: seq, CgroupID: cgroup, Process: &core.Process{Tgid: 1}, Class: core.ClassNeed}
	c.CgroupName = "user.slice"
	if id != "" {
		c.CgroupName = "cri-containerd-" + id + ".scope"
	}
	return c
}

func started(in *Info) *Info {
	c := *in.Container
	c.StartTime = time.Unix(1e9, 0)
	return &Info{CgroupV2: in.CgroupV2, Container: &c}
}

func handover(c *core.Check) *core.Check {
	c.Exec, c.Handoff = true, true
	return c
}

// what is how a test reads an emitted check: its pod, or what stands in.
func what(c *core.Check) string {
	switch {
	case c.Container == nil:
		return "host"
	case c.Container.Undescribed:
		return "undescribed " + c.Container.ID[:4]
	case !c.Container.StartTime.IsZero():
		return "pod " + c.Container.Pod.Name + ", started"
	}
	return "pod " + c.Container.Pod.Name
}

func TestQueueOrderAndIdentity(t *testing.T) {
	a, b, forged := containerID('a'), containerID('b'), containerID('f')
	for _, tc := range []struct {
		name    string
		listed  []*Info // what List says at the start
		known   []*Info // what Lookup finds later
		blocked string  // a lookup that never answers (the queue times out)
		noRT    bool    // no runtime at all
		gone    string  // removed after its first lookup
		checks  []*core.Check
		want    []string
		lookups int
	}{
		{name: "listed at the start: no lookup",
			listed: []*Info{info(a, "web", 10)},
			checks: []*core.Check{check(1, a, 10), check(2, "", 1), check(3, a, 10)},
			want:   []string{"pod web", "host", "pod web"}},
		{name: "a new container: later checks wait for its lookup, in order",
			known:   []*Info{info(b, "db", 20)},
			checks:  []*core.Check{check(1, b, 20), check(2, "", 1), check(3, b, 20)},
			want:    []string{"pod db", "host", "pod db"},
			lookups: 1},
		{name: "a cgroup named after a container it is not: not that pod's",
			listed: []*Info{info(a, "web", 10)},
			checks: []*core.Check{check(1, a, 99), check(2, a, 10)},
			want:   []string{"host", "pod web"}},
		{name: "a container the runtime does not know: asked once, then its id",
			checks:  []*core.Check{check(1, forged, 30), check(2, forged, 30)},
			want:    []string{"undescribed ffff", "undescribed ffff"},
			lookups: 1},
		{name: "a lookup that does not answer: out after the timeout with its id",
			blocked: b,
			checks:  []*core.Check{check(1, b, 20), check(2, "", 1)},
			want:    []string{"undescribed bbbb", "host"},
			lookups: 1},
		{name: "a runtime's hand-over into a container listed before it started: asked again",
			listed:  []*Info{info(a, "web", 10)},
			known:   []*Info{started(info(a, "web", 10))},
			checks:  []*core.Check{check(1, a, 10), handover(check(2, a, 10)), check(3, a, 10)},
			want:    []string{"pod web", "pod web, started", "pod web, started"},
			lookups: 1},
		{name: "removed while its start is awaited: the first answer stands",
			known:   []*Info{info(b, "db", 20)},
			gone:    b,
			checks:  []*core.Check{handover(check(1, b, 20)), check(2, b, 20)},
			want:    []string{"pod db", "pod db"},
			lookups: 2},
		{name: "no runtime: ids alone, nothing waits",
			noRT:   true,
			checks: []*core.Check{check(1, a, 10), check(2, "", 1)},
			want:   []string{"undescribed aaaa", "host"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := &fakeRuntime{known: map[string]*Info{}, listed: tc.listed, block: map[string]chan struct{}{}, goneAfter: map[string]int{}}
			if tc.gone != "" {
				rt.goneAfter[tc.gone] = 1
			}
			for _, in := range append(slices.Clone(tc.listed), tc.known...) {
				rt.known[in.Container.ID] = in
			}
			release := make(chan struct{})
			defer close(release)
			if tc.blocked != "" {
				rt.block[tc.blocked] = release
			}
			var runtime Runtime = rt
			if tc.noRT {
				runtime = (*CRI)(nil) // as the commands pass it when no socket answers
			}
			e := NewEnricher(runtime, func(w string) { t.Errorf("warning: %s", w) })
			var got []string
			var seqs []uint64
			q := NewQueue(e, 200*time.Millisecond, func(c *core.Check) error {
				got = append(got, what(c))
				seqs = append(seqs, c.Ktime)
				return nil
			})
			for _, c := range tc.checks {
				if err := q.Push(c); err != nil {
					t.Fatal(err)
				}
			}
			if err := q.Flush(true); err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "; ") != strings.Join(tc.want, "; ") {
				t.Errorf("emitted %q, want %q", got, tc.want)
			}
			for i := range seqs {
				if seqs[i] != uint64(i+1) {
					t.Errorf("emitted out of order: %v", seqs)
					break
				}
			}
			if n := rt.lookupCount(); n != tc.lookups {
				t.Errorf("%d lookups (%v), want %d", n, rt.lookups, tc.lookups)
			}
		})
	}
}
