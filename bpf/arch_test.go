package bpf

import (
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// Each architecture's object carries its own register layout and stack walk,
// whichever architecture runs the test: the arm64 object has no x86-64
// register in it, reads the syscall from syscallno and orig_x0, and never
// walks the raw stack (pointer authentication: the kernel's unwinder only).
func TestObjectsPerArchitecture(t *testing.T) {
	for _, c := range []struct {
		object        string
		regs, notRegs []string
		fastWalk      bool
	}{
		{"capsrec_x86_bpfel.o", []string{"orig_ax", "di", "si"}, []string{"orig_x0", "syscallno"}, true},
		{"capsrec_arm64_bpfel.o", []string{"orig_x0", "syscallno", "regs"}, []string{"orig_ax", "di", "si"}, false},
	} {
		spec, err := ebpf.LoadCollectionSpec(c.object)
		if err != nil {
			t.Fatal(err)
		}
		var regs *btf.Struct
		if err := spec.Types.TypeByName("pt_regs", &regs); err != nil {
			t.Fatalf("%s: %v", c.object, err)
		}
		var names []string
		for _, m := range regs.Members {
			names = append(names, m.Name)
		}
		for _, n := range c.regs {
			if !slices.Contains(names, n) {
				t.Errorf("%s: struct pt_regs lacks %s: %v", c.object, n, names)
			}
		}
		for _, n := range c.notRegs {
			if slices.Contains(names, n) {
				t.Errorf("%s: struct pt_regs has %s: %v", c.object, n, names)
			}
		}
		for _, prog := range []string{capsrecProgTpCapCapable, capsrecProgFexitCapCapable} {
			var refs []string
			for _, ins := range spec.Programs[prog].Instructions {
				refs = append(refs, ins.Reference())
			}
			if walks := slices.Contains(refs, capsrecMapFrames); walks != c.fastWalk {
				t.Errorf("%s: %s reads the learned frames: %v, want %v", c.object, prog, walks, c.fastWalk)
			}
		}
	}
}
