package bpf

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/capsrec/capsrec/core"
)

// Method is how capsrec hooks the kernel's capability checks (core.Method).
type Method = core.Method

const (
	MethodAuto       = core.MethodAuto
	MethodTracepoint = core.MethodTracepoint
	MethodFexit      = core.MethodFexit
	MethodKprobe     = core.MethodKprobe
)

// precheck turns the common reasons a method cannot work into one clear line before
// the verifier or the attach would give a murkier one.
func precheck(kernel *btf.Spec, method Method, externalBTF bool) error {
	if externalBTF && method != MethodKprobe {
		return unavailable(method, "needs the kernel's own BTF (/sys/kernel/btf/vmlinux) to attach; with --btf only kprobe works")
	}
	switch method {
	case MethodTracepoint:
		var td *btf.Typedef
		if err := kernel.TypeByName("btf_trace_cap_capable", &td); err != nil {
			return unavailable(method, "this kernel has no tracepoint capability:cap_capable (it appeared in 6.13); use --attach fexit or kprobe")
		}
	case MethodFexit, MethodKprobe:
		var fn *btf.Func
		if err := kernel.TypeByName("cap_capable", &fn); err != nil {
			return unavailable(method, "the kernel's BTF has no function cap_capable")
		}
	}
	// Every kernel with kprobe events (4.17+) has the kprobe PMU: without it the
	// kernel has no kprobes, whatever the tracefs fallback would say.
	if method == MethodKprobe {
		if _, err := os.Stat("/sys/bus/event_source/devices/kprobe/type"); err != nil {
			return unavailable(method, "this kernel has no kprobes (no kprobe PMU at /sys/bus/event_source/devices/kprobe: CONFIG_KPROBES or CONFIG_KPROBE_EVENTS is off)")
		}
	}
	return nil
}

func hasHelper(kernel *btf.Spec, name string) bool {
	var e *btf.Enum
	if err := kernel.TypeByName("bpf_func_id", &e); err != nil {
		return false
	}
	for _, v := range e.Values {
		if v.Name == name {
			return true
		}
	}
	return false
}

// OptsKind tells how to read cap_capable's 4th argument on this kernel, from
// its BTF rather than the version number, since distributions backport.
type OptsKind int

const (
	OptsUnknown OptsKind = iota
	// OptsBitmask: unsigned int opts with CAP_OPT_NOAUDIT and CAP_OPT_INSETID (5.1+).
	OptsBitmask
	// OptsAuditInt: int audit, SECURITY_CAP_AUDIT (1) or SECURITY_CAP_NOAUDIT (0).
	OptsAuditInt
)

// CapCapableOpts reads the name of cap_capable's 4th parameter from the kernel's BTF.
func CapCapableOpts(kernel *btf.Spec) OptsKind {
	var fn *btf.Func
	if kernel == nil || kernel.TypeByName("cap_capable", &fn) != nil {
		return OptsUnknown
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok || len(proto.Params) < 4 {
		return OptsUnknown
	}
	switch proto.Params[3].Name {
	case "opts":
		return OptsBitmask
	case "audit":
		return OptsAuditInt
	}
	return OptsUnknown
}

// KernelSpec is the BTF the programs are relocated against: the --btf file or the running kernel's.
func KernelSpec(cfg Config) (*btf.Spec, error) { return kernelSpec(cfg) }

// UnavailableError says why a method cannot be used here.
type UnavailableError struct {
	Method Method
	Reason string
}

func (e *UnavailableError) Error() string { return string(e.Method) + ": " + e.Reason }

func unavailable(m Method, format string, args ...any) error {
	return &UnavailableError{Method: m, Reason: fmt.Sprintf(format, args...)}
}

func kernelSpec(cfg Config) (*btf.Spec, error) {
	if cfg.KernelBTF != nil {
		return cfg.KernelBTF, nil
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("kernel BTF not found (%w): capsrec needs /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF) or a BTF file given with --btf", err)
	}
	return spec, nil
}

// capProgram are the programs on cap_capable of each method; only those of
// the method at hand are loaded.
var capProgram = map[Method][]string{
	MethodTracepoint: {capsrecProgTpCapCapable},
	MethodFexit:      {capsrecProgFexitCapCapable, capsrecProgFexitCapCapableLegacy},
	MethodKprobe:     {capsrecProgKprobeCapCapable, capsrecProgKretprobeCapCapable},
}

// attachError says why a link of method did not attach.
func attachError(method Method, err error, what string) error {
	if method == MethodKprobe && errors.Is(err, os.ErrNotExist) {
		return unavailable(method, "this kernel has no kprobes (CONFIG_KPROBES is off: no kprobe PMU, no tracefs kprobe_events)")
	}
	// arm64 kernels before 6.4 (no ftrace direct calls) load fexit programs but cannot attach them.
	if method == MethodFexit && (errors.Is(err, errENOTSUPP) || errors.Is(err, ebpf.ErrNotSupported)) {
		return unavailable(method, "this kernel cannot attach fexit programs to its functions (%s: no BPF trampoline for them here); use --attach kprobe", what)
	}
	return unavailable(method, "attaching %s: %v", what, err)
}

// attachChecks attaches method's programs on cap_capable, last: every
// other program is on by then. tracing attaches a BTF program by name; add
// keeps a link, or says why it did not attach.
func (s *Session) attachChecks(method Method, tracing func(string) error, add func(link.Link, error, string) error) error {
	switch method {
	case MethodTracepoint:
		return tracing(capsrecProgTpCapCapable)
	case MethodFexit:
		for _, p := range capProgram[MethodFexit] {
			if s.coll.Programs[p] != nil {
				return tracing(p)
			}
		}
	case MethodKprobe:
		// The kretprobe first: the kernel runs the handlers of one address newest
		// first, so the kprobe program runs before the kretprobe replaces the
		// return address, which arm64 keeps in the link register (the caller).
		l, err := link.Kretprobe("cap_capable", s.coll.Programs[capsrecProgKretprobeCapCapable], &link.KprobeOptions{RetprobeMaxActive: 4096})
		if errors.Is(err, link.ErrNotSupported) || errors.Is(err, os.ErrNotExist) {
			// maxactive needs the tracefs kprobe interface; the PMU one uses the kernel default.
			l, err = link.Kretprobe("cap_capable", s.coll.Programs[capsrecProgKretprobeCapCapable], nil)
		}
		if err := add(l, err, "kretprobe cap_capable"); err != nil {
			return err
		}
		l, err = link.Kprobe("cap_capable", s.coll.Programs[capsrecProgKprobeCapCapable], nil)
		return add(l, err, "kprobe cap_capable")
	}
	return fmt.Errorf("unknown attach method %q", method)
}
