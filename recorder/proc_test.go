package recorder

import (
	"encoding/base64"
	"os"
	"testing"
	"time"

	"github.com/capsrec/capsrec/bpf"
)

func setStr(dst []int8, s string) {
	for i := range len(s) {
		dst[i] = int8(s[i])
	}
}

func execEvent(tgid, ptgid uint32, ktime uint64, filename, argv, cwd string) *bpf.ExecEvent {
	ev := &bpf.ExecEvent{Ptgid: ptgid, StartBoottime: ktime}
	ev.Hdr.Tgid, ev.Hdr.Ktime = tgid, ktime
	setStr(ev.Filename[:], filename)
	setStr(ev.Args[:], argv)
	ev.ArgsLen = uint32(len(argv))
	ev.CwdOff = uint32(4095 - len(cwd))
	setStr(ev.Cwd[ev.CwdOff:], cwd)
	return ev
}

// A program run as /proc/self/exe (busybox's applets) is named by what it is.
func TestProcSelfExeIsNamed(t *testing.T) {
	pc := NewProcCache("node", Clock{}, time.Minute, 100)
	ev := execEvent(10, 1, 5, "/proc/self/exe", "sh\x00", "/")
	ev.ExeOff = uint32(4095 - len("/bin/busybox"))
	setStr(ev.ExePath[ev.ExeOff:], "/bin/busybox")
	if p := pc.OnExec(ev); p.Binary != "/bin/busybox" {
		t.Errorf("binary %q, want /bin/busybox", p.Binary)
	}
}

func TestExecForkExit(t *testing.T) {
	pc := NewProcCache("node", Clock{}, time.Minute, 100)
	now := time.Unix(1000, 0)
	pc.now = func() time.Time { return now }

	sh := pc.OnExec(execEvent(10, 1, 5, "/bin/sh", "sh\x00-c\x00x\x00", "/"))
	if sh.Arguments != "-c x" || sh.Flags != "execve rootcwd" || sh.Cwd != "/" {
		t.Errorf("sh = %+v", sh)
	}
	if id, _ := base64.StdEncoding.DecodeString(sh.ExecID); string(id) != "node:5:10" {
		t.Errorf("exec_id decodes to %q, want node:5:10", id)
	}
	fork := &bpf.ForkEvent{Ptgid: 10, StartBoottime: 7}
	fork.Hdr.Tgid, fork.Hdr.Ktime = 11, 7
	child := pc.OnFork(fork)
	if child.Binary != "/bin/sh" || child.ParentExecID != sh.ExecID || child.Flags != "clone rootcwd" {
		t.Errorf("forked child = %+v", child)
	}
	// A relative filename is resolved against the cwd; an exec after a fork is flagged clone.
	dm := pc.OnExec(execEvent(11, 10, 9, "./dmesg", "dmesg\x00", "/usr/bin"))
	if dm.Binary != "/usr/bin/dmesg" || dm.Arguments != "" || dm.Flags != "execve clone" || dm.ParentExecID != sh.ExecID {
		t.Errorf("dmesg = %+v", dm)
	}
	if got := pc.Lookup(11, 7); got != dm {
		t.Errorf("Lookup(11) = %+v", got)
	}

	pc.OnExit(11)
	pc.Sweep()
	if pc.Get(11) == nil {
		t.Error("an exited process went before its grace period")
	}
	now = now.Add(2 * time.Minute)
	pc.Sweep()
	if pc.Get(11) != nil || pc.Get(10) == nil {
		t.Errorf("after the grace period: 11 = %v, 10 = %v", pc.Get(11), pc.Get(10))
	}
}

func TestCacheIsBounded(t *testing.T) {
	pc := NewProcCache("n", Clock{}, time.Hour, 8)
	for i := range uint32(100) {
		pc.OnExec(execEvent(1000+i, 1, uint64(i), "/bin/x", "x\x00", "/"))
		if i%2 == 0 {
			pc.OnExit(1000 + i)
		}
	}
	if pc.Len() > 8 || len(pc.exitedAt) > 8 {
		t.Errorf("cache holds %d (%d exit times), bound is 8", pc.Len(), len(pc.exitedAt))
	}
}

func TestPidReuseIsNoticed(t *testing.T) {
	pc := NewProcCache("n", Clock{}, time.Hour, 8)
	// A pid far above pid_max cannot be in /proc, so the stale entry cannot be refreshed.
	pc.OnExec(execEvent(1<<30, 1, 1e9, "/bin/old", "old\x00", "/"))
	if p := pc.Lookup(1<<30, 5e9); p != nil {
		t.Errorf("a check of a new process borrowed the old one's identity: %+v", p)
	}
}

func TestScanProcFindsThisProcess(t *testing.T) {
	pc := NewProcCache("n", NewClock(), time.Hour, 1<<16)
	if err := pc.ScanProc(); err != nil {
		t.Fatal(err)
	}
	me := pc.Get(uint32(os.Getpid()))
	exe, _ := os.Executable()
	if me == nil || me.Binary != exe || me.Flags == "" || me.ParentExecID == "" {
		t.Fatalf("this process from /proc = %+v, want binary %s", me, exe)
	}
	if d := time.Since(me.StartTime); d < 0 || d > time.Hour {
		t.Errorf("start time %s is off", me.StartTime)
	}
}

// An exited parent stays while a child it forked lives (the child's checks
// name it), then for the grace period; churn leaves nothing behind.
func TestExitedParentKeptForItsChildren(t *testing.T) {
	pc := NewProcCache("n", Clock{}, 5*time.Second, 1<<10)
	now := time.Unix(1000, 0)
	pc.now = func() time.Time { return now }
	pc.OnExec(execEvent(10, 1, 5, "/bin/sh", "sh\x00", "/"))
	fork := &bpf.ForkEvent{Ptgid: 10, StartBoottime: 7}
	fork.Hdr.Tgid, fork.Hdr.Ktime = 11, 7
	pc.OnFork(fork)
	pc.OnExit(10)
	now = now.Add(time.Minute)
	pc.Sweep()
	if pc.Get(10) == nil {
		t.Fatal("a parent went while its child lives")
	}
	pc.OnExit(11)
	now = now.Add(time.Minute)
	pc.Sweep() // the child goes; the parent's grace starts again
	pc.Sweep()
	now = now.Add(time.Minute)
	pc.Sweep()
	if pc.Len() != 0 || len(pc.kids) != 0 || len(pc.forkedBy) != 0 || len(pc.exitedAt) != 0 {
		t.Errorf("left: %d processes, %v kids, %v forked, %d exit times", pc.Len(), pc.kids, pc.forkedBy, len(pc.exitedAt))
	}

	// 10,000 short-lived processes, swept as the recorder does: bounded by
	// what ran in the last grace period, nothing evicted.
	for i := range uint32(10_000) {
		f := &bpf.ForkEvent{Ptgid: 1, StartBoottime: uint64(i)}
		f.Hdr.Tgid = 100 + i
		pc.OnFork(f)
		pc.OnExec(execEvent(100+i, 1, uint64(i), "/bin/true", "true\x00", "/"))
		pc.OnExit(100 + i)
		if i%100 == 0 {
			now = now.Add(time.Second)
			pc.Sweep()
		}
	}
	if pc.Len() > 600 || len(pc.exitedAt) > 600 || pc.Evicted != 0 {
		t.Errorf("after churn: %d processes held (%d exit times), %d evicted", pc.Len(), len(pc.exitedAt), pc.Evicted)
	}
}
