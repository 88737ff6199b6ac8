package tetragon

// HostNS says which of an event's namespaces are the host's.
type HostNS struct {
	Known               bool // the event said (capsrec's process.ns)
	Net, PID, IPC, User bool
}

// Event is what capsrec reads of a capsrec or Tetragon event (one JSON
// value): a process_kprobe (Kprobe), a process_exec (Exec), a
// capsrec_listen (Listen) or a capsrec_summary (Summary); Has* say which
// optional fields it had.
type Event struct {
	Kprobe                           bool
	Function                         string
	Binary                           string
	Namespace, Pod, Container, Image string
	Workload                         string
	CapValue                         int64
	HasValue                         bool
	CapName                          string
	HasCap, HasRet                   bool
	Ret                              int64
	Audit, AuditKnown, Override      bool
	Class                            string
	EUID, UID                        int64
	HasEUID, HasUID                  bool
	Syscall                          string
	Time                             string
	// A process_exec event: a program's exec (in a container); start from
	// capsrec.container_start (StartKnown), or for Tetragon's the
	// container's pid 1 (ContainerPID).
	Exec, StartKnown, Start bool
	ContainerPID            int64
	ContainerID             string // runtime://ID, of process.pod.container or capsrec.container
	// The network facts (profile/alternatives.go): call site, bind(2)'s port or
	// socket(2)'s protocol, the namespace's sysctl, whether it is the host's;
	// Listen: a capsrec_listen event.
	CallSite, CallSiteVia string
	HostNS                HostNS
	Port, Protocol        int64
	PortStart             int64
	HasPortStart          bool
	HostNetKnown          bool
	Listen                bool
	// A capsrec_summary event: what a recording says of itself.
	Summary          bool
	SumStart, SumEnd string
	SumLost          int64
}

// ParseEvent reads one JSON value.
func ParseEvent(line []byte) (Event, error) {
	s := &scanner{b: line}
	f := Event{Protocol: -1}
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "process_kprobe":
			f.Kprobe = true
			return s.object(func(k []byte) error { return f.kprobeField(s, k) })
		case "process_exec":
			f.Exec = true
			return s.object(func(k []byte) error { return f.execField(s, k) })
		case "capsrec_listen":
			f.Listen = true
			return s.object(func(k []byte) error { return f.listenField(s, k) })
		case "capsrec_summary":
			f.Summary = true
			return s.object(func(k []byte) error { return f.summaryField(s, k) })
		case "time":
			var err error
			f.Time, err = s.str()
			return err
		}
		return s.skip()
	})
	if err != nil {
		return Event{}, err
	}
	if s.peek() != 0 {
		return Event{}, s.fail("data after the event")
	}
	return f, nil
}

func (f *Event) execField(s *scanner, key []byte) error {
	switch string(key) {
	case "process":
		return s.object(func(k []byte) error { return f.processField(s, k) })
	case "capsrec":
		return s.object(func(k []byte) error {
			switch string(k) {
			case "container_start":
				var err error
				f.StartKnown = true
				f.Start, err = s.boolean()
				return err
			case "container":
				return f.bareContainer(s)
			}
			return s.skip()
		})
	}
	return s.skip()
}

func (f *Event) listenField(s *scanner, key []byte) error {
	switch string(key) {
	case "process":
		return s.object(func(k []byte) error { return f.processField(s, k) })
	case "capsrec":
		return s.object(func(k []byte) error {
			var err error
			switch string(k) {
			case "port":
				f.Port, err = s.integer()
			case "ip_unprivileged_port_start":
				f.HasPortStart = true
				f.PortStart, err = s.integer()
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
func (f *Event) bareContainer(s *scanner) error {
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
	if err != nil || f.Pod != "" || f.Container != "" {
		return err
	}
	f.Container, f.ContainerID, f.Image = name, id, image
	return nil
}

// netField reads capsrec's network facts of a check.
func (f *Event) netField(s *scanner, key []byte) (bool, error) {
	var err error
	switch string(key) {
	case "call_site":
		f.CallSite, err = s.str()
	case "call_site_via":
		f.CallSiteVia, err = s.str()
	case "bind_port":
		f.Port, err = s.integer()
	case "socket_protocol":
		f.Protocol, err = s.integer()
	case "netns_sysctls":
		err = s.object(func(k []byte) error {
			if string(k) != "ip_unprivileged_port_start" {
				return s.skip()
			}
			var err error
			f.HasPortStart = true
			f.PortStart, err = s.integer()
			return err
		})
	default:
		return false, nil
	}
	return true, err
}

// nsField reads which of the process's namespaces are the host's.
func (f *Event) nsField(s *scanner) error {
	return s.object(func(k []byte) error {
		var host *bool
		switch string(k) {
		case "net":
			f.HostNetKnown = true // is_host is written only when true
			host = &f.HostNS.Net
		case "pid":
			host = &f.HostNS.PID
		case "ipc":
			host = &f.HostNS.IPC
		case "user":
			host = &f.HostNS.User
		default:
			return s.skip()
		}
		user := host == &f.HostNS.User
		return s.object(func(k []byte) error {
			var err error
			switch string(k) {
			case "is_host":
				*host, err = s.boolean()
			case "inum":
				var inum int64
				inum, err = s.integer()
				f.HostNS.Known = f.HostNS.Known || (user && inum > 0) // what readiness rests on
			default:
				err = s.skip()
			}
			return err
		})
	})
}

func (f *Event) summaryField(s *scanner, key []byte) error {
	var err error
	switch string(key) {
	case "start_time":
		f.SumStart, err = s.str()
	case "end_time":
		f.SumEnd, err = s.str()
	case "lost":
		f.SumLost, err = s.integer()
	default:
		err = s.skip()
	}
	return err
}

func (f *Event) kprobeField(s *scanner, key []byte) error {
	var err error
	switch string(key) {
	case "function_name":
		f.Function, err = s.str()
	case "process":
		err = s.object(func(k []byte) error { return f.processField(s, k) })
	case "args":
		err = s.array(func() error {
			return s.object(func(k []byte) error {
				if string(k) != "capability_arg" {
					return s.skip()
				}
				f.HasCap = true
				return s.object(func(k []byte) error {
					var err error
					switch string(k) {
					case "value":
						f.HasValue = true
						f.CapValue, err = s.integer()
					case "name":
						f.CapName, err = s.str()
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
			f.HasRet = true
			var err error
			f.Ret, err = s.number()
			return err
		})
	case "capsrec":
		err = s.object(func(k []byte) error {
			var err error
			switch string(k) {
			case "audit":
				f.AuditKnown = true
				f.Audit, err = s.boolean()
			case "override_creds":
				f.Override, err = s.boolean()
			case "class":
				f.Class, err = s.str()
			case "euid":
				f.HasEUID = true
				f.EUID, err = s.number()
			case "syscall_name":
				f.Syscall, err = s.str()
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

func (f *Event) processField(s *scanner, key []byte) error {
	var err error
	switch string(key) {
	case "binary":
		f.Binary, err = s.str()
	case "uid":
		f.HasUID = true
		f.UID, err = s.number()
	case "ns":
		err = f.nsField(s)
	case "pod":
		err = s.object(func(k []byte) error {
			var err error
			switch string(k) {
			case "namespace":
				f.Namespace, err = s.str()
			case "name":
				f.Pod, err = s.str()
			case "workload":
				f.Workload, err = s.str()
			case "container":
				err = s.object(func(k []byte) error {
					var err error
					switch string(k) {
					case "name":
						f.Container, err = s.str()
					case "id":
						f.ContainerID, err = s.str()
					case "pid":
						f.ContainerPID, err = s.integer()
					case "image":
						err = s.object(func(k []byte) error {
							if string(k) != "name" {
								return s.skip()
							}
							var err error
							f.Image, err = s.str()
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
