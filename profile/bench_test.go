package profile

import (
	"bytes"
	"strings"
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

// FuzzRead: whole inputs (JSON lines, indented JSON, gzip) through Read, with
// and without --skip-invalid: an error or a profile, never a panic or a hang.
// .ci/run runs it for a fixed number of inputs.
func FuzzRead(f *testing.F) {
	events := writeCapsrecJSON(&testing.T{}, "node", node1)
	f.Add(events, false)
	f.Add(gz(events), true)
	f.Add([]byte("[\n"+string(bytes.TrimSpace(events[:bytes.IndexByte(events, '\n')]))+"\n]"), false)
	f.Add([]byte("{\n \"process_kprobe\": {}\n}\nx\n"), true)
	f.Add([]byte(strings.Repeat("[", 200)), false)
	f.Fuzz(func(t *testing.T, data []byte, skip bool) {
		_ = Read("fuzz", bytes.NewReader(data), ReadOptions{SkipInvalid: skip, Workers: 2}, New())
	})
}
