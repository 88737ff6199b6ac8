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
	ch      chan chunk
	free    chan []byte // written chunks, for reuse: at full speed a new one each would feed the GC
	stop    <-chan struct{}
	done    chan struct{}
	err     atomic.Pointer[error]
	written atomic.Int64 // lines the reader took
	once    sync.Once
}

// chunk is whole lines and how many.
type chunk struct {
	b     []byte
	lines int
}

// NewAsync starts the writing goroutine; stop (a session's ctx.Done()) ends
// any wait for room.
func NewAsync(w io.Writer, queueBytes int, stop <-chan struct{}) *Async {
	n := max(queueBytes/chunkSize, 1)
	a := &Async{w: w, ch: make(chan chunk, n), free: make(chan []byte, n+1), stop: stop, done: make(chan struct{})}
	go a.run()
	return a
}

func (a *Async) run() {
	defer close(a.done)
	for c := range a.ch {
		if a.err.Load() != nil {
			continue
		}
		if _, err := a.w.Write(c.b); err != nil {
			a.err.Store(&err)
			continue
		}
		a.written.Add(int64(c.lines))
		select {
		case a.free <- c.b[:0]:
		default:
		}
	}
}

// Write queues a copy of p: whole lines.
func (a *Async) Write(p []byte) (int, error) {
	b := append(a.buffer(), p...)
	if _, err := a.WriteChunk(b, bytes.Count(p, []byte{'\n'})); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteChunk queues b itself, which holds that many whole lines, and returns an
// empty buffer to gather the next ones in: b is the writing goroutine's now.
func (a *Async) WriteChunk(b []byte, lines int) ([]byte, error) {
	if err := a.err.Load(); err != nil {
		return b[:0], *err
	}
	c := chunk{b, lines}
	select {
	case a.ch <- c:
	default:
		select {
		case a.ch <- c:
		case <-a.stop:
			return b[:0], ErrStalled
		}
	}
	return a.buffer(), nil
}

// buffer is an empty chunk: a written one, or a new one.
func (a *Async) buffer() []byte {
	select {
	case b := <-a.free:
		return b
	default:
		return make([]byte, 0, chunkSize)
	}
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
