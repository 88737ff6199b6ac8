package peer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/perf"
)

// Capable is the peer, attached: its reader prints one line per check, as capable does.
type Capable struct {
	objs  capableObjects
	links []link.Link
	rd    *perf.Reader
	done  chan struct{}
	// Events and Lost count what the reader took and what the perf buffer dropped.
	Events, Lost uint64
}

// Open loads and attaches the peer and starts its reader, writing lines to w.
func Open(w io.Writer) (c *Capable, err error) {
	c = &Capable{done: make(chan struct{})}
	if err := loadCapableObjects(&c.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("loading the capable peer: %+v", ve)
		}
		return nil, fmt.Errorf("loading the capable peer: %w", err)
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	entry, err := link.Kprobe("cap_capable", c.objs.PeerCapableEntry, nil)
	if err != nil {
		return nil, fmt.Errorf("kprobe: %w", err)
	}
	c.links = append(c.links, entry)
	exit, err := link.Kretprobe("cap_capable", c.objs.PeerCapableExit, nil)
	if err != nil {
		return nil, fmt.Errorf("kretprobe: %w", err)
	}
	c.links = append(c.links, exit)
	// libbpf-tools' default: 16 pages per CPU.
	if c.rd, err = perf.NewReader(c.objs.Events, 16*os.Getpagesize()); err != nil {
		return nil, fmt.Errorf("perf buffer: %w", err)
	}
	go c.read(w)
	return c, nil
}

func (c *Capable) read(w io.Writer) {
	defer close(c.done)
	for {
		rec, err := c.rd.Read()
		if err != nil {
			return // closed
		}
		c.Lost += rec.LostSamples
		if len(rec.RawSample) < int(unsafe.Sizeof(capableCapEvent{})) {
			continue
		}
		ev := (*capableCapEvent)(unsafe.Pointer(&rec.RawSample[0]))
		c.Events++
		n := 0
		for n < len(ev.Task) && ev.Task[n] != 0 {
			n++
		}
		task := make([]byte, n)
		for i := range task {
			task[i] = byte(ev.Task[i])
		}
		fmt.Fprintf(w, "%-6d %-6d %-6d %-16s %-4d %-6d %d %d\n", ev.Uid, ev.Pid, ev.Tgid, task, ev.Cap, ev.Ret, ev.Audit, ev.Insetid)
	}
}

// Close detaches the peer, ends its reader and frees its maps.
func (c *Capable) Close() {
	for _, l := range c.links {
		l.Close()
	}
	if c.rd != nil {
		c.rd.Close()
		<-c.done
	}
	c.objs.Close()
}
