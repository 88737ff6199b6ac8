// Package ring reads a BPF ring buffer map in batches.
//
// cilium/ebpf's ringbuf.Reader loads both positions and stores the consumer
// position for every record, and copies each record out. When the program
// and the reader run on different CPUs, each of those touches moves a cache
// line between them, for every check: measured here, that doubled what a
// program that only reserves and submits a record costs (bench: "record
// floor"). This reader loads the producer position once per batch, hands out
// records where they lie, and gives their space back once per batch.
// Upstream's RawReader (WithLease, Lease.ReadSample, Lease.Commit; on main
// after v0.22.0, the newest release served here) batches the commit too and
// hands out records in place, but still loads the producer position for
// every record: worth a bench once it is released.
package ring

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// The kernel's record header (kernel/bpf/ringbuf.c).
const (
	hdrSize    = 8
	busyBit    = 1 << 31
	discardBit = 1 << 30
)

// Reader reads one ring buffer map, from one goroutine.
type Reader struct {
	consPage []byte // the consumer position: ours to write
	prodPage []byte // the producer position, then the data pages mapped twice
	cons     *uint64
	prod     *uint64
	data     []byte
	mask     uint64
	epfd     int
	events   []unix.EpollEvent
}

// New maps m, a BPF_MAP_TYPE_RINGBUF.
func New(m *ebpf.Map) (*Reader, error) {
	if m.Type() != ebpf.RingBuf {
		return nil, fmt.Errorf("map %v is a %v, not a ring buffer", m, m.Type())
	}
	size := int(m.MaxEntries())
	page := os.Getpagesize()
	fd := m.FD()
	consPage, err := unix.Mmap(fd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mapping the ring buffer's consumer page: %w", err)
	}
	// The data pages follow the producer page twice, so that a record that
	// wraps around the end reads as one piece.
	prodPage, err := unix.Mmap(fd, int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		_ = unix.Munmap(consPage)
		return nil, fmt.Errorf("mapping the ring buffer's data: %w", err)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		_ = unix.Munmap(consPage)
		_ = unix.Munmap(prodPage)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Munmap(consPage)
		_ = unix.Munmap(prodPage)
		return nil, fmt.Errorf("epoll on the ring buffer: %w", err)
	}
	r := over((*uint64)(unsafe.Pointer(&consPage[0])), (*uint64)(unsafe.Pointer(&prodPage[0])), prodPage[page:])
	r.consPage, r.prodPage, r.epfd = consPage, prodPage, epfd
	r.events = make([]unix.EpollEvent, 1)
	return r, nil
}

// over reads a ring whose positions are cons and prod and whose data pages,
// a power of two, are mapped twice in a row in data.
func over(cons, prod *uint64, data []byte) *Reader {
	return &Reader{cons: cons, prod: prod, data: data, mask: uint64(len(data)/2 - 1)}
}

// Available is how many bytes are written and not yet read.
func (r *Reader) Available() uint64 {
	return atomic.LoadUint64(r.prod) - atomic.LoadUint64(r.cons)
}

// Read calls fn with each record committed now, in order, and returns how many
// it read. A record's bytes are valid only until fn returns. The space read is
// given back to the kernel when the batch ends, and every quarter of the ring
// on the way, so that a long batch does not starve the producer. An error from
// fn ends the batch after that record.
func (r *Reader) Read(fn func([]byte) error) (int, error) {
	cons := atomic.LoadUint64(r.cons)
	prod := atomic.LoadUint64(r.prod)
	released := cons
	quarter := (r.mask + 1) / 4
	n := 0
	defer func() { atomic.StoreUint64(r.cons, cons) }()
	for cons < prod {
		if prod-cons < hdrSize {
			return n, fmt.Errorf("ring buffer: %d bytes left, less than a record header", prod-cons)
		}
		// An atomic load of the length orders it after the kernel's commit (xchg).
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[cons&r.mask])))
		if hdr&busyBit != 0 {
			break // not committed yet: the next batch starts here
		}
		size := uint64(hdr &^ (busyBit | discardBit))
		next := cons + hdrSize + (size+7)&^7
		if next > prod {
			return n, fmt.Errorf("ring buffer: a %d-byte record runs past the written data", size)
		}
		if hdr&discardBit == 0 {
			start := (cons + hdrSize) & r.mask
			err := fn(r.data[start : start+size : start+size])
			n++
			if err != nil {
				cons = next
				return n, err
			}
		}
		cons = next
		if cons-released >= quarter {
			atomic.StoreUint64(r.cons, cons)
			released = cons
		}
	}
	return n, nil
}

// Wait blocks until there is data to read, or timeout passes (false). The
// kernel wakes it only when the program asks (see the BPF side's
// wakeup_bytes); below that, the caller's timeout is its poll.
func (r *Reader) Wait(timeout time.Duration) (bool, error) {
	if r.Available() > 0 {
		return true, nil
	}
	for {
		n, err := unix.EpollWait(r.epfd, r.events, int(timeout/time.Millisecond))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("waiting for the ring buffer: %w", err)
		}
		return n > 0 || r.Available() > 0, nil
	}
}

// Close unmaps the ring.
func (r *Reader) Close() error {
	err := errors.Join(unix.Munmap(r.consPage), unix.Munmap(r.prodPage), unix.Close(r.epfd))
	if err != nil {
		return fmt.Errorf("closing the ring buffer reader: %w", err)
	}
	return nil
}
