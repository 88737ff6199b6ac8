package session

import (
	"errors"
	"os"

	"github.com/cilium/ebpf/btf"

	"github.com/capsrec/capsrec/bpf"
	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/textsafe"
)

// KernelSpec is the BTF the programs are relocated against: kernelBTF (--btf)
// or the running kernel's.
func KernelSpec(kernelBTF *btf.Spec) (*btf.Spec, error) {
	return bpf.KernelSpec(bpf.Config{KernelBTF: kernelBTF})
}

// CapCapableOpts says how the kernel passes cap_capable's 4th argument.
func CapCapableOpts(kernel *btf.Spec) string {
	switch bpf.CapCapableOpts(kernel) {
	case bpf.OptsBitmask:
		return "bitmask (CAP_OPT_NOAUDIT, CAP_OPT_INSETID)"
	case bpf.OptsAuditInt:
		return "audit int (before 5.1)"
	}
	return "unknown"
}

// TryAttach loads and attaches the programs with method, the process
// programs too with trackProcesses, and removes them again: nil when they
// work here, else one line saying why not.
func TryAttach(kernelBTF *btf.Spec, method core.Method, trackProcesses bool) error {
	cfg := bpf.Config{SelfTgid: uint32(os.Getpid()), KernelBTF: kernelBTF, TrackProcesses: trackProcesses}
	err := bpf.TryAttach(cfg, method)
	if err == nil {
		return nil
	}
	var ue *bpf.UnavailableError
	if errors.As(err, &ue) {
		return errors.New(ue.Reason)
	}
	return errors.New(textsafe.OneLine(err.Error()))
}
