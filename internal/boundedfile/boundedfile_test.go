package boundedfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestRegularFilesOnly(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(small, 10); err != nil || string(b) != "0123456789" {
		t.Errorf("a file at the bound: %q, %v", b, err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path  string
		limit int64
		want  string
	}{
		{small, 9, "10 bytes, more than the 9 this reads"},
		{fifo, 0, "not a regular file but a named pipe"}, // refused before the open: no hang
		{dir, 0, "not a regular file but a directory"},
		{"/dev/zero", 0, "not a regular file but a character device"},
		{filepath.Join(dir, "missing"), 0, "no such file"},
	} {
		f, err := Open(c.path, c.limit)
		if err == nil {
			f.Close()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%s, %d): %v, want %q", c.path, c.limit, err, c.want)
		}
	}
}
