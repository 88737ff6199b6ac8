package enrich

import (
	"testing"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/filter"
)

// Classify marks userns exactly the needs the subject's capabilities did not decide.
func TestClassifyUserNS(t *testing.T) {
	const host, pod, nested = 100, 200, 300
	e := &Enricher{hostUserNS: host}
	podCtr := &core.Container{ID: "p", UserNS: pod}
	plain := &core.Container{ID: "c"}
	for _, c := range []struct {
		name   string
		class  core.Class
		answer uint8
		cred   uint32
		ctr    *core.Container
		want   core.Class
	}{
		{"a host process's own capabilities", core.ClassNeed, core.AnswerCaps, host, nil, core.ClassNeed},
		{"a container's, in the node's namespace", core.ClassNeed, core.AnswerCaps, host, plain, core.ClassNeed},
		{"in a namespace the workload made", core.ClassNeed, core.AnswerCaps, nested, plain, core.ClassUserNS},
		{"the owner rule", core.ClassNeed, core.AnswerOwner, host, nil, core.ClassUserNS},
		{"the level rule", core.ClassNeed, core.AnswerLevel, nested, nil, core.ClassUserNS},
		{"a hostUsers: false pod in its own namespace", core.ClassNeed, core.AnswerCaps, pod, podCtr, core.ClassNeed},
		{"that pod from the node's namespace", core.ClassNeed, core.AnswerCaps, host, podCtr, core.ClassUserNS},
		{"a walk too deep: the caps rule", core.ClassNeed, 3, host, nil, core.ClassNeed},
		{"runtime setup stays", core.ClassRuntime, core.AnswerOwner, host, nil, core.ClassRuntime},
		{"a probe stays", core.ClassProbe, core.AnswerCaps, nested, nil, core.ClassProbe},
	} {
		ch := &core.Check{Class: c.class, NSAnswer: c.answer, CredUserNS: c.cred, Container: c.ctr}
		if e.Classify(ch); ch.Class != c.want {
			t.Errorf("%s: class %v, want %v", c.name, ch.Class, c.want)
		}
	}
}

// A check is joined to a container only in the cgroup the runtime gave it.
func TestFillNeedsTheRuntimesCgroup(t *testing.T) {
	e := &Enricher{}
	info := &Info{Container: &core.Container{ID: "abc"}, CgroupV2: 42}
	for id, want := range map[uint64]bool{42: true, 43: false} {
		c := &core.Check{CgroupID: id}
		e.fill(c, CgroupRef{ID: "abc"}, info)
		if (c.Container != nil) != want {
			t.Errorf("cgroup %d: joined %v, want %v", id, c.Container != nil, want)
		}
	}
	c := &core.Check{CgroupID: 7}
	e.fill(c, CgroupRef{ID: "zzz"}, nil)
	if c.Container == nil || !c.Container.Undescribed {
		t.Errorf("a container the runtime does not describe: %+v, want its id, undescribed", c.Container)
	}
	f := &filter.PodFilter{Host: true}
	if !f.Matches(c.Container) {
		t.Errorf("--host hides a cgroup that only its name calls a container")
	}
}
