package enrich

import (
	"time"

	"github.com/capsrec/capsrec/core"
)

// maxQueued bounds the checks held for a slow runtime; past it the oldest
// goes out with the container id alone.
const maxQueued = 10000

// Queue keeps checks in order while their container lookups are under way:
// a check goes out when its lookup answers or after the timeout, never
// before an earlier one.
type Queue struct {
	e       *Enricher
	timeout time.Duration
	emit    func(*core.Check) error
	items   []queued
}

type queued struct {
	c        core.Check // a copy: the recorder reuses its Check
	done     <-chan struct{}
	deadline time.Time
}

// NewQueue emits through emit; lookups wait at most timeout.
func NewQueue(e *Enricher, timeout time.Duration, emit func(*core.Check) error) *Queue {
	return &Queue{e: e, timeout: timeout, emit: func(c *core.Check) error {
		e.Classify(c) // once its container is known
		return emit(c)
	}}
}

// Push resolves c and emits it, now or once the checks before it and its own lookup are done.
func (q *Queue) Push(c *core.Check) error {
	done := q.e.Resolve(c)
	if done == nil && len(q.items) == 0 {
		return q.emit(c)
	}
	q.items = append(q.items, queued{c: *c, done: done, deadline: time.Now().Add(q.timeout)})
	if len(q.items) > maxQueued {
		q.items[0].deadline = time.Time{}
	}
	return q.Flush(false)
}

// Flush emits the head of the queue as far as answers have come; with wait it
// waits for every lookup (or its timeout), as at the end of a session.
func (q *Queue) Flush(wait bool) error {
	for len(q.items) > 0 {
		it := &q.items[0]
		if it.done != nil {
			select {
			case <-it.done:
			default:
				left := time.Until(it.deadline)
				if !wait && left > 0 {
					return nil
				}
				if left > 0 {
					select {
					case <-it.done:
					case <-time.After(left):
					}
				}
			}
			q.e.Fill(&it.c)
		}
		if err := q.emit(&it.c); err != nil {
			return err
		}
		q.items[0] = queued{}
		q.items = q.items[1:]
	}
	return nil
}
