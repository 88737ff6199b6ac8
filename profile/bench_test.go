package profile

import (
	"bytes"
	"testing"
)

// BenchmarkParseEvent is the cost of reading one capsrec JSON event.
func BenchmarkParseEvent(b *testing.B) {
	line := bytes.TrimSpace(writeCapsrecJSON(&testing.T{}, "node", node1[:1]))
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseEvent(line); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseEvent: no input makes the scanner panic or run past the line.
func FuzzParseEvent(f *testing.F) {
	f.Add(bytes.TrimSpace(writeCapsrecJSON(&testing.T{}, "node", node1[:2])))
	f.Add([]byte(`{"process_kprobe":{"function_name":"cap_capable","args":[{"capability_arg":{"name":"CAP_SYSLOG"}}],"return":{"int_arg":-1}}}`))
	f.Add([]byte(`{"a":"\u00e9\\\"","b":[1,2.5e3,-7,true,false,null,{}]}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		_, _ = parseEvent(line)
	})
}
