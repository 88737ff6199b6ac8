package tetragon

import (
	"io"
	"testing"
)

// BenchmarkJSON is the user-space cost of one JSON event with a warm process cache.
func BenchmarkJSON(b *testing.B) {
	w := NewWriter(io.Discard, "node", hostNS)
	c := sampleChecks()[0]
	b.ReportAllocs()
	for b.Loop() {
		_ = w.Write(c)
	}
}
