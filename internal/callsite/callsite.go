// Package callsite names the kernel function behind each capability check and
// says whether it is the workload asking or the kernel probing. The BPF
// programs walk the kernel stack through a table of function address ranges
// that this package builds from /proc/kallsyms; user space names the call site
// from the same symbols.
package callsite

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/capsrec/capsrec/core"
)

// Kind is what a function is to the stack walk (capsrec.h's enum site_kind).
type Kind uint32

const (
	Unknown  = Kind(core.SiteUnknown)  // the caller asking: a need
	Glue     = Kind(core.SiteGlue)     // tracing machinery between the hook and cap_capable
	Plumbing = Kind(core.SitePlumbing) // capable(), security_capable(), the noaudit wrappers, ...: the walk looks further
	Capset   = Kind(core.SiteCapset)   // cap_capset: a need when the call raises the inheritable set, else a probe
	Probe    = Kind(core.SiteProbe)    // a caller whose answer gates nothing: a probe, and the call site
)

// Kinds maps function names to their kind, for every kernel of the matrix (5.10
// to 7.2): a name a kernel lacks is skipped. Compiler suffixes (.isra.0,
// .constprop.0, .cold) are ignored when matching.
var Kinds = map[string]Kind{
	// The hook's own frames: tracepoint (tp_btf), fexit trampoline helpers, kprobes.
	"bpf_trace_run1": Glue, "bpf_trace_run2": Glue, "bpf_trace_run3": Glue, "bpf_trace_run4": Glue,
	"bpf_trace_run5": Glue, "bpf_trace_run6": Glue, "bpf_trace_run7": Glue, "bpf_trace_run8": Glue,
	"__bpf_trace_cap_capable": Glue, "__traceiter_cap_capable": Glue, "perf_trace_cap_capable": Glue,
	"bpf_get_stack_raw_tp": Glue, "____bpf_get_stack_raw_tp": Glue,
	"__bpf_prog_enter": Glue, "__bpf_prog_exit": Glue, "__bpf_prog_enter_recur": Glue, "__bpf_prog_exit_recur": Glue,
	"trace_call_bpf": Glue, "kprobe_perf_func": Glue, "kprobe_dispatcher": Glue, "kprobe_ftrace_handler": Glue,
	"kretprobe_perf_func": Glue, "kretprobe_dispatcher": Glue, "__kretprobe_trampoline_handler": Glue,
	"kretprobe_trampoline_handler": Glue, "trampoline_handler": Glue, "__kretprobe_trampoline": Glue,
	"kretprobe_trampoline": Glue, "arch_rethook_trampoline": Glue, "arch_rethook_trampoline_callback": Glue,
	"rethook_trampoline_handler": Glue, "kretprobe_rethook_handler": Glue, "ftrace_regs_caller": Glue,
	"ftrace_caller": Glue, "ftrace_regs_call": Glue, "ftrace_call": Glue, "aggr_pre_handler": Glue,
	"kprobe_int3_handler": Glue, "exc_int3": Glue, "asm_exc_int3": Glue, "opt_pre_handler": Glue,
	"optimized_callback": Glue,

	// The capability plumbing (kernel/capability.c, security/, include/linux/capability.h).
	"cap_capable": Plumbing, "cap_capable_helper": Plumbing, "security_capable": Plumbing,
	"ns_capable_common": Plumbing, "ns_capable": Plumbing, "ns_capable_setid": Plumbing, "capable": Plumbing,
	"has_ns_capability": Plumbing, "has_capability": Plumbing, "file_ns_capable": Plumbing,
	"capable_wrt_inode_uidgid": Plumbing, "privileged_wrt_inode_uidgid": Plumbing, "inode_capable": Plumbing,
	"sk_ns_capable": Plumbing, "sk_capable": Plumbing, "sk_net_capable": Plumbing,
	"netlink_ns_capable": Plumbing, "netlink_capable": Plumbing, "netlink_net_capable": Plumbing,
	"bpf_token_capable": Plumbing, "checkpoint_restore_ns_capable": Plumbing,

	// Wrappers that pass CAP_OPT_NOAUDIT (or SECURITY_CAP_NOAUDIT before 5.1). Not
	// auditing says nothing of whether the answer gates the operation (seccomp
	// filters without no_new_privs ask through ns_capable_noaudit): their caller decides.
	"ns_capable_noaudit": Plumbing, "has_ns_capability_noaudit": Plumbing, "has_capability_noaudit": Plumbing,
	"checkpoint_restore_ns_capable_noaudit": Plumbing,

	// The probe sites: each caller's answer is proven, in the kernel sources of
	// every kernel of the matrix, to gate nothing (docs/classes.md gives the lines).
	// Every other caller is a need.
	//
	// Overcommit accounting asks CAP_SYS_ADMIN on every accountable mmap, brk,
	// fork and exec only to size a reserve in its heuristic (security/commoncap.c
	// cap_vm_enough_memory returns the answer as cap_sys_admin to
	// mm/util.c __vm_enough_memory).
	"cap_vm_enough_memory": Probe, "security_vm_enough_memory_mm": Probe, "__vm_enough_memory": Probe,
	// capset asks CAP_SETPCAP on every call (cap_inh_is_capped, inlined into
	// cap_capset); the answer gates the call only when the new inheritable set is
	// beyond the old inheritable and permitted sets: the BPF program reads the
	// call's arguments to tell.
	"cap_inh_is_capped": Capset, "cap_capset": Capset,
}

// MaxRanges is capsrec.h's MAX_SITES: the BPF table's size.
const MaxRanges = 128

// Range is one function's text, [Start, End), and its kind.
type Range struct {
	Start, End uint64
	Kind       Kind
}

// Table holds the kernel's text symbols, sorted by address.
type Table struct {
	addrs []uint64
	// names[i] starts at addrs[i]: one arena, so 100,000 symbols are not 100,000 strings.
	nameOff []uint32
	arena   []byte
	// TextStart and TextEnd bound the core kernel's text (_stext, _etext).
	TextStart, TextEnd uint64
}

func (t *Table) name(i int) string {
	end := uint32(len(t.arena))
	if i+1 < len(t.nameOff) {
		end = t.nameOff[i+1]
	}
	return string(t.arena[t.nameOff[i]:end])
}

// ErrNoAddresses: kallsyms shows zero addresses (kptr_restrict, or not root).
var ErrNoAddresses = errors.New("/proc/kallsyms shows no addresses (kernel.kptr_restrict, or capsrec is not root)")

// LoadKallsyms reads /proc/kallsyms.
func LoadKallsyms() (*Table, error) {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return nil, fmt.Errorf("reading kernel symbols: %w", err)
	}
	defer f.Close()
	return Parse(f)
}

// Parse reads kallsyms text: "ADDR TYPE NAME [\t[MODULE]]" lines. It keeps text
// symbols only, so that a function ends where the next text symbol starts.
func Parse(r io.Reader) (*Table, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	t := &Table{addrs: make([]uint64, 0, 1<<17), nameOff: make([]uint32, 0, 1<<17), arena: make([]byte, 0, 2<<20)}
	nonzero := false
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			if errors.Is(err, bufio.ErrBufferFull) {
				continue // no symbol line is that long: skip it
			}
			return nil, fmt.Errorf("reading kernel symbols: %w", err)
		}
		if len(line) == 0 && err != nil {
			break
		}
		line = bytes.TrimSuffix(line, []byte{'\n'})
		if len(line) < 20 || line[16] != ' ' || line[18] != ' ' {
			continue
		}
		addr, ok := parseHex(line[:16])
		if !ok {
			continue
		}
		name := line[19:]
		if i := bytes.IndexByte(name, '\t'); i >= 0 {
			name = name[:i]
		}
		// The text's bounds whatever their type: arm64 places _etext past the
		// text, where kallsyms gives it read-only data's.
		switch string(name) {
		case "_stext":
			t.TextStart = addr
		case "_etext":
			t.TextEnd = addr
		}
		switch line[17] {
		case 't', 'T', 'w', 'W':
		default:
			continue
		}
		if addr != 0 {
			nonzero = true
		}
		t.addrs = append(t.addrs, addr)
		t.nameOff = append(t.nameOff, uint32(len(t.arena)))
		t.arena = append(t.arena, name...)
	}
	if !nonzero {
		return nil, ErrNoAddresses
	}
	t.addrs, t.nameOff, t.arena = slices.Clip(t.addrs), slices.Clip(t.nameOff), slices.Clip(t.arena)
	if !slices.IsSorted(t.addrs) {
		t.sort()
	}
	if t.TextStart == 0 || t.TextEnd <= t.TextStart {
		return nil, errors.New("kernel symbols lack _stext/_etext")
	}
	return t, nil
}

func parseHex(b []byte) (uint64, bool) {
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

func (t *Table) sort() {
	idx := make([]int, len(t.addrs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(t.addrs[a], t.addrs[b]) })
	// Sized up front: grown by append, the copies would hold twice the table.
	sorted := &Table{TextStart: t.TextStart, TextEnd: t.TextEnd, addrs: make([]uint64, 0, len(t.addrs)),
		nameOff: make([]uint32, 0, len(t.nameOff)), arena: make([]byte, 0, len(t.arena))}
	for _, j := range idx {
		sorted.addrs = append(sorted.addrs, t.addrs[j])
		sorted.nameOff = append(sorted.nameOff, uint32(len(sorted.arena)))
		sorted.arena = append(sorted.arena, t.name(j)...)
	}
	*t = *sorted
}

// baseName drops the compiler's suffixes: foo.isra.0, foo.constprop.0, foo.cold.
func baseName(name string) string {
	if i := strings.IndexByte(name, '.'); i > 0 {
		return name[:i]
	}
	return name
}

// Ranges are the functions of Kinds this kernel has, sorted, merged where they
// touch with the same kind, for the BPF table. A function ends where the next
// text symbol begins.
func (t *Table) Ranges() ([]Range, error) {
	var rs []Range
	for i := range t.addrs {
		k, ok := Kinds[baseName(t.name(i))]
		if !ok || t.addrs[i] < t.TextStart || t.addrs[i] >= t.TextEnd {
			continue
		}
		end := t.end(i, t.TextEnd)
		if n := len(rs); n > 0 && rs[n-1].Kind == k && rs[n-1].End == t.addrs[i] {
			rs[n-1].End = end
			continue
		}
		rs = append(rs, Range{Start: t.addrs[i], End: end, Kind: k})
	}
	if len(rs) > MaxRanges {
		return nil, fmt.Errorf("%d call-site ranges, more than the BPF table's %d", len(rs), MaxRanges)
	}
	if !hasPlumbing(rs) {
		return nil, errors.New("kernel symbols lack cap_capable")
	}
	return rs, nil
}

func hasPlumbing(rs []Range) bool {
	for _, r := range rs {
		if r.Kind == Plumbing {
			return true
		}
	}
	return false
}

// end is where symbol i's function ends: where the next text symbol at a
// higher address begins, else last.
func (t *Table) end(i int, last uint64) uint64 {
	for j := i + 1; j < len(t.addrs); j++ {
		if t.addrs[j] > t.addrs[i] {
			return t.addrs[j]
		}
	}
	return last
}

// OverlayRanges are overlayfs's functions (ovl_*, in the kernel or its
// overlay module), as sorted [Start, End) ranges, adjacent ones merged: a
// check under borrowed credentials with one of them on the stack is
// overlayfs's (its mounter's credentials).
func (t *Table) OverlayRanges() []Range {
	var rs []Range
	for i := range t.addrs {
		name := strings.TrimPrefix(baseName(t.name(i)), "__pfx_")
		if !strings.HasPrefix(name, "ovl_") {
			continue
		}
		end := t.end(i, t.addrs[i]+1)
		if n := len(rs); n > 0 && rs[n-1].End >= t.addrs[i] {
			rs[n-1].End = max(rs[n-1].End, end)
			continue
		}
		rs = append(rs, Range{Start: t.addrs[i], End: end})
	}
	return rs
}

// Func names the function holding the return address ip (module functions by
// their name alone); "" when ip is 0 or below every symbol.
func (t *Table) Func(ip uint64) string {
	if ip == 0 {
		return ""
	}
	// A return address may point just past a function that ends in a call.
	i, found := slices.BinarySearch(t.addrs, ip-1)
	if !found {
		i--
	}
	if i < 0 {
		return ""
	}
	return t.name(i)
}

// KindOf is the kind of the function holding the return address ip.
func (t *Table) KindOf(ip uint64) Kind { return Kinds[baseName(t.Func(ip))] }

// PassThrough tells whether the walk looks past a function of kind k.
func (k Kind) PassThrough() bool { return k == Glue || k == Plumbing }

// Frame is a learned pass-through frame: the return address into a glue or
// plumbing function, and how many bytes above its slot the caller's return
// address lies. Delta 0 means the walk cannot pass it (the kernel's unwinder does).
type Frame struct {
	Ret   uint64
	Delta int32
	Kind  Kind
}

// Anchor is where the fast walk starts: bytes above the BPF program's ctx, and
// the return address that slot must hold.
type Anchor struct {
	Offset int32
	Value  uint64
}

// Learner turns the kernel unwinder's return addresses, and the raw stack
// window the same check saw, into frame sizes for the fast walk. A frame size
// is a fact of the compiled code at one call (the stack a function has at that
// call), so what is learned once holds; two different sizes for one return
// address mean a misreading, and that frame is left to the unwinder.
type Learner struct {
	tab       *Table
	known     map[uint64]int32
	anchor    *Anchor
	Conflicts int
}

// NewLearner learns for the tracepoint and fexit, whose anchor is the
// program's ctx in the frame of the code that runs it.
func NewLearner(tab *Table) *Learner {
	return &Learner{tab: tab, known: map[uint64]int32{}}
}

// Learn reads one sample. ips are the unwinder's frames from the hook outwards
// (ips[0] is the BPF program), window the stack above the program's ctx. It
// returns the frames to add, and the anchor when it was learned just now.
func (l *Learner) Learn(ips, window []uint64) (frames []Frame, anchor *Anchor) {
	pos := make([]int, len(ips))
	first, next := -1, 0
	for i := 1; i < len(ips); i++ {
		pos[i] = -1
		j := slices.Index(window[min(next, len(window)):], ips[i])
		if j < 0 {
			if first < 0 {
				continue // its slot is below the anchor (the BPF program's own frame)
			}
			break // past the window
		}
		pos[i] = next + j
		next = pos[i] + 1
		if first < 0 {
			first = i
		}
	}
	if first < 0 {
		return nil, nil
	}
	want := Anchor{Offset: int32(pos[first] * 8), Value: ips[first]}
	switch {
	case l.anchor == nil:
		l.anchor = &want
		anchor = l.anchor
	case *l.anchor != want:
		return nil, nil // another layout (another trampoline): the anchor check sends it to the unwinder
	}
	for i := first; i < len(ips); i++ {
		k := l.tab.KindOf(ips[i])
		if !k.PassThrough() {
			break // the call site: the walk stops here
		}
		delta := int32(0)
		if i+1 < len(ips) && pos[i] >= 0 && pos[i+1] > pos[i] {
			delta = int32((pos[i+1] - pos[i]) * 8)
		}
		if old, ok := l.known[ips[i]]; ok {
			if old == delta || old == 0 {
				continue
			}
			l.Conflicts++
			delta = 0
		}
		l.known[ips[i]] = delta
		frames = append(frames, Frame{Ret: ips[i], Delta: delta, Kind: k})
		if delta == 0 {
			break
		}
	}
	return frames, anchor
}
