package testutil

import (
	"time"

	"github.com/capsrec/capsrec/core"
)

// HostNS are the namespace inums the sample checks take for the host's.
var HostNS = [core.NSCount]uint32{4026531838, 4026531839, 4026531832, 4026531836, 4026531836, 4026531833, 4026531834, 4026531834, 4026531835, 4026531837}

// SampleChecks are the seed's dmesg denial on the host and in a pod, and a granted
// noaudit check under override_creds.
func SampleChecks() []*core.Check {
	parent := &core.Process{Tgid: 73850, ExecID: "cGFyZW50", Binary: "/bin/bash", Cwd: "/", Flags: "execve rootcwd clone",
		StartTime: time.Date(2023, 7, 6, 10, 13, 33, 178160018, time.UTC), AUID: 4294967295, UID: 0}
	dmesg := &core.Process{Tgid: 73860, Ptgid: 73850, ExecID: "ZG1lc2c=", ParentExecID: "cGFyZW50", Binary: "/bin/dmesg", Arguments: `-r "quoted"`,
		Cwd: "/", Flags: "execve rootcwd clone", StartTime: time.Date(2023, 7, 6, 10, 13, 33, 834390020, time.UTC), AUID: 4294967295}
	denied := &core.Check{
		Time: time.Date(2023, 7, 6, 10, 13, 33, 834882128, time.UTC), Process: dmesg, Parent: parent,
		Tid: 73860, NsPid: 171, UID: 65534, GID: 65534, EUID: 65534, AUID: 4294967295, Comm: "dmesg",
		Cap: 34, Ret: -1, Method: core.MethodTracepoint, Syscall: 103, CallSite: "do_syslog",
		TargetNS: core.UserNS{Inum: 4026531837}, NS: HostNS, CgroupID: 1,
	}
	inPod := *denied
	inPod.Container = &core.Container{ID: "cfb961400ff25811d22d139a10f6a62efef53c2ecc11af47bc911a7f9a2ac1f7", Runtime: "containerd",
		Name: "spaceship", ImageName: "docker.io/tgraf/netperf:latest", ImageID: "docker.io/tgraf/netperf@sha256:8e86",
		StartTime: time.Date(2023, 7, 6, 8, 7, 30, 0, time.UTC),
		Pod:       &core.Pod{Namespace: "default", Name: "xwing", Labels: map[string]string{"org": "alliance", "class": "xwing"}}}
	inPod.NS[core.NSPid] = 4026534732
	granted := *denied
	granted.Ret, granted.Cap, granted.Syscall = 0, 0, 92
	granted.Method, granted.AuditKnown, granted.Audit, granted.OverrideCreds = core.MethodFexit, true, false, true
	granted.Class, granted.CallSite = core.ClassProbe, "ovl_copy_up_one"
	runtime := *denied
	runtime.Ret, runtime.Cap, runtime.Syscall, runtime.Class, runtime.CallSite = 0, 8, 157, core.ClassRuntime, "cap_prctl_drop"
	runtime.Process = &core.Process{Tgid: 73870, Ptgid: 73850, ExecID: "cnVuYw==", Binary: "/usr/sbin/runc", Runtime: "runc", Arguments: "init",
		Cwd: "/", Flags: "execve rootcwd", StartTime: time.Date(2023, 7, 6, 10, 13, 33, 834390020, time.UTC), AUID: 4294967295}
	granted.CapEffective, granted.CapPermitted = 1<<0|1<<21, 1<<0|1<<21
	return []*core.Check{denied, &inPod, &granted, &runtime}
}
