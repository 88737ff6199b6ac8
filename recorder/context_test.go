package recorder

import (
	"testing"

	"github.com/capsrec/capsrec/bpf"
)

// A main thread's last check may be read after its process's end (the last
// thread recorded the end on another CPU): it still finds its context, and
// the exited contexts kept stay bounded.
func TestContextOfAnExitedMainThread(t *testing.T) {
	r := &Recorder{contexts: map[uint32]*taskContext{}, exited: map[uint32]*taskContext{}}
	r.onContext(&bpf.CtxEvent{Tid: 100, Seq: 3})
	r.forgetProcess(100)
	if _, ok := r.contexts[100]; ok {
		t.Fatal("the exited thread's context is still among the live ones")
	}
	if tc := r.context(100, 3); tc == nil || tc.seq != 3 {
		t.Fatalf("the exited main thread's last check lost its context: %+v", tc)
	}
	for tid := uint32(1000); tid < 1000+2*maxExited; tid++ {
		r.onContext(&bpf.CtxEvent{Tid: tid, Seq: 1})
		r.forgetProcess(tid)
	}
	if len(r.exited) > maxExited || len(r.exitedOrder) > maxExited {
		t.Errorf("%d exited contexts kept, want at most %d", len(r.exited), maxExited)
	}
}
