package profile

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/caps"
	"github.com/capsrec/capsrec/tetragon"
)

// errNotCheck marks an event of another hook in a Tetragon stream.
var errNotCheck = errors.New("not a cap_capable event")

// event is a parsed event, profiled.
type event tetragon.Event

// parseEvent reads one JSON line into an Observation.
func parseEvent(line []byte) (Observation, error) {
	e, err := tetragon.ParseEvent(line)
	if err != nil {
		return Observation{}, err
	}
	return (*event)(&e).observation()
}

func (f *event) observation() (Observation, error) {
	if f.Summary {
		return f.summaryObservation()
	}
	if f.Exec {
		return f.execObservation()
	}
	if f.Listen {
		return f.listenObservation()
	}
	if !f.Kprobe || f.Function != "cap_capable" {
		return Observation{}, errNotCheck
	}
	if !f.HasCap {
		return Observation{}, errors.New("cap_capable event without args[].capability_arg")
	}
	if !f.HasRet {
		return Observation{}, errors.New("cap_capable event without return.int_arg")
	}
	if f.HasValue && (f.CapValue < 0 || f.CapValue > caps.MaxValue) {
		return Observation{}, fmt.Errorf("capability %d out of range (0 to %d)", f.CapValue, caps.MaxValue)
	}
	o := Observation{
		Cap:           int(f.CapValue),
		Granted:       f.Ret == 0,
		Binary:        f.Binary,
		OverrideCreds: f.Override,
		Syscall:       f.Syscall,
		CallSite:      f.CallSite,
		CallSiteVia:   f.CallSiteVia,
		NS:            f.HostNS,
		Net:           f.net(),
	}
	if !f.HasValue {
		if v, err := caps.Parse(f.CapName); err == nil {
			o.Cap = v
		}
	}
	if f.AuditKnown {
		o.Audit = NotAudited
		if f.Audit {
			o.Audit = Audited
		}
	}
	if f.Class != "" {
		c, ok := core.ParseClass(f.Class)
		if !ok {
			return Observation{}, errors.New("unknown capsrec.class " + f.Class)
		}
		o.Class, o.ClassKnown = c, true
	}
	switch {
	case f.HasEUID:
		o.EUID, o.EUIDKnown = uint32(f.EUID), true
	case f.HasUID:
		o.EUID, o.EUIDKnown = uint32(f.UID), true
	}
	t, err := f.eventTime()
	if err != nil {
		return Observation{}, err
	}
	o.Time = t
	o.Subject = f.subject()
	return o, nil
}

// eventTime is the event's time; zero when it has none.
func (f *event) eventTime() (time.Time, error) {
	if f.Time == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, f.Time)
	if err != nil {
		return time.Time{}, errors.New("time " + f.Time + " is not RFC 3339")
	}
	return t, nil
}

// execObservation is a container's exec; a host program's is another hook's event.
func (f *event) execObservation() (Observation, error) {
	if f.Pod == "" && f.containerName() == "" {
		return Observation{}, errNotCheck
	}
	o := Observation{Exec: true, Binary: f.Binary, Start: f.Start}
	if !f.StartKnown { // Tetragon's: the container's first process is its pid 1
		o.Start = f.ContainerPID == 1
	}
	o.Subject = Subject{Namespace: f.Namespace, Pod: f.Pod, Container: f.containerName(), Image: f.Image}
	if f.Workload != "" {
		o.Subject.Workload, o.Subject.WorkloadRule = f.Workload, "Tetragon's pod.workload"
	}
	t, err := f.eventTime()
	if err != nil {
		return Observation{}, err
	}
	o.Time = t
	return o, nil
}

// containerName is the container's name, or its id when the runtime gave
// it none (as the live profile names it).
func (f *event) containerName() string {
	if f.Container != "" || f.ContainerID == "" {
		return f.Container
	}
	return bareID(f.ContainerID)
}

// bareID is a container id without its runtime:// prefix.
func bareID(id string) string {
	if _, bare, ok := strings.Cut(id, "://"); ok {
		return bare
	}
	return id
}

// subject is the event's container, else its host binary.
func (f *event) subject() Subject {
	if f.Pod == "" && f.containerName() == "" {
		return Subject{Binary: hostBinary(f.Binary)}
	}
	sub := Subject{Namespace: f.Namespace, Pod: f.Pod, Container: f.containerName(), Image: f.Image}
	if f.Workload != "" {
		sub.Workload, sub.WorkloadRule = f.Workload, "Tetragon's pod.workload"
	}
	return sub
}

// net is what the event says of the network.
func (f *event) net() NetObservation {
	n := NetObservation{Protocol: int32(f.Protocol), PortStart: -1, HostNet: f.HostNS.Net, HostNetKnown: f.HostNetKnown}
	if f.Port > 0 && f.Port < 1<<16 {
		n.Port = uint16(f.Port)
	}
	if f.HasPortStart && f.PortStart >= 0 && f.PortStart < 1<<16 {
		n.PortStart = int32(f.PortStart)
	}
	if f.Protocol < -1 || f.Protocol >= 1<<16 {
		n.Protocol = -1
	}
	return n
}

// listenObservation is a low port listened on with no check.
func (f *event) listenObservation() (Observation, error) {
	o := Observation{Listen: true, Cap: capNetBindService, Granted: true, Binary: f.Binary, Net: f.net()}
	if o.Net.Port == 0 || o.Net.Port >= 1024 {
		return Observation{}, errors.New("capsrec_listen without a capsrec.port below 1024")
	}
	o.Subject = f.subject()
	t, err := f.eventTime()
	if err != nil {
		return Observation{}, err
	}
	o.Time = t
	return o, nil
}

// summaryObservation carries a recording's own summary.
func (f *event) summaryObservation() (Observation, error) {
	start, err1 := time.Parse(time.RFC3339Nano, f.SumStart)
	end, err2 := time.Parse(time.RFC3339Nano, f.SumEnd)
	if err1 != nil || err2 != nil || f.SumLost < 0 {
		return Observation{}, errors.New("capsrec_summary without start_time, end_time (RFC 3339) and lost")
	}
	return Observation{session: &Recorded{Sessions: 1, Start: start, End: end, Lost: uint64(f.SumLost)}}, nil
}

func hostBinary(b string) string {
	if strings.TrimSpace(b) == "" {
		return "(unknown binary)"
	}
	return b
}
