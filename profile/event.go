package profile

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/caps"
)

// errNotCheck marks an event of another hook in a Tetragon stream.
var errNotCheck = errors.New("not a cap_capable event")

// fields are what a profile reads of a capsrec or Tetragon process_kprobe event.
type fields struct {
	kprobe                           bool
	function                         string
	binary                           string
	namespace, pod, container, image string
	workload                         string
	capValue                         int64
	hasValue                         bool
	capName                          string
	hasCap, hasRet                   bool
	ret                              int64
	audit, auditKnown, override      bool
	class                            string
	euid, uid                        int64
	hasEUID, hasUID                  bool
	syscall                          string
	time                             string
	// A process_exec event: a program's exec (in a container); start from
	// capsrec.container_start, or for Tetragon's the container's pid 1.
	exec, startKnown, start bool
	containerPID            int64
	containerID             string // runtime://ID, of process.pod.container or capsrec.container
	// The network facts (alternatives.go): call site, bind(2)'s port or
	// socket(2)'s protocol, the namespace's sysctl, whether it is the host's;
	// listen: a capsrec_listen event.
	callSite, callSiteVia string
	hostNS                HostNS
	port, protocol        int64
	portStart             int64
	hasPortStart          bool
	hostNetKnown          bool
	listen                bool
	// A capsrec_summary event: what a recording says of itself.
	summary          bool
	sumStart, sumEnd string
	sumLost          int64
}

// parseEvent reads one JSON line into an Observation.
func parseEvent(line []byte) (Observation, error) {
	s := &scanner{b: line}
	f := fields{protocol: -1}
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "process_kprobe":
			f.kprobe = true
			return s.object(func(k []byte) error { return f.kprobeField(s, k) })
		case "process_exec":
			f.exec = true
			return s.object(func(k []byte) error { return f.execField(s, k) })
		case "capsrec_listen":
			f.listen = true
			return s.object(func(k []byte) error { return f.listenField(s, k) })
		case "capsrec_summary":
			f.summary = true
			return s.object(func(k []byte) error { return f.summaryField(s, k) })
		case "time":
			var err error
			f.time, err = s.str()
			return err
		}
		return s.skip()
	})
	if err != nil {
		return Observation{}, err
	}
	if s.peek() != 0 {
		return Observation{}, s.fail("data after the event")
	}
	return f.observation()
}

func (f *fields) execField(s *scanner, key []byte) error {
	switch string(key) {
	case "process":
		return s.object(func(k []byte) error { return f.processField(s, k) })
	case "capsrec":
		return s.object(func(k []byte) error {
			switch string(k) {
			case "container_start":
				var err error
				f.startKnown = true
				f.start, err = s.boolean()
				return err
			case "container":
				return f.bareContainer(s)
			}
			return s.skip()
		})
	}
	return s.skip()
}

func (f *fields) listenField(s *scanner, key []byte) error {
	switch string(key) {
	case "process":
		return s.object(func(k []byte) error { return f.processField(s, k) })
	case "capsrec":
		return s.object(func(k []byte) error {
			var err error
			switch string(k) {
			case "port":
				f.port, err = s.integer()
			case "ip_unprivileged_port_start":
				f.hasPortStart = true
				f.portStart, err = s.integer()
			case "container":
				err = f.bareContainer(s)
			default:
				err = s.skip()
			}
			return err
		})
	}
	return s.skip()
}

// bareContainer reads capsrec.container: a container in no pod, named as
// the live profile names it (its id when the runtime gave no name). A pod's
// container (process.pod) comes first.
func (f *fields) bareContainer(s *scanner) error {
	var id, name, image string
	err := s.object(func(k []byte) error {
		var err error
		switch string(k) {
		case "id":
			id, err = s.str()
		case "name":
			name, err = s.str()
		case "image":
			image, err = s.str()
		default:
			err = s.skip()
		}
		return err
	})
	if err != nil || f.pod != "" || f.container != "" {
		return err
	}
	f.container, f.containerID, f.image = name, id, image
	return nil
}

// netField reads capsrec's network facts of a check.
func (f *fields) netField(s *scanner, key []byte) (bool, error) {
	var err error
	switch string(key) {
	case "call_site":
		f.callSite, err = s.str()
	case "call_site_via":
		f.callSiteVia, err = s.str()
	case "bind_port":
		f.port, err = s.integer()
	case "socket_protocol":
		f.protocol, err = s.integer()
	case "netns_sysctls":
		err = s.object(func(k []byte) error {
			if string(k) != "ip_unprivileged_port_start" {
				return s.skip()
			}
			var err error
			f.hasPortStart = true
			f.portStart, err = s.integer()
			return err
		})
	default:
		return false, nil
	}
	return true, err
}

// nsField reads which of the process's namespaces are the host's.
func (f *fields) nsField(s *scanner) error {
	return s.object(func(k []byte) error {
		var host *bool
		switch string(k) {
		case "net":
			f.hostNetKnown = true // is_host is written only when true
			host = &f.hostNS.Net
		case "pid":
			host = &f.hostNS.PID
		case "ipc":
			host = &f.hostNS.IPC
		case "user":
			host = &f.hostNS.User
		default:
			return s.skip()
		}
		user := host == &f.hostNS.User
		return s.object(func(k []byte) error {
			var err error
			switch string(k) {
			case "is_host":
				*host, err = s.boolean()
			case "inum":
				var inum int64
				inum, err = s.integer()
				f.hostNS.Known = f.hostNS.Known || (user && inum > 0) // what readiness rests on
			default:
				err = s.skip()
			}
			return err
		})
	})
}

func (f *fields) summaryField(s *scanner, key []byte) error {
	var err error
	switch string(key) {
	case "start_time":
		f.sumStart, err = s.str()
	case "end_time":
		f.sumEnd, err = s.str()
	case "lost":
		f.sumLost, err = s.integer()
	default:
		err = s.skip()
	}
	return err
}

func (f *fields) kprobeField(s *scanner, key []byte) error {
	var err error
	switch string(key) {
	case "function_name":
		f.function, err = s.str()
	case "process":
		err = s.object(func(k []byte) error { return f.processField(s, k) })
	case "args":
		err = s.array(func() error {
			return s.object(func(k []byte) error {
				if string(k) != "capability_arg" {
					return s.skip()
				}
				f.hasCap = true
				return s.object(func(k []byte) error {
					var err error
					switch string(k) {
					case "value":
						f.hasValue = true
						f.capValue, err = s.integer()
					case "name":
						f.capName, err = s.str()
					default:
						err = s.skip()
					}
					return err
				})
			})
		})
	case "return":
		err = s.object(func(k []byte) error {
			if string(k) != "int_arg" {
				return s.skip()
			}
			f.hasRet = true
			var err error
			f.ret, err = s.number()
			return err
		})
	case "capsrec":
		err = s.object(func(k []byte) error {
			var err error
			switch string(k) {
			case "audit":
				f.auditKnown = true
				f.audit, err = s.boolean()
			case "override_creds":
				f.override, err = s.boolean()
			case "class":
				f.class, err = s.str()
			case "euid":
				f.hasEUID = true
				f.euid, err = s.number()
			case "syscall_name":
				f.syscall, err = s.str()
			case "container":
				err = f.bareContainer(s)
			default:
				var ok bool
				if ok, err = f.netField(s, k); !ok {
					err = s.skip()
				}
			}
			return err
		})
	default:
		err = s.skip()
	}
	return err
}

func (f *fields) processField(s *scanner, key []byte) error {
	var err error
	switch string(key) {
	case "binary":
		f.binary, err = s.str()
	case "uid":
		f.hasUID = true
		f.uid, err = s.number()
	case "ns":
		err = f.nsField(s)
	case "pod":
		err = s.object(func(k []byte) error {
			var err error
			switch string(k) {
			case "namespace":
				f.namespace, err = s.str()
			case "name":
				f.pod, err = s.str()
			case "workload":
				f.workload, err = s.str()
			case "container":
				err = s.object(func(k []byte) error {
					var err error
					switch string(k) {
					case "name":
						f.container, err = s.str()
					case "id":
						f.containerID, err = s.str()
					case "pid":
						f.containerPID, err = s.integer()
					case "image":
						err = s.object(func(k []byte) error {
							if string(k) != "name" {
								return s.skip()
							}
							var err error
							f.image, err = s.str()
							return err
						})
					default:
						err = s.skip()
					}
					return err
				})
			default:
				err = s.skip()
			}
			return err
		})
	default:
		err = s.skip()
	}
	return err
}

func (f *fields) observation() (Observation, error) {
	if f.summary {
		return f.summaryObservation()
	}
	if f.exec {
		return f.execObservation()
	}
	if f.listen {
		return f.listenObservation()
	}
	if !f.kprobe || f.function != "cap_capable" {
		return Observation{}, errNotCheck
	}
	if !f.hasCap {
		return Observation{}, errors.New("cap_capable event without args[].capability_arg")
	}
	if !f.hasRet {
		return Observation{}, errors.New("cap_capable event without return.int_arg")
	}
	if f.hasValue && (f.capValue < 0 || f.capValue > caps.MaxValue) {
		return Observation{}, fmt.Errorf("capability %d out of range (0 to %d)", f.capValue, caps.MaxValue)
	}
	o := Observation{
		Cap:           int(f.capValue),
		Granted:       f.ret == 0,
		Binary:        f.binary,
		OverrideCreds: f.override,
		Syscall:       f.syscall,
		CallSite:      f.callSite,
		CallSiteVia:   f.callSiteVia,
		NS:            f.hostNS,
		Net:           f.net(),
	}
	if !f.hasValue {
		if v, err := caps.Parse(f.capName); err == nil {
			o.Cap = v
		}
	}
	if f.auditKnown {
		o.Audit = NotAudited
		if f.audit {
			o.Audit = Audited
		}
	}
	if f.class != "" {
		c, ok := core.ParseClass(f.class)
		if !ok {
			return Observation{}, errors.New("unknown capsrec.class " + f.class)
		}
		o.Class, o.ClassKnown = c, true
	}
	switch {
	case f.hasEUID:
		o.EUID, o.EUIDKnown = uint32(f.euid), true
	case f.hasUID:
		o.EUID, o.EUIDKnown = uint32(f.uid), true
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
func (f *fields) eventTime() (time.Time, error) {
	if f.time == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, f.time)
	if err != nil {
		return time.Time{}, errors.New("time " + f.time + " is not RFC 3339")
	}
	return t, nil
}

// execObservation is a container's exec; a host program's is another hook's event.
func (f *fields) execObservation() (Observation, error) {
	if f.pod == "" && f.containerName() == "" {
		return Observation{}, errNotCheck
	}
	o := Observation{Exec: true, Binary: f.binary, Start: f.start}
	if !f.startKnown { // Tetragon's: the container's first process is its pid 1
		o.Start = f.containerPID == 1
	}
	o.Subject = Subject{Namespace: f.namespace, Pod: f.pod, Container: f.containerName(), Image: f.image}
	if f.workload != "" {
		o.Subject.Workload, o.Subject.WorkloadRule = f.workload, "Tetragon's pod.workload"
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
func (f *fields) containerName() string {
	if f.container != "" || f.containerID == "" {
		return f.container
	}
	return bareID(f.containerID)
}

// bareID is a container id without its runtime:// prefix.
func bareID(id string) string {
	if _, bare, ok := strings.Cut(id, "://"); ok {
		return bare
	}
	return id
}

// subject is the event's container, else its host binary.
func (f *fields) subject() Subject {
	if f.pod == "" && f.containerName() == "" {
		return Subject{Binary: hostBinary(f.binary)}
	}
	sub := Subject{Namespace: f.namespace, Pod: f.pod, Container: f.containerName(), Image: f.image}
	if f.workload != "" {
		sub.Workload, sub.WorkloadRule = f.workload, "Tetragon's pod.workload"
	}
	return sub
}

// net is what the event says of the network.
func (f *fields) net() NetObservation {
	n := NetObservation{Protocol: int32(f.protocol), PortStart: -1, HostNet: f.hostNS.Net, HostNetKnown: f.hostNetKnown}
	if f.port > 0 && f.port < 1<<16 {
		n.Port = uint16(f.port)
	}
	if f.hasPortStart && f.portStart >= 0 && f.portStart < 1<<16 {
		n.PortStart = int32(f.portStart)
	}
	if f.protocol < -1 || f.protocol >= 1<<16 {
		n.Protocol = -1
	}
	return n
}

// listenObservation is a low port listened on with no check.
func (f *fields) listenObservation() (Observation, error) {
	o := Observation{Listen: true, Cap: capNetBindService, Granted: true, Binary: f.binary, Net: f.net()}
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
func (f *fields) summaryObservation() (Observation, error) {
	start, err1 := time.Parse(time.RFC3339Nano, f.sumStart)
	end, err2 := time.Parse(time.RFC3339Nano, f.sumEnd)
	if err1 != nil || err2 != nil || f.sumLost < 0 {
		return Observation{}, errors.New("capsrec_summary without start_time, end_time (RFC 3339) and lost")
	}
	return Observation{session: &Recorded{Sessions: 1, Start: start, End: end, Lost: uint64(f.sumLost)}}, nil
}

func hostBinary(b string) string {
	if strings.TrimSpace(b) == "" {
		return "(unknown binary)"
	}
	return b
}
