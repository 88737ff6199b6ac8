package enrich

import (
	"testing"

	"github.com/capsrec/capsrec/filter"
	"github.com/capsrec/capsrec/recorder"
)

// Classify marks userns exactly the needs the subject's capabilities did not decide.
func TestClassifyUserNS(t *testing.T) {
	const host, pod, nested = 100, 200, 300
	e := &Enricher{hostUserNS: host}
	podCtr := &recorder.Container{ID: "p", UserNS: pod}
	plain := &recorder.Container{ID: "c"}
	for _, c := range []struct {
		name   string
		class  recorder.Class
		answer uint8
		cred   uint32
		ctr    *recorder.Container
		want   recorder.Class
	}{
		{"a host process's own capabilities", recorder.ClassNeed, recorder.AnswerCaps, host, nil, recorder.ClassNeed},
		{"a container's, in the node's namespace", recorder.ClassNeed, recorder.AnswerCaps, host, plain, recorder.ClassNeed},
		{"in a namespace the workload made", recorder.ClassNeed, recorder.AnswerCaps, nested, plain, recorder.ClassUserNS},
		{"the owner rule", recorder.ClassNeed, recorder.AnswerOwner, host, nil, recorder.ClassUserNS},
		{"the level rule", recorder.ClassNeed, recorder.AnswerLevel, nested, nil, recorder.ClassUserNS},
		{"a hostUsers: false pod in its own namespace", recorder.ClassNeed, recorder.AnswerCaps, pod, podCtr, recorder.ClassNeed},
		{"that pod from the node's namespace", recorder.ClassNeed, recorder.AnswerCaps, host, podCtr, recorder.ClassUserNS},
		{"a walk too deep: the caps rule", recorder.ClassNeed, 3, host, nil, recorder.ClassNeed},
		{"runtime setup stays", recorder.ClassRuntime, recorder.AnswerOwner, host, nil, recorder.ClassRuntime},
		{"a probe stays", recorder.ClassProbe, recorder.AnswerCaps, nested, nil, recorder.ClassProbe},
	} {
		ch := &recorder.Check{Class: c.class, NSAnswer: c.answer, CredUserNS: c.cred, Container: c.ctr}
		if e.Classify(ch); ch.Class != c.want {
			t.Errorf("%s: class %v, want %v", c.name, ch.Class, c.want)
		}
	}
}

// A check is joined to a container only in the cgroup the runtime gave it.
func TestFillNeedsTheRuntimesCgroup(t *testing.T) {
	e := &Enricher{}
	info := &Info{Container: &recorder.Container{ID: "abc"}, CgroupV2: 42}
	for id, want := range map[uint64]bool{42: true, 43: false} {
		c := &recorder.Check{CgroupID: id}
		e.fill(c, CgroupRef{ID: "abc"}, info)
		if (c.Container != nil) != want {
			t.Errorf("cgroup %d: joined %v, want %v", id, c.Container != nil, want)
		}
	}
	c := &recorder.Check{CgroupID: 7}
	e.fill(c, CgroupRef{ID: "zzz"}, nil)
	if c.Container == nil || !c.Container.Undescribed {
		t.Errorf("a container the runtime does not describe: %+v, want its id, undescribed", c.Container)
	}
	f := &filter.PodFilter{Host: true}
	if !f.Matches(c.Container) {
		t.Errorf("--host hides a cgroup that only its name calls a container")
	}
}
