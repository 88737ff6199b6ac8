package recorder

import "github.com/capsrec/capsrec/bpf"

// taskContext is the context the kernel last sent for one thread: what its
// checks share (credentials, namespaces, executable, cgroup). Checks name it
// by seq.
type taskContext struct {
	seq        uint32
	ev         bpf.CtxEvent
	comm       string
	cgroupName string
}

// maxContexts bounds the threads remembered; past it one is forgotten here and
// in the kernel, which then sends its context again.
const maxContexts = 1 << 16

// onContext remembers a thread's new context.
func (r *Recorder) onContext(ev *bpf.CtxEvent) {
	tc, ok := r.contexts[ev.Tid]
	if !ok {
		if len(r.contexts) >= maxContexts {
			r.evictContext()
		}
		tc = &taskContext{}
		r.contexts[ev.Tid] = tc
	}
	// Strings once per context, not per check.
	tc.seq, tc.ev = ev.Seq, *ev
	tc.comm, tc.cgroupName = cString(ev.Comm[:]), cString(ev.CgroupName[:])
}

func (r *Recorder) evictContext() {
	for tid := range r.contexts {
		delete(r.contexts, tid)
		_ = r.sess.ForgetContext(tid)
		return
	}
}

// context is the context a check was made under; nil when it is not the one
// known for its thread (user space forgot it): the kernel is told to send it
// again, and the check is counted as lost rather than shown with another's.
func (r *Recorder) context(tid, seq uint32) *taskContext {
	tc, ok := r.contexts[tid]
	if ok && tc.seq == seq {
		return tc
	}
	if tc, ok := r.exited[tid]; ok && tc.seq == seq {
		return tc
	}
	r.Unjoined++
	_ = r.sess.ForgetContext(tid)
	return nil
}

// maxExited bounds the contexts of exited main threads kept for their last
// records.
const maxExited = 4096

// forgetProcess moves the context of an exited process's main thread aside;
// its other threads' go when the bound is reached. A process ends with its
// last thread, which may record its end before the main thread, on another
// CPU, records its last check (a capset check decided at its exit): that
// check still finds its context.
func (r *Recorder) forgetProcess(tgid uint32) {
	tc, ok := r.contexts[tgid]
	if !ok {
		return
	}
	delete(r.contexts, tgid)
	if len(r.exitedOrder) >= maxExited {
		delete(r.exited, r.exitedOrder[0])
		r.exitedOrder = r.exitedOrder[1:]
	}
	r.exited[tgid] = tc
	r.exitedOrder = append(r.exitedOrder, tgid)
}
