// Package procfs reads what capsrec needs of /proc.
package procfs

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// Stat is what capsrec reads of /proc/PID/stat.
type Stat struct {
	PPid uint32
	// StartTicks is when the process started, in clock ticks since boot.
	StartTicks uint64
}

// ReadStat reads dir/stat (dir: /proc/PID); false when the process is gone or
// the file does not parse.
func ReadStat(dir string) (Stat, bool) {
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return Stat{}, false
	}
	return parseStat(b)
}

func parseStat(b []byte) (Stat, bool) {
	// comm may hold spaces and parentheses: the fields start after the last ')'.
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return Stat{}, false
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 20 {
		return Stat{}, false
	}
	ppid, err1 := strconv.ParseUint(f[1], 10, 32)
	ticks, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return Stat{}, false
	}
	return Stat{PPid: uint32(ppid), StartTicks: ticks}, true
}

// statusField is the value of field ("Uid", "CapInh") in a /proc status
// file; false when the file cannot be read or lacks it.
func statusField(path, field string) (string, bool) {
	status, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(rest), true
		}
	}
	return "", false
}

// RealUID is the real uid of dir's process (dir: /proc/PID), from its status;
// false when it cannot be read.
func RealUID(dir string) (uint32, bool) {
	v, ok := statusField(dir+"/status", "Uid")
	if f := strings.Fields(v); ok && len(f) > 0 {
		if uid, err := strconv.ParseUint(f[0], 10, 32); err == nil {
			return uint32(uid), true
		}
	}
	return 0, false
}

// CapInh is the inheritable set of thread tid of process tgid, from its
// status; false when the thread is gone.
func CapInh(tgid, tid uint32) (uint64, bool) {
	v, ok := statusField("/proc/"+strconv.FormatUint(uint64(tgid), 10)+"/task/"+strconv.FormatUint(uint64(tid), 10)+"/status", "CapInh")
	if !ok {
		return 0, false
	}
	inh, err := strconv.ParseUint(v, 16, 64)
	return inh, err == nil
}
