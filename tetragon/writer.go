package tetragon

import (
	"io"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/caps"
	"github.com/capsrec/capsrec/internal/syscalls"
	"github.com/capsrec/capsrec/output"
)

// PolicyName is what capsrec puts in Tetragon's policy_name.
const PolicyName = "capsrec"

// Writer writes one Tetragon process_kprobe event per line.
type Writer struct {
	out    *output.Lines
	hostNS [len(core.NSNames)]uint32
	// The parts of a process object that never change, by Process (immutable).
	frags map[*core.Process][]byte
	sets  map[uint64][]byte
	// The last namespace block and the last second written: consecutive checks mostly share them.
	lastNS     [len(core.NSNames)]uint32
	lastNSJSON []byte
	clock      secondCache
	// What consecutive checks of one thread share, rendered once: the capability
	// sets, and the context fields that close the capsrec object.
	lastSets     [3]uint64
	lastSetsJSON []byte
	lastTail     contextTail
	lastTailJSON []byte
	lastCall     checkCall
	lastCallJSON []byte
	// A container's block, before and after its pid, by Container (immutable).
	ctrs map[*core.Container][3][]byte
	// `,"node_name":"NODE","time":`
	nodeTime []byte
}

// contextTail is what the end of the capsrec object says of a check's thread.
type contextTail struct {
	comm, cgroupName string
	euid, gid        uint32
	cgroupID         uint64
	// executable is the process's executable as the kernel found it, when the
	// binary it was run by says otherwise (a symlink, a hard link's other name,
	// /dev/fd/N, a memfd or a deleted file: "... (deleted)").
	executable string
}

// maxCachedProcesses bounds the fragment cache; past it the cache starts over.
const maxCachedProcesses = 8192

// NewWriter writes to w; hostNS are the host's namespace inums, for is_host.
func NewWriter(w io.Writer, node string, hostNS [len(core.NSNames)]uint32) *Writer {
	nodeTime := appendString([]byte(`}},"node_name":`), node)
	return &Writer{out: output.NewLines(w), hostNS: hostNS, nodeTime: append(nodeTime, `,"time":`...),
		frags: map[*core.Process][]byte{}, sets: map[uint64][]byte{}, ctrs: map[*core.Container][3][]byte{}}
}

// Write encodes one check.
func (j *Writer) Write(c *core.Check) error {
	return j.out.Encode(j, c)
}

// Flush writes out what is buffered.
func (j *Writer) Flush() error { return j.out.Flush() }

// Append encodes c without a newline.
func (j *Writer) Append(b []byte, c *core.Check) []byte {
	if c.Exec {
		return j.appendExec(b, c)
	}
	if c.Listen {
		return j.appendListen(b, c)
	}
	b = append(b, `{"process_kprobe":{"process":{`...)
	b = append(b, j.fragment(c.Process)...)
	b = appendUint(b, true, "uid", uint64(c.UID))
	b = appendUint(b, true, "tid", uint64(c.Tid))
	b = j.appendContainer(b, c.Container, c.NsPid)
	if c.NS != j.lastNS || j.lastNSJSON == nil {
		j.lastNS = c.NS
		j.lastNSJSON = j.appendNamespaces(j.lastNSJSON[:0], &c.NS)
	}
	b = append(b, j.lastNSJSON...)
	if sets := [3]uint64{c.CapPermitted, c.CapEffective, c.CapInheritable}; sets != j.lastSets || j.lastSetsJSON == nil {
		j.lastSets = sets
		j.lastSetsJSON = j.appendSets(j.lastSetsJSON[:0], c)
	}
	b = append(b, j.lastSetsJSON...)
	b = append(b, '}')
	b = j.appendParent(b, c)
	// From the arguments to the end of capsrec's per-check facts: consecutive
	// checks from one place say the same, rendered once.
	if call := (checkCall{c.TargetNS, c.Cap, c.Ret, c.Method, c.Syscall, c.OverrideCreds, c.Class, c.CallSite, c.CallSiteVia,
		c.SiteProbe, c.AuditKnown, c.Audit, c.InSetID, c.NSAnswer, c.CredUserNS, c.NetArg, netSysctls(c)}); call != j.lastCall || j.lastCallJSON == nil {
		j.lastCall = call
		j.lastCallJSON = j.appendCall(j.lastCallJSON[:0], &call)
	}
	b = append(b, j.lastCallJSON...)
	if tail := (contextTail{c.Comm, c.CgroupName, c.EUID, c.GID, c.CgroupID, executable(c.Process)}); tail != j.lastTail || j.lastTailJSON == nil {
		j.lastTail = tail
		j.lastTailJSON = appendContextTail(j.lastTailJSON[:0], &tail)
	}
	b = append(b, j.lastTailJSON...)
	b = j.appendBareContainer(b, c.Container)
	b = append(b, j.nodeTime...)
	b = j.clock.appendTimestamp(b, c.Time)
	return append(b, '}')
}

// appendParent writes the parent object, when the parent is known.
func (j *Writer) appendParent(b []byte, c *core.Check) []byte {
	p := c.Parent
	if p == nil {
		return b
	}
	b = append(b, `,"parent":{`...)
	b = append(b, j.fragment(p)...)
	b = appendUint(b, true, "uid", uint64(p.UID))
	b = appendUint(b, true, "tid", uint64(p.Tgid))
	b = j.appendContainer(b, c.Container, 0)
	return append(b, '}')
}

// appendExec writes Tetragon's process_exec event: a program's exec in a
// container; capsrec.container_start when it was the container's start.
func (j *Writer) appendExec(b []byte, c *core.Check) []byte {
	b = append(b, `{"process_exec":{"process":{`...)
	b = append(b, j.fragment(c.Process)...)
	b = appendUint(b, true, "uid", uint64(c.UID))
	b = appendUint(b, true, "tid", uint64(c.Tid))
	b = j.appendContainer(b, c.Container, c.NsPid)
	b = append(b, '}')
	b = j.appendParent(b, c)
	b = append(b, `,"capsrec":{"runtime_handoff":`...)
	b = strconv.AppendBool(b, c.Handoff)
	b = append(b, `,"container_start":`...)
	b = strconv.AppendBool(b, c.Start)
	b = j.appendBareContainer(b, c.Container)
	b = append(b, '}')
	b = append(b, j.nodeTime[1:]...) // one object to close, not two
	b = j.clock.appendTimestamp(b, c.Time)
	return append(b, '}')
}

// appendListen writes capsrec_listen: a socket listening on a port below
// 1024 that needed no CAP_NET_BIND_SERVICE check, and the sysctl that let it.
func (j *Writer) appendListen(b []byte, c *core.Check) []byte {
	b = append(b, `{"capsrec_listen":{"process":{`...)
	b = append(b, j.fragment(c.Process)...)
	b = appendUint(b, true, "uid", uint64(c.UID))
	b = appendUint(b, true, "tid", uint64(c.Tid))
	b = j.appendContainer(b, c.Container, c.NsPid)
	b = j.appendNamespaces(b, &c.NS)
	b = append(b, '}')
	b = j.appendParent(b, c)
	b = append(b, `,"capsrec":{`...)
	b = appendUint(b, false, "port", uint64(c.BindPort()))
	b = appendInt(b, true, "ip_unprivileged_port_start", int64(c.NetSysctls.PortStart))
	b = appendStr(b, true, "comm", c.Comm)
	b = appendUint(b, true, "euid", uint64(c.EUID))
	b = appendUint(b, true, "cgroup_id", c.CgroupID)
	b = j.appendBareContainer(b, c.Container)
	b = append(b, '}')
	b = append(b, j.nodeTime[1:]...) // one object to close, not two
	b = j.clock.appendTimestamp(b, c.Time)
	return append(b, '}')
}

// netSysctls are a check's network namespace sysctls where they matter: its
// capability has a capability-free alternative they decide.
func netSysctls(c *core.Check) core.NetSysctls {
	if c.Cap != capNetBindService && c.Cap != capNetRaw {
		return core.NetSysctls{PortStart: -1}
	}
	return c.NetSysctls
}

const (
	capNetBindService = 10
	capNetRaw         = 13
)

// Summary is what a recording says of itself as its last line
// (capsrec_summary), so that a profile of the stream knows its window and
// whether it lost anything.
type Summary struct {
	Start, End time.Time
	// Seen checks; Lost records (checks, contexts, process records) the
	// ring had no room for or user space could not join.
	Seen, Lost uint64
}

// WriteSummary writes the summary line.
func (j *Writer) WriteSummary(s Summary) error {
	b := []byte(`{"capsrec_summary":{"start_time":`)
	b = appendTimestamp(b, s.Start)
	b = appendKey(b, true, "end_time")
	b = appendTimestamp(b, s.End)
	b = appendUint(b, true, "seen", s.Seen)
	b = appendUint(b, true, "lost", s.Lost)
	b = append(b, j.nodeTime[1:len(j.nodeTime)-len(`,"time":`)]...)
	return j.out.WriteLine(append(b, '}'))
}

// checkCall is what a check says of the call itself: cap_capable's arguments
// and verdict, and where it came from.
type checkCall struct {
	targetNS                   core.UserNS
	cap, ret                   int32
	method                     core.Method
	syscall                    int32
	overrideCreds              bool
	class                      core.Class
	callSite, callSiteVia      string
	siteProbe                  bool
	auditKnown, audit, insetid bool
	nsAnswer                   uint8
	credUserNS                 uint32
	netArg                     uint16
	netSysctls                 core.NetSysctls
}

func (j *Writer) appendCall(b []byte, c *checkCall) []byte {
	b = append(b, `,"function_name":"cap_capable","args":[{"user_ns_arg":{`...)
	b = appendUint(b, false, "level", uint64(c.targetNS.Level))
	b = appendUint(b, true, "uid", uint64(c.targetNS.UID))
	b = appendUint(b, true, "gid", uint64(c.targetNS.GID))
	b = append(b, `,"ns":`...)
	b = j.appendNS(b, c.targetNS.Inum, core.NSUser)
	b = append(b, `}},{"capability_arg":{`...)
	b = appendInt(b, false, "value", int64(c.cap))
	b = appendStr(b, true, "name", caps.Name(int(c.cap)))
	b = append(b, `}}],"return":{`...)
	b = appendInt(b, false, "int_arg", int64(c.ret))
	b = append(b, `},"action":"KPROBE_ACTION_POST","policy_name":"`+PolicyName+`","capsrec":{`...)
	b = appendStr(b, false, "attach", string(c.method))
	b = appendInt(b, true, "syscall", int64(c.syscall))
	if name := syscalls.Name(c.syscall); name != "" {
		b = appendStr(b, true, "syscall_name", name)
	}
	b = appendBool(b, true, "override_creds", c.overrideCreds)
	b = appendStr(b, true, "class", c.class.String())
	if c.class == core.ClassUserNS { // which rule, and the namespace of the credentials checked
		b = appendStr(b, true, "user_ns_rule", core.AnswerNames[min(int(c.nsAnswer), len(core.AnswerNames)-1)])
		b = appendUint(b, true, "cred_user_ns", uint64(c.credUserNS))
	}
	if c.callSite != "" {
		b = appendStr(b, true, "call_site", c.callSite)
		b = appendBool(b, true, "call_site_probe", c.siteProbe)
		if c.callSiteVia != "" {
			b = appendStr(b, true, "call_site_via", c.callSiteVia)
		}
	}
	if c.auditKnown {
		b = appendBool(b, true, "audit", c.audit)
		b = appendBool(b, true, "insetid", c.insetid)
	}
	switch {
	case c.netArg == 0:
	case c.cap == capNetBindService:
		b = appendUint(b, true, "bind_port", uint64(c.netArg))
	case c.cap == capNetRaw:
		b = appendInt(b, true, "socket_protocol", int64(c.netArg)-1)
	}
	if n := c.netSysctls; n.Known() {
		b = append(b, `,"netns_sysctls":{`...)
		b = appendInt(b, false, "ip_unprivileged_port_start", int64(n.PortStart))
		b = appendStr(b, true, "ping_group_range", strconv.FormatUint(uint64(n.PingGroup[0]), 10)+" "+strconv.FormatUint(uint64(n.PingGroup[1]), 10))
		b = append(b, '}')
	}
	return b
}

func appendContextTail(b []byte, t *contextTail) []byte {
	b = appendStr(b, true, "comm", t.comm)
	b = appendUint(b, true, "euid", uint64(t.euid))
	b = appendUint(b, true, "gid", uint64(t.gid))
	b = appendUint(b, true, "cgroup_id", t.cgroupID)
	b = appendStr(b, true, "cgroup_name", t.cgroupName)
	if t.executable != "" {
		b = appendStr(b, true, "executable", t.executable)
	}
	return b
}

// executable is p's real executable when its binary names another.
func executable(p *core.Process) string {
	if p == nil || p.RealBinary == p.Binary {
		return ""
	}
	return p.RealBinary
}

// appendSets writes the process's cap object, left out when every set is empty.
func (j *Writer) appendSets(b []byte, c *core.Check) []byte {
	if c.CapPermitted|c.CapEffective|c.CapInheritable == 0 {
		return b
	}
	b = append(b, `,"cap":{`...)
	b = j.appendSet(b, false, "permitted", c.CapPermitted)
	b = j.appendSet(b, c.CapPermitted != 0, "effective", c.CapEffective)
	b = j.appendSet(b, c.CapPermitted|c.CapEffective != 0, "inheritable", c.CapInheritable)
	return append(b, '}')
}

func (j *Writer) fragment(p *core.Process) []byte {
	if f, ok := j.frags[p]; ok {
		return f
	}
	if len(j.frags) >= maxCachedProcesses {
		clear(j.frags)
	}
	var b []byte
	b = appendStr(b, false, "exec_id", p.ExecID)
	b = appendUint(b, true, "pid", uint64(p.Tgid))
	if p.Cwd != "" {
		b = appendStr(b, true, "cwd", p.Cwd)
	}
	if p.Binary != "" {
		b = appendStr(b, true, "binary", p.Binary)
	}
	if p.Arguments != "" {
		b = appendStr(b, true, "arguments", p.Arguments)
	}
	if p.Flags != "" {
		b = appendStr(b, true, "flags", p.Flags)
	}
	b = appendKey(b, true, "start_time")
	b = appendTimestamp(b, p.StartTime)
	b = appendUint(b, true, "auid", uint64(p.AUID))
	if p.ParentExecID != "" {
		b = appendStr(b, true, "parent_exec_id", p.ParentExecID)
	}
	j.frags[p] = b
	return b
}

func (j *Writer) appendNS(b []byte, inum uint32, idx int) []byte {
	b = append(b, `{"inum":`...)
	b = strconv.AppendUint(b, uint64(inum), 10)
	if inum != 0 && inum == j.hostNS[idx] {
		b = append(b, `,"is_host":true`...)
	}
	return append(b, '}')
}

func (j *Writer) appendNamespaces(b []byte, ns *[len(core.NSNames)]uint32) []byte {
	b = append(b, `,"ns":{`...)
	for i, name := range core.NSNames {
		b = appendKey(b, i > 0, name)
		b = j.appendNS(b, ns[i], i)
	}
	return append(b, '}')
}

// appendSet writes a capability set as Tetragon does: names, omitted when empty.
func (j *Writer) appendSet(b []byte, comma bool, key string, set uint64) []byte {
	if set == 0 {
		return b
	}
	names, ok := j.sets[set]
	if !ok {
		names = append(names, '[')
		for i, n := range caps.Set(set).Names() {
			if i > 0 {
				names = append(names, ',')
			}
			names = appendString(names, n)
		}
		names = append(names, ']')
		if len(j.sets) < 1024 {
			j.sets[set] = names
		}
	}
	return append(appendKey(b, comma, key), names...)
}

// appendContainer writes Tetragon's pod and docker fields; nsPid 0 leaves out
// container.pid. All but the pid is rendered once per container.
func (j *Writer) appendContainer(b []byte, ctr *core.Container, nsPid uint32) []byte {
	if ctr == nil {
		return b
	}
	parts := j.container(ctr)
	b = append(b, parts[0]...)
	if nsPid != 0 && ctr.Pod != nil {
		b = appendUint(b, true, "pid", uint64(nsPid))
	}
	return append(b, parts[1]...)
}

// appendBareContainer writes capsrec.container for a container the runtime
// described in no pod (docker run, ctr run): Tetragon's process.docker holds
// 31 characters of its id, and no name or image. One only a cgroup's name
// calls a container (a pod's sandbox, one gone, anyone's cgroup) has none.
func (j *Writer) appendBareContainer(b []byte, ctr *core.Container) []byte {
	if ctr == nil || ctr.Pod != nil || ctr.Undescribed {
		return b
	}
	return append(b, j.container(ctr)[2]...)
}

// container is ctr's blocks, rendered once.
func (j *Writer) container(ctr *core.Container) [3][]byte {
	parts, ok := j.ctrs[ctr]
	if !ok {
		if len(j.ctrs) >= maxCachedContainers {
			clear(j.ctrs)
		}
		parts = renderContainer(ctr)
		j.ctrs[ctr] = parts
	}
	return parts
}

// maxCachedContainers bounds the container blocks kept.
const maxCachedContainers = 1024

// renderContainer is a container's blocks: the process's, before and after
// container.pid, and capsrec.container for one in no pod.
func renderContainer(ctr *core.Container) (parts [3][]byte) {
	var b []byte
	if pod := ctr.Pod; pod != nil {
		b = append(b, `,"pod":{`...)
		b = appendStr(b, false, "namespace", pod.Namespace)
		b = appendStr(b, true, "name", pod.Name)
		if pod.UID != "" {
			b = appendStr(b, true, "uid", pod.UID)
		}
		b = append(b, `,"container":{`...)
		b = appendStr(b, false, "id", ctr.Runtime+"://"+ctr.ID)
		b = appendStr(b, true, "name", ctr.Name)
		b = append(b, `,"image":{`...)
		b = appendStr(b, false, "id", ctr.ImageID)
		b = appendStr(b, true, "name", ctr.ImageName)
		b = append(b, '}')
		if !ctr.StartTime.IsZero() {
			b = appendKey(b, true, "start_time")
			b = appendTimestamp(b, ctr.StartTime)
		}
		parts[0] = b
		b = []byte{'}'}
		if len(pod.Labels) > 0 {
			b = append(b, `,"pod_labels":{`...)
			for i, k := range sortedKeys(pod.Labels) {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, k)
				b = append(b, ':')
				b = appendString(b, pod.Labels[k])
			}
			b = append(b, '}')
		}
		if pod.Workload != "" {
			b = appendStr(b, true, "workload", pod.Workload)
			b = appendStr(b, true, "workload_kind", pod.WorkloadKind)
		}
		b = append(b, '}')
	}
	id := ctr.ID
	if len(id) > 31 {
		id = id[:31]
	}
	parts[1] = appendStr(b, true, "docker", id)
	if ctr.Pod == nil && !ctr.Undescribed {
		b = append([]byte(nil), `,"container":{`...)
		b = appendStr(b, false, "id", ctr.Runtime+"://"+ctr.ID)
		b = appendStr(b, true, "name", ctr.Name)
		b = appendStr(b, true, "image", ctr.ImageName)
		parts[2] = append(b, '}')
	}
	return parts
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
