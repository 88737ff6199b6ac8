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
			if !a.whileReading(func(t <-chan time.Time) bool {
				select {
				case a.ch <- c:
					return true
				case <-t:
					return false
				}
			}, stallWindow) {
				return b[:0], ErrStalled
			}
		}
	}
	return a.buffer(), nil
}

// After the stop, a reader that takes lines is waited for, a window at a
// time, up to maxDrain in all; one that took none in a window has stalled.
const (
	stallWindow = 500 * time.Millisecond
	maxDrain    = 30 * time.Second
)

// whileReading runs try, each time with a window's timer, until it succeeds,
// the reader took nothing in a window, or maxDrain passed.
func (a *Async) whileReading(try func(<-chan time.Time) bool, window time.Duration) bool {
	deadline := time.Now().Add(maxDrain)
	for {
		before := a.written.Load()
		t := time.NewTimer(window)
		ok := try(t.C)
		t.Stop()
		if ok {
			return true
		}
		if a.written.Load() == before || time.Now().After(deadline) {
			return false
		}
	}
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
// stop comes, then for as long as it keeps taking lines (a grace with none
// taken ends it, as does maxDrain); it returns how many lines the reader took
// and the first write error.
func (a *Async) Close(grace time.Duration) (written int64, err error) {
	a.once.Do(func() { close(a.ch) })
	select {
	case <-a.done:
	case <-a.stop:
		a.whileReading(func(t <-chan time.Time) bool {
			select {
			case <-a.done:
				return true
			case <-t:
				return false
			}
		}, grace)
	}
	if e := a.err.Load(); e != nil {
		err = *e
	}
	return a.written.Load(), err
}
