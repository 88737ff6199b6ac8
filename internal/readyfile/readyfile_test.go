package readyfile

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestPrepareAndWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ready")
	if err := os.WriteFile(path, []byte("stale\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Prepare(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("a stale ready file is still there after Prepare: %v", err)
	}
	if err := Write(path); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("ready file holds %q, want the pid", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if Prepare("") != nil || Write("") != nil {
		t.Error("no --ready-file must be no error")
	}
}

// Only a file or a symbolic link is replaced; anything else stays as it is.
func TestRefusesWhatIsNoFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, sub} {
		for name, f := range map[string]func(string) error{"Prepare": Prepare, "Write": Write} {
			if err := f(p); err == nil || !strings.Contains(err.Error(), "only a file is replaced") {
				t.Errorf("%s(%s): %v", name, p, err)
			}
		}
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if err := Prepare(filepath.Join(dir, "missing-dir", "ready")); err == nil || !strings.Contains(err.Error(), "cannot write in") {
		t.Errorf("a ready file in a missing folder: %v", err)
	}
}
