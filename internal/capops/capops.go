// Package capops makes the capability uses that the kernel checks on paths
// that mostly probe or do not audit, for the tests that replay their profiles:
// the test binary runs them on the host, capop in containers.
package capops

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SeccompFilter installs an allow-everything filter. Without no_new_privs the
// kernel asks CAP_SYS_ADMIN (ns_capable_noaudit) and refuses with EACCES.
func SeccompFilter() error {
	allow := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}
	prog := unix.SockFprog{Len: 1, Filter: &allow[0]}
	_, _, e := unix.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)))
	if e != 0 {
		return fmt.Errorf("prctl(PR_SET_SECCOMP): %w", e)
	}
	return nil
}

// RaiseInheritable uses CAP_CHOWN, drops it from the permitted set (a capset the
// kernel asks CAP_SETPCAP for, and whose answer gates nothing), then puts it in the
// inheritable set: beyond the old permitted set, which only CAP_SETPCAP allows.
func RaiseInheritable() error {
	// capset changes the calling thread's credentials alone: both calls on one thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f, err := os.CreateTemp("", "capop")
	if err != nil {
		return err
	}
	f.Close()
	defer os.Remove(f.Name())
	if err := os.Chown(f.Name(), 1234, 1234); err != nil {
		return err
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	const chown = 1 << unix.CAP_CHOWN
	data[0].Effective &^= chown
	data[0].Permitted &^= chown
	data[0].Inheritable &^= chown
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset dropping CAP_CHOWN: %w", err)
	}
	data[0].Inheritable |= chown
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset raising the inheritable set: %w", err)
	}
	return nil
}

// Reexec runs argv from an unlinked copy of file padded with zeros to size
// bytes (a loader ignores what follows an ELF's segments): from a memfd
// (how "memfd"), or from a file it names "x (deleted)" and removes (how
// "deleted"). It is what a runtime's re-exec of itself looks like from
// /proc, done by a workload: it must never borrow the runtime's mark.
func Reexec(how, file string, size int64, argv []string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if int64(len(data)) > size {
		return fmt.Errorf("%s is %d bytes, more than %d", file, len(data), size)
	}
	data = append(data, make([]byte, size-int64(len(data)))...)
	var fd int
	switch how {
	case "memfd":
		if fd, err = unix.MemfdCreate("runc_cloned:/proc/self/exe", unix.MFD_CLOEXEC); err != nil {
			return fmt.Errorf("memfd_create: %w", err)
		}
	case "deleted":
		path := "/tmp/x (deleted)"
		if fd, err = unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o755); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown re-exec %q: want memfd or deleted", how)
	}
	if _, err := unix.Write(fd, data); err != nil {
		return err
	}
	if how == "deleted" {
		// Reopened read-only: a file open for writing cannot be executed.
		ro, err := unix.Open("/proc/self/fd/"+fmt.Sprint(fd), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		unix.Close(fd)
		fd = ro
		if err := os.Remove("/tmp/x (deleted)"); err != nil {
			return err
		}
	}
	return unix.Exec(fmt.Sprintf("/proc/self/fd/%d", fd), argv, os.Environ())
}

// RaiseInheritableRacing drops CAP_CHOWN from the permitted set, then n times
// asks for it in the inheritable set (a raise, which CAP_SETPCAP gates) while
// another thread flips the very buffer the call reads between that and an
// empty set, and takes it back out after each raise that took. It returns how
// many raises took: the kernel's own copy of the buffer decided each call.
func RaiseInheritableRacing(n int) (raised int, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := new([2]unix.CapUserData)
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("capget: %w", err)
	}
	const chown = 1 << unix.CAP_CHOWN
	data[0].Effective &^= chown
	data[0].Permitted &^= chown
	data[0].Inheritable = 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("capset dropping CAP_CHOWN: %w", err)
	}
	flip := (*uint32)(unsafe.Pointer(&data[0].Inheritable))
	stop, started := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		close(started)
		for i := uint32(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			atomic.StoreUint32(flip, (i&1)*chown)
		}
	}()
	defer func() { close(stop); <-done }()
	<-started
	for range n {
		hdrCopy := hdr
		if _, _, e := unix.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdrCopy)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
			return raised, fmt.Errorf("capset: %w", e)
		}
		var now [2]unix.CapUserData
		if err := unix.Capget(&hdr, &now[0]); err != nil {
			return raised, fmt.Errorf("capget: %w", err)
		}
		if now[0].Inheritable&chown != 0 {
			raised++
			now[0].Inheritable = 0
			if err := unix.Capset(&hdr, &now[0]); err != nil {
				return raised, fmt.Errorf("capset lowering: %w", err)
			}
		}
	}
	return raised, nil
}

// Ping sends one ICMP echo request to 127.0.0.1 and waits a second for the
// reply, as iputils ping does: through an ICMP datagram socket (no
// capability: net.ipv4.ping_group_range decides), and only when that is
// refused through a raw socket (CAP_NET_RAW).
func Ping() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, unix.IPPROTO_ICMP)
	raw := false
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
		raw = true
	}
	if err != nil {
		return fmt.Errorf("socket (raw %v): %w", raw, err)
	}
	defer unix.Close(fd)
	req := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1, 'c', 'a', 'p', 's'} // echo request; the kernel sets a datagram socket's id
	sum := uint32(0)
	for i := 0; i < len(req); i += 2 {
		sum += uint32(req[i])<<8 | uint32(req[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	req[2], req[3] = byte(^sum>>8), byte(^sum)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fmt.Errorf("sendto: %w", err)
	}
	tv := unix.Timeval{Sec: 1}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("no echo reply: %w", err)
		}
		reply := buf[:n]
		if raw && n > 20 {
			reply = reply[int(buf[0]&0xf)*4:] // past the IP header
		}
		if len(reply) > 0 && reply[0] == 0 { // echo reply
			return nil
		}
	}
}
