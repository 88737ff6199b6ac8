package profile

import (
	"time"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/filter"
	"github.com/capsrec/capsrec/internal/syscalls"
)

// FromCheck turns a live check into an Observation.
func FromCheck(c *core.Check) Observation {
	o := Observation{
		Time:          c.Time,
		Binary:        c.Process.Binary,
		Cap:           int(c.Cap),
		Granted:       c.Granted(),
		OverrideCreds: c.OverrideCreds,
		Syscall:       syscalls.Name(c.Syscall),
		Class:         c.Class,
		ClassKnown:    true,
		EUID:          c.EUID,
		EUIDKnown:     true,
		Exec:          c.Exec,
		Start:         c.Start,
		Listen:        c.Listen,
		CallSite:      c.CallSite,
		CallSiteVia:   c.CallSiteVia,
		NS: HostNS{Known: c.NS[core.NSUser] != 0, Net: c.InHostNS(core.NSNet), PID: c.InHostNS(core.NSPid),
			IPC: c.InHostNS(core.NSIpc), User: c.InHostNS(core.NSUser)},
	}
	if c.Listen || c.Cap == capNetBindService || c.Cap == capNetRaw {
		o.Net = NetObservation{Port: c.BindPort(), Protocol: c.SocketProtocol(), PortStart: c.NetSysctls.PortStart,
			HostNet: c.InHostNetNS(), HostNetKnown: true}
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
	// A name alone makes no container: one the runtime did not describe (a
	// pod's sandbox, one gone, anyone's cgroup named like one) is profiled
	// with the host's binaries, as its JSON is read.
	if ctr := c.Container; ctr != nil && !ctr.Undescribed {
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

// Filter keeps the subjects whose namespace, pod and container match; host
// subjects pass only an empty filter.
type Filter = filter.Pods

func keep(f Filter, o Observation) bool {
	return f.Match(o.Subject.Namespace, o.Subject.Pod, o.Subject.Container)
}

// Live builds profiles from the kernel's aggregation map (profile --live):
// the first check of each key arrives whole and names the subject; the map
// holds the counts.
type Live struct {
	templates map[core.AggKey]Observation
	// whole counts the checks that arrived whole per key: a key missing from
	// the map (it was full) is counted from these.
	whole map[core.AggKey]uint64
}

// NewLive makes an empty live aggregator.
func NewLive() *Live {
	return &Live{templates: map[core.AggKey]Observation{}, whole: map[core.AggKey]uint64{}}
}

// OnCheck takes a check the kernel sent whole.
func (l *Live) OnCheck(c *core.Check) {
	k := c.AggKey()
	if _, ok := l.templates[k]; !ok {
		l.templates[k] = FromCheck(c)
	}
	l.whole[k]++
}

// Snapshot is the profile of everything counted so far; unattributed counts
// checks whose first event the ring buffer lost.
func (l *Live) Snapshot(entries []core.Aggregate, wall func(uint64) time.Time, f Filter) (p *Profile, unattributed uint64) {
	p = New()
	inMap := map[core.AggKey]bool{}
	for _, e := range entries {
		inMap[e.Key] = true
		o, ok := l.templates[e.Key]
		if !ok {
			unattributed += e.Count
			continue
		}
		if keep(f, o) {
			p.AddN(o, e.Count, wall(e.LastKtime))
		}
	}
	for k, n := range l.whole {
		if o := l.templates[k]; !inMap[k] && keep(f, o) {
			p.AddN(o, n, o.Time)
		}
	}
	return p, unattributed
}
