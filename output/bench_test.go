package output

import (
	"io"
	"testing"

	"github.com/capsrec/capsrec/internal/testutil"
)

func BenchmarkCompact(b *testing.B) {
	w := NewCompact(io.Discard, false, 0)
	c := testutil.SampleChecks()[0]
	b.ReportAllocs()
	for b.Loop() {
		_ = w.Write(c)
	}
}
