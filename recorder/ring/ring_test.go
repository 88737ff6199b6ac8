package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// fakeRing is the kernel's side over a plain slice: data is the ring twice,
// as the kernel maps it, so every byte written goes to both copies.
type fakeRing struct {
	cons, prod uint64
	data       []byte
	size       uint64
}

func newFakeRing(size int) *fakeRing {
	return &fakeRing{data: make([]byte, 2*size), size: uint64(size)}
}

func (f *fakeRing) put(pos uint64, b []byte) {
	for i, c := range b {
		at := (pos + uint64(i)) % f.size
		f.data[at], f.data[at+f.size] = c, c
	}
}

// reserve writes a record's header (with flags) and payload at prod, as
// bpf_ringbuf_reserve and submit (or discard) leave it.
func (f *fakeRing) reserve(payload string, flags uint32) {
	var hdr [hdrSize]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(payload))|flags)
	f.put(f.prod, hdr[:])
	f.put(f.prod+hdrSize, []byte(payload))
	f.prod += hdrSize + (uint64(len(payload))+7)&^7
}

func (f *fakeRing) reader() *Reader { return over(&f.cons, &f.prod, f.data) }

func readAll(t *testing.T, r *Reader) []string {
	t.Helper()
	var got []string
	if _, err := r.Read(func(b []byte) error { got = append(got, string(b)); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestReadInOrder(t *testing.T) {
	f := newFakeRing(4096)
	f.reserve("one", 0)
	f.reserve("two-two", 0)
	f.reserve("", 0)
	r := f.reader()
	if got := readAll(t, r); !slices.Equal(got, []string{"one", "two-two", ""}) {
		t.Fatalf("got %q", got)
	}
	if f.cons != f.prod || r.Available() != 0 {
		t.Fatalf("cons %d, prod %d: the space read was not given back", f.cons, f.prod)
	}
}

// A record not committed yet ends the batch; the next one starts there.
func TestBusyRecordEndsTheBatch(t *testing.T) {
	f := newFakeRing(4096)
	f.reserve("first", 0)
	busyAt := f.prod
	f.reserve("second", busyBit)
	f.reserve("third", 0)
	r := f.reader()
	if got := readAll(t, r); !slices.Equal(got, []string{"first"}) {
		t.Fatalf("got %q, want only the record before the busy one", got)
	}
	if f.cons != busyAt {
		t.Fatalf("cons %d, want %d (the busy record)", f.cons, busyAt)
	}
	f.put(busyAt, binary.LittleEndian.AppendUint32(nil, uint32(len("second")))) // committed
	if got := readAll(t, r); !slices.Equal(got, []string{"second", "third"}) {
		t.Fatalf("got %q", got)
	}
}

// A discarded record is skipped, and its space given back.
func TestDiscardedRecordIsSkipped(t *testing.T) {
	f := newFakeRing(4096)
	f.reserve("kept", 0)
	f.reserve("dropped", discardBit)
	f.reserve("kept too", 0)
	r := f.reader()
	n, err := r.Read(func([]byte) error { return nil })
	if err != nil || n != 2 {
		t.Fatalf("read %d records (%v), want 2", n, err)
	}
	if f.cons != f.prod {
		t.Fatal("the discarded record's space was not given back")
	}
}

// Positions grow for ever; records wrap around the end of the ring, a record
// that straddles it reads as one piece through the second mapping.
func TestWrapAroundAndStraddle(t *testing.T) {
	f := newFakeRing(64)
	f.cons, f.prod = 1<<40+40, 1<<40+40 // far along, 24 bytes before the end
	r := f.reader()
	payload := strings.Repeat("x", 20) + "yz" // 8 + 24 bytes: crosses the end
	f.reserve(payload, 0)
	if f.cons%64+hdrSize+24 <= 64 {
		t.Fatal("the test record does not straddle the end")
	}
	if got := readAll(t, r); !slices.Equal(got, []string{payload}) {
		t.Fatalf("got %q", got)
	}
	for i := range 20 { // many laps
		f.reserve(fmt.Sprint(i), 0)
		if got := readAll(t, r); !slices.Equal(got, []string{fmt.Sprint(i)}) {
			t.Fatalf("lap %d: got %q", i, got)
		}
	}
}

// An error from the callback ends the batch after that record, which counts as read.
func TestCallbackErrorEndsTheBatch(t *testing.T) {
	f := newFakeRing(4096)
	f.reserve("a", 0)
	f.reserve("b", 0)
	r := f.reader()
	stop := errors.New("stop")
	n, err := r.Read(func([]byte) error { return stop })
	if n != 1 || !errors.Is(err, stop) {
		t.Fatalf("read %d (%v), want 1 and the callback's error", n, err)
	}
	if got := readAll(t, r); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("the next batch got %q, want b", got)
	}
}

// A long batch gives space back every quarter of the ring, so that the producer is not starved.
func TestLongBatchReleasesEveryQuarter(t *testing.T) {
	f := newFakeRing(256)
	for range 8 {
		f.reserve("0123456789abcdef0123", 0) // 32 bytes each: 8 fill the ring
	}
	r := f.reader()
	var seen []uint64
	if _, err := r.Read(func([]byte) error { seen = append(seen, f.cons); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seen, []uint64{0, 0, 64, 64, 128, 128, 192, 192}) {
		t.Fatalf("the consumer position during the batch: %v", seen)
	}
}

// Corrupt positions are an error, never a read past the data.
func TestCorruptRing(t *testing.T) {
	f := newFakeRing(64)
	f.prod = 4
	if _, err := f.reader().Read(func([]byte) error { return nil }); err == nil {
		t.Fatal("a ring with less than a header written read without error")
	}
	f = newFakeRing(64)
	f.reserve("short", 0)
	f.put(0, binary.LittleEndian.AppendUint32(nil, 40)) // says 40 bytes, 8 written
	if _, err := f.reader().Read(func([]byte) error { return nil }); err == nil {
		t.Fatal("a record running past the written data read without error")
	}
}
