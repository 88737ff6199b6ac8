// Package caps names the Linux capabilities and parses the ways users write them.
package caps

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Capability is one Linux capability, as include/uapi/linux/capability.h numbers it.
type Capability struct {
	Value   int
	Name    string // CAP_SYSLOG
	Meaning string
}

// All lists every capability the kernel knows, indexed by value.
var All = []Capability{
	{0, "CAP_CHOWN", "change the owner and group of any file"},
	{1, "CAP_DAC_OVERRIDE", "bypass file read, write and execute permission checks"},
	{2, "CAP_DAC_READ_SEARCH", "bypass file read and directory search permission checks"},
	{3, "CAP_FOWNER", "bypass checks that the caller owns the file (chmod, utime, ...)"},
	{4, "CAP_FSETID", "keep set-user-ID and set-group-ID bits when a file is modified"},
	{5, "CAP_KILL", "send signals to processes of other users"},
	{6, "CAP_SETGID", "change group IDs and supplementary groups"},
	{7, "CAP_SETUID", "change user IDs"},
	{8, "CAP_SETPCAP", "change the capability bounding set and other processes' capabilities"},
	{9, "CAP_LINUX_IMMUTABLE", "set the immutable and append-only file attributes"},
	{10, "CAP_NET_BIND_SERVICE", "bind to ports below 1024"},
	{11, "CAP_NET_BROADCAST", "broadcast and listen to multicast (unused by the kernel)"},
	{12, "CAP_NET_ADMIN", "configure interfaces, routes, firewall and other network settings"},
	{13, "CAP_NET_RAW", "use raw and packet sockets (ping, tcpdump)"},
	{14, "CAP_IPC_LOCK", "lock memory (mlock, mlockall, huge pages)"},
	{15, "CAP_IPC_OWNER", "bypass permission checks on System V IPC objects"},
	{16, "CAP_SYS_MODULE", "load and unload kernel modules"},
	{17, "CAP_SYS_RAWIO", "raw I/O: ioperm, iopl, /dev/mem, FIBMAP"},
	{18, "CAP_SYS_CHROOT", "call chroot and change mount namespaces with setns"},
	{19, "CAP_SYS_PTRACE", "trace and inspect any process (ptrace, process_vm_readv)"},
	{20, "CAP_SYS_PACCT", "turn process accounting on and off"},
	{21, "CAP_SYS_ADMIN", "mount, sethostname, bpf, and a long list of administration"},
	{22, "CAP_SYS_BOOT", "reboot and load a new kernel with kexec"},
	{23, "CAP_SYS_NICE", "raise priority, set real-time scheduling and CPU affinity of others"},
	{24, "CAP_SYS_RESOURCE", "override resource limits and quotas"},
	{25, "CAP_SYS_TIME", "set the system clock and the real-time clock"},
	{26, "CAP_SYS_TTY_CONFIG", "configure and vhangup terminals"},
	{27, "CAP_MKNOD", "create device special files with mknod"},
	{28, "CAP_LEASE", "take leases on files the caller does not own"},
	{29, "CAP_AUDIT_WRITE", "write records to the kernel audit log"},
	{30, "CAP_AUDIT_CONTROL", "configure audit rules and auditing"},
	{31, "CAP_SETFCAP", "set file capabilities"},
	{32, "CAP_MAC_OVERRIDE", "override mandatory access control (Smack)"},
	{33, "CAP_MAC_ADMIN", "configure mandatory access control (Smack, AppArmor policy)"},
	{34, "CAP_SYSLOG", "read and clear the kernel log (dmesg, syslog(2))"},
	{35, "CAP_WAKE_ALARM", "set timers that wake the system (CLOCK_*_ALARM)"},
	{36, "CAP_BLOCK_SUSPEND", "block system suspend (epoll wakeups)"},
	{37, "CAP_AUDIT_READ", "read the audit log over multicast netlink"},
	{38, "CAP_PERFMON", "use perf_event_open and other performance monitoring"},
	{39, "CAP_BPF", "load BPF programs and create BPF maps"},
	{40, "CAP_CHECKPOINT_RESTORE", "checkpoint and restore processes (set_tid, map_files)"},
}

// MaxValue is the highest capability number a kernel's 64-bit sets can hold.
const MaxValue = 63

// Name gives CAP_<NAME> for a value, or CAP_<n> for one this table does not know.
func Name(value int) string {
	if value >= 0 && value < len(All) {
		return All[value].Name
	}
	return "CAP_" + strconv.Itoa(value)
}

// KubernetesName is the securityContext spelling: no CAP_ prefix, upper case.
func KubernetesName(value int) string {
	return strings.TrimPrefix(Name(value), "CAP_")
}

// Parse accepts CAP_SYSLOG, cap_syslog, SYSLOG, syslog and 34 for the same capability.
func Parse(s string) (int, error) {
	t := strings.TrimSpace(s)
	if n, err := strconv.Atoi(t); err == nil {
		if n < 0 || n >= len(All) {
			return 0, fmt.Errorf("unknown capability %q: numbers go from 0 to %d", s, len(All)-1)
		}
		return n, nil
	}
	u := strings.ToUpper(t)
	if !strings.HasPrefix(u, "CAP_") {
		u = "CAP_" + u
	}
	for _, c := range All {
		if c.Name == u {
			return c.Value, nil
		}
	}
	return 0, fmt.Errorf("unknown capability %q (run 'capsrec caps' for the list)", s)
}

// Set is a capability bit set, as the kernel's kernel_cap_t.
type Set uint64

// Names lists the capabilities in the set, lowest value first.
func (s Set) Names() []string {
	names := make([]string, 0, bits.OnesCount64(uint64(s)))
	for v := uint64(s); v != 0; v &= v - 1 {
		names = append(names, Name(bits.TrailingZeros64(v)))
	}
	return names
}
