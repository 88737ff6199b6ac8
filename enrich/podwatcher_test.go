package enrich

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capsrec/capsrec/filter"
)

// fakeCgroups is a node's cgroup tree: id -> path below the cgroup2 root.
type fakeCgroups map[uint64]string

func (f fakeCgroups) walk(fn func(id uint64, path string)) {
	ids := slices.Sorted(func(yield func(uint64) bool) {
		for id := range f {
			if !yield(id) {
				return
			}
		}
	})
	for _, id := range ids {
		fn(id, f[id])
	}
}

func scope(c byte) string {
	return "/kubepods.slice/kubepods-pod1.slice/cri-containerd-" + strings.Repeat(string(c), 64) + ".scope"
}

// described is a running container the runtime describes, in cgroup id.
func described(c byte, pod string, cgroup uint64) *Info {
	in := info(strings.Repeat(string(c), 64), pod, cgroup)
	in.HostPID = 1
	return in
}

// The watermark says "decided up to here": it stops below the first container
// cgroup the runtime has not described yet, until undescribedFor has passed;
// a host cgroup, a described container, or a listed one does not hold it.
func TestPodWatcherWatermark(t *testing.T) {
	cgroups := fakeCgroups{
		90:  "/system.slice", // below the mark: decided at attach
		101: "/user.slice/user-0.slice",
		102: scope('a'), // described below
		103: scope('b'), // never described: a container being made, or none of the runtime's
		104: scope('c'),
		105: "/system.slice/cron.service",
	}
	var marks []uint64
	w := &PodWatcher{walk: cgroups.walk, mark: 100, listed: map[uint64]bool{}, undescribed: map[uint64]time.Time{},
		watermark: func(id uint64) error { marks = append(marks, id); return nil }}
	desc := map[uint64]*Info{102: described('a', "web", 102), 104: described('c', "db", 104)}
	now := time.Now()
	if got := w.decided(desc, now); got != 102 {
		t.Errorf("decided %d, want 102: container cgroup 103 is not described yet", got)
	}
	if got := w.decided(desc, now.Add(undescribedFor-time.Second)); got != 102 {
		t.Errorf("decided %d before undescribedFor, want 102", got)
	}
	if got := w.decided(desc, now.Add(undescribedFor)); got != 105 {
		t.Errorf("decided %d after undescribedFor, want 105: 103 is none of the runtime's", got)
	}
	w.listed[103] = true
	w.undescribed = map[uint64]time.Time{}
	if got := w.decided(desc, now); got != 105 {
		t.Errorf("decided %d with 103 listed, want 105", got)
	}
	w.listed = map[uint64]bool{}
	if w.advance(desc); len(marks) != 1 || marks[0] != 102 || w.mark != 102 {
		t.Errorf("advance moved the kernel's watermark to %v (mark %d), want [102]", marks, w.mark)
	}
	if w.advance(desc); len(marks) != 1 {
		t.Errorf("advance without news moved the watermark again: %v", marks)
	}
}

// Add lists the cgroups of the matching containers in the kernel, once each,
// and only those: a container of another pod, or one without its process, is not.
func TestPodWatcherAdd(t *testing.T) {
	f, err := filter.NewPodFilter([]string{"web-*"}, nil, nil, "", false)
	if err != nil {
		t.Fatal(err)
	}
	var added, marks []uint64
	w := NewPodWatcher(nil, f, func(id uint64) error { added = append(added, id); return nil },
		func(id uint64) error { marks = append(marks, id); return nil })
	w.walk = fakeCgroups{11: scope('a'), 12: scope('b'), 13: scope('c')}.walk
	w.Start([]uint64{10}, 10)
	gone := described('c', "web-2", 13)
	gone.HostPID = 0 // described, not running: no cgroup to list
	infos := []*Info{described('a', "web-1", 11), described('b', "db-0", 12), gone}
	w.Add(infos)
	w.Add(infos)
	if !slices.Equal(added, []uint64{11}) {
		t.Errorf("listed %v, want [11]: web-1's cgroup, once", added)
	}
	if len(marks) == 0 || marks[len(marks)-1] != 12 {
		t.Errorf("watermarks %v, want up to 12: 13 is a container cgroup not described yet", marks)
	}

	listed := InitialSet(f, infos)
	if !slices.Equal(listed, []uint64{11}) {
		t.Errorf("InitialSet = %v, want [11]", listed)
	}
	host, _ := filter.NewPodFilter(nil, nil, nil, "", true)
	if got := InitialSet(host, infos); len(got) != 2 {
		t.Errorf("--host lists %v, want every running container's cgroup (11, 12)", got)
	}
}
