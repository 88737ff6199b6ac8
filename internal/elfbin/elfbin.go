// Package elfbin reads what capsrec needs of a binary before it copies one to
// a node or packs one in an image: its architecture, and whether it is static.
package elfbin

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
)

// Binary is what an executable's ELF headers say.
type Binary struct {
	Machine elf.Machine
	// Arch is Machine as GOARCH for the architectures capsrec is built for
	// (amd64, arm64); empty for any other.
	Arch string
	// Static is true without a program interpreter (PT_INTERP): the binary
	// runs in an image that has no loader or libraries.
	Static bool
}

var archOf = map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64"}

// Read reads path's ELF headers.
func Read(path string) (Binary, error) {
	f, err := elf.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the caller names the file
		}
		return Binary{}, fmt.Errorf("%s: not an ELF binary: %w", path, err)
	}
	defer f.Close()
	b := Binary{Machine: f.Machine, Arch: archOf[f.Machine], Static: true}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b.Static = false
		}
	}
	return b, nil
}
