package core

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// Process is what capsrec knows of a process (a thread group), kept from its
// exec, fork or a /proc read. A Process is never changed once made: an exec
// makes a new one, so writers may cache what they derive from it by pointer.
type Process struct {
	Tgid, Ptgid  uint32
	ExecID       string // base64 of "node:ktime:pid", as Tetragon makes it
	ParentExecID string
	Ktime        uint64 // boot-time ns of the exec (or fork, or start) ExecID is built from
	StartBoot    uint64 // task start_boottime of the leader, to notice pid reuse
	StartTime    time.Time
	UID, AUID    uint32
	Binary       string
	Arguments    string
	Cwd          string
	Flags        string
	// Runtime names the container runtime the process runs as ("runc"), "" for others.
	Runtime string
	// RealBinary is the executable's own path, whatever name it was run by (a
	// symlink, /dev/fd/N); "" when unknown. It ends in " (deleted)" for an
	// unlinked file (a memfd).
	RealBinary string
}

// HostNamespaces reads the namespace inums of PID 1, the host's, for is_host.
// Where PID 1's are hidden (no CAP_SYS_PTRACE) capsrec's own stand in: it runs on the host.
func HostNamespaces() [NSCount]uint32 {
	var ns [NSCount]uint32
	for i, name := range NSNames {
		link, err := os.Readlink("/proc/1/ns/" + name)
		if err != nil {
			link, err = os.Readlink("/proc/self/ns/" + name)
		}
		if err != nil {
			continue
		}
		// "uts:[4026531838]"
		if open := strings.IndexByte(link, '['); open >= 0 {
			v, _ := strconv.ParseUint(strings.TrimSuffix(link[open+1:], "]"), 10, 32)
			ns[i] = uint32(v)
		}
	}
	return ns
}
