package profile

import (
	"path"

	"github.com/capsrec/capsrec/recorder"
	"github.com/capsrec/capsrec/syscalls"
)

// FromCheck turns a live check into an Observation.
func FromCheck(c *recorder.Check) Observation {
	o := Observation{
		Time:          c.Time,
		Binary:        c.Process.Binary,
		Cap:           int(c.Cap),
		Granted:       c.Granted(),
		OverrideCreds: c.OverrideCreds,
		Syscall:       syscalls.Name(c.Syscall),
	}
	if o.Binary == "" {
		o.Binary = c.Comm
	}
	if c.AuditKnown {
		o.Audit = NotAudited
		if c.Audit {
			o.Audit = Audited
		}
	}
	if ctr := c.Container; ctr != nil {
		o.Subject = Subject{Container: ctr.Name, Image: ctr.ImageName}
		if ctr.Name == "" {
			o.Subject.Container = ctr.ID
		}
		if pod := ctr.Pod; pod != nil {
			o.Subject.Namespace, o.Subject.Pod = pod.Namespace, pod.Name
			if pod.Workload != "" {
				o.Subject.Workload, o.Subject.WorkloadRule = pod.Workload, "the runtime's workload"
			}
		}
	} else {
		o.Subject = Subject{Binary: hostBinary(o.Binary)}
	}
	return o
}

// Filter keeps the subjects whose namespace, pod and container match (globs; empty matches all).
type Filter struct {
	Namespaces, Pods, Containers []string
}

func anyMatch(patterns []string, v string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, v); ok {
			return true
		}
	}
	return false
}

// Keep tells whether f passes o's subject; host subjects pass only an empty filter.
func (f Filter) Keep(o Observation) bool {
	return anyMatch(f.Namespaces, o.Subject.Namespace) && anyMatch(f.Pods, o.Subject.Pod) && anyMatch(f.Containers, o.Subject.Container)
}

// Validate rejects malformed globs.
func (f Filter) Validate() error {
	for _, list := range [][]string{f.Namespaces, f.Pods, f.Containers} {
		for _, p := range list {
			if _, err := path.Match(p, ""); err != nil {
				return &badPattern{p}
			}
		}
	}
	return nil
}

type badPattern struct{ p string }

func (e *badPattern) Error() string { return "bad glob " + e.p }
