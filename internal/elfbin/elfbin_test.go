package elfbin

import (
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/capsrec/capsrec/internal/testutil"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		machine elf.Machine
		interp  bool
		arch    string
	}{{elf.EM_X86_64, false, "amd64"}, {elf.EM_AARCH64, true, "arm64"}, {elf.EM_RISCV, false, ""}} {
		path := testutil.FakeELF(t, filepath.Join(dir, c.machine.String()), c.machine, c.interp)
		b, err := Read(path)
		if err != nil || b.Machine != c.machine || b.Arch != c.arch || b.Static == c.interp {
			t.Errorf("%v: %+v, %v", c.machine, b, err)
		}
	}
	text := filepath.Join(dir, "text")
	if err := os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{text, filepath.Join(dir, "missing")} {
		if _, err := Read(p); err == nil || !strings.Contains(err.Error(), p+": not an ELF binary: ") || strings.Contains(err.Error(), "%!") {
			t.Errorf("%s: %v", p, err)
		}
	}
}
