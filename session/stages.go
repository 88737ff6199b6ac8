package session

import (
	"time"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/enrich"
	"github.com/capsrec/capsrec/filter"
)

// Stages are what a session does with each check, in this fixed order: the
// runtime's description joined (enrich), the pod filter, the check filter,
// the profile (every check kept counts, --unique or not), --unique, the
// writer. Nil stages are skipped.
type Stages struct {
	Pods   *filter.PodFilter
	Checks *filter.Filter
	// Exec takes the exec items (Options.Execs) of containers the pod filter
	// keeps, each one's Start decided.
	Exec    func(*core.Check) error
	Profile func(*core.Check)
	Write   func(*core.Check) error
	// Idle runs whenever the kernel's records are all read (a time to flush).
	Idle func() error
}

// enrichWait is how long a check waits for its container's description.
const enrichWait = 2 * time.Second

// Run delivers every check through st until the session ends or a stage
// fails (ErrStop: without an error); filtered counts the checks the pod and
// check filters and --unique dropped. It detaches at the end, then reads
// what the kernel had already recorded.
func (s *Session) Run(st Stages) (filtered uint64, err error) {
	emit := func(ch *core.Check) error {
		if ch.Exec {
			return s.exec(st, ch)
		}
		if (st.Pods != nil && !st.Pods.Matches(ch.Container)) || (st.Checks != nil && !st.Checks.Matches(ch)) {
			filtered++
			return nil
		}
		if st.Profile != nil {
			st.Profile(ch)
		}
		if st.Checks != nil && !st.Checks.First(ch) {
			filtered++
			return nil
		}
		if st.Write != nil {
			return st.Write(ch)
		}
		return nil
	}
	queue := enrich.NewQueue(s.enricher, enrichWait, emit)
	idle := func() error {
		if err := queue.Flush(false); err != nil {
			return err
		}
		if st.Idle != nil {
			return st.Idle()
		}
		return nil
	}
	err = s.rec.Run(s.ctx, queue.Push, idle)
	if err == nil {
		err = queue.Flush(true)
	}
	return filtered, err
}

// exec passes on an exec in a container the pod filter keeps: a host
// program's checks say all there is.
func (s *Session) exec(st Stages, ch *core.Check) error {
	if ch.Container == nil || (st.Pods != nil && !st.Pods.Matches(ch.Container)) {
		return nil
	}
	ch.Start = ch.StartOf(s.attached)
	if st.Exec != nil {
		return st.Exec(ch)
	}
	return nil
}
