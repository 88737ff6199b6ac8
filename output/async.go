package output

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// ErrStalled is what Async.Write returns once the session is stopping and the
// reader of its output has not made room.
var ErrStalled = errors.New("the output's reader stalled")

// Async writes to w from a goroutine of its own, so that a reader that stalls
// (| less, | sleep) can never hold the recorder, its signals or its hooks:
// Write queues up to about queueBytes and waits for room only until stop.
type Async struct {
	w       io.Writer
	ch      chan []byte
	free    chan []byte // written buffers, for reuse: at full speed a copy each would feed the GC
	stop    <-chan struct{}
	done    chan struct{}
	err     atomic.Pointer[error]
	written atomic.Int64 // lines the reader took
	once    sync.Once
}

// NewAsync starts the writing goroutine; stop (a session's ctx.Done()) ends
// any wait for room.
func NewAsync(w io.Writer, queueBytes int, stop <-chan struct{}) *Async {
	n := max(queueBytes>>16, 1)
	a := &Async{w: w, ch: make(chan []byte, n), free: make(chan []byte, n+1), stop: stop, done: make(chan struct{})}
	go a.run()
	return a
}

func (a *Async) run() {
	defer close(a.done)
	for b := range a.ch {
		if a.err.Load() != nil {
			continue
		}
		if _, err := a.w.Write(b); err != nil {
			a.err.Store(&err)
			continue
		}
		a.written.Add(int64(bytes.Count(b, []byte{'\n'})))
		select {
		case a.free <- b[:0]:
		default:
		}
	}
}

// Write queues a copy of p: whole lines, as the writers above it flush them.
func (a *Async) Write(p []byte) (int, error) {
	if err := a.err.Load(); err != nil {
		return 0, *err
	}
	var b []byte
	select {
	case b = <-a.free:
	default:
	}
	b = append(b, p...)
	select {
	case a.ch <- b:
	default:
		select {
		case a.ch <- b:
		case <-a.stop:
			return 0, ErrStalled
		}
	}
	return len(p), nil
}

// Close lets the reader take what is queued, for as long as it takes unless
// stop comes, then for grace more; it returns how many lines the reader took
// and the first write error.
func (a *Async) Close(grace time.Duration) (written int64, err error) {
	a.once.Do(func() { close(a.ch) })
	select {
	case <-a.done:
	case <-a.stop:
		select {
		case <-a.done:
		case <-time.After(grace):
		}
	}
	if e := a.err.Load(); e != nil {
		err = *e
	}
	return a.written.Load(), err
}
