package kubectl

import (
	"debug/elf"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/capsrec/capsrec/internal/testutil"
)

func TestBinaryForPlatform(t *testing.T) {
	dir := t.TempDir()
	arm := testutil.FakeELF(t, filepath.Join(dir, "arm"), elf.EM_AARCH64, false)
	amd := testutil.FakeELF(t, filepath.Join(dir, "amd"), elf.EM_X86_64, false)
	dyn := testutil.FakeELF(t, filepath.Join(dir, "dyn"), elf.EM_AARCH64, true)

	b := &binaries{self: filepath.Join(dir, "kubectl-capsrec"), given: map[string]string{}, chosen: map[string]string{}}
	other := map[string]string{"amd64": "linux/arm64", "arm64": "linux/amd64"}[runtime.GOARCH]
	// No binary of the node's platform: one line naming the node and what to pass.
	if _, err := b.forPlatform("graviton-1", other); err == nil || !strings.Contains(err.Error(), "node graviton-1 is "+other) ||
		!strings.Contains(err.Error(), "--binary-for "+other+"=PATH") {
		t.Errorf("no binary for %s: %v", other, err)
	}
	// The sibling make release writes.
	sibling := filepath.Join(dir, "capsrec-"+strings.ReplaceAll(other, "/", "-"))
	testutil.FakeELF(t, sibling, map[string]elf.Machine{"linux/arm64": elf.EM_AARCH64, "linux/amd64": elf.EM_X86_64}[other], false)
	if got, err := b.forPlatform("graviton-1", other); err != nil || got != sibling {
		t.Errorf("sibling: %q, %v", got, err)
	}

	// --binary-for: checked for its platform and for being static.
	for _, c := range []struct {
		flag, want string
	}{
		{"linux/arm64=" + arm, ""},
		{"linux/arm64=" + amd, "is for EM_X86_64, not linux/arm64"},
		{"linux/arm64=" + dyn, "dynamically linked"},
		{"linux/riscv64=" + arm, "not linux/riscv64"},
		{"linux/arm64", "want OS/ARCH=PATH"},
		{"linux/arm64=" + filepath.Join(dir, "missing"), "not an ELF binary"},
	} {
		_, err := newBinaries([]string{c.flag})
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("--binary-for %s: %v, want %q", c.flag, err, c.want)
		}
	}
	given, err := newBinaries([]string{"linux/arm64=" + arm})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := given.forPlatform("graviton-2", "linux/arm64"); err != nil || got != arm {
		t.Errorf("--binary-for linux/arm64: %q, %v", got, err)
	}
}
