package nodepod

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// Both ends over a pipe: the plugin's Start feeds the recorder's AwaitStart,
// whose context lives until the plugin's stdin closes.
func TestHandshakeOverAPipe(t *testing.T) {
	pluginStdin, toRecorder := io.Pipe()
	recorderStdin, feed := io.Pipe()
	go func() { _, _ = io.Copy(feed, Start(pluginStdin)); feed.Close() }()

	ctx, err := AwaitStart(context.Background(), recorderStdin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := toRecorder.Write([]byte("anything the attach carries\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
		t.Fatal("the session ended while the plugin's stdin was open")
	case <-time.After(50 * time.Millisecond):
	}
	toRecorder.Close() // Ctrl-C, or the plugin died
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the session did not end when the plugin's stdin closed")
	}
}

func TestAwaitStartRefuses(t *testing.T) {
	if _, err := AwaitStart(context.Background(), strings.NewReader("hello\n")); err == nil || !strings.Contains(err.Error(), `unexpected first line "hello\n"`) {
		t.Errorf("a wrong first line: %v", err)
	}
	if _, err := AwaitStart(context.Background(), strings.NewReader("")); err == nil {
		t.Error("stdin closed before the start line: no error")
	}
	old := StartTimeout
	StartTimeout = 10 * time.Millisecond
	defer func() { StartTimeout = old }()
	r, w := io.Pipe()
	defer w.Close()
	if _, err := AwaitStart(context.Background(), r); err == nil || !strings.Contains(err.Error(), "did not attach within") {
		t.Errorf("nobody attached: %v", err)
	}
}

// The plugin's end of stderr: the ready line is taken off, once; the last
// error before it is remembered; partial writes and a last line without a
// newline pass whole.
func TestStderrFilter(t *testing.T) {
	var out strings.Builder
	ready := 0
	f := &Stderr{W: &out, OnReady: func() { ready++ }}
	for _, chunk := range []string{"capsrec: attached with tracepoint\ncaps", "rec: warning: x\n", ReadyLine + "\n", "capsrec: 3 checks seen\n", ReadyLine + "\n", "tail"} {
		if _, err := f.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	f.Flush()
	want := "capsrec: attached with tracepoint\ncapsrec: warning: x\ncapsrec: 3 checks seen\n" + ReadyLine + "\ntail"
	if out.String() != want || ready != 1 || !f.Ready || f.LastError != "capsrec: warning: x\n" {
		t.Errorf("got %q, ready %d, last error %q", out.String(), ready, f.LastError)
	}
}
