package callsite

import (
	"os"
	"strings"
	"testing"
)

// A kallsyms excerpt as 6.18 prints it: core text, a module, data symbols between.
const sample = `ffffffff81000000 T _stext
ffffffff81100000 t bpf_trace_run5
ffffffff81100200 t __bpf_trace_cap_capable
ffffffff81100280 T cap_capable
ffffffff81100400 T security_capable
ffffffff81100480 T security_vm_enough_memory_mm
ffffffff81100600 T ns_capable_noaudit
ffffffff81100680 T ns_capable
ffffffff81100700 T capable
ffffffff81100780 t do_syslog.part.0
ffffffff81100900 t cap_capset.isra.0
ffffffff81100a00 D some_data
ffffffff81100b00 T generic_permission
ffffffff82000000 T _etext
ffffffffc0000000 t ovl_copy_up_one	[overlay]
`

func TestRangesAndNames(t *testing.T) {
	tab, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := tab.Ranges()
	if err != nil {
		t.Fatal(err)
	}
	want := []Range{
		{0xffffffff81100000, 0xffffffff81100280, Glue}, // bpf_trace_run5 and __bpf_trace_cap_capable, merged
		{0xffffffff81100280, 0xffffffff81100480, Plumbing},
		{0xffffffff81100480, 0xffffffff81100600, Probe},
		{0xffffffff81100600, 0xffffffff81100780, Plumbing}, // ns_capable_noaudit is plumbing: its caller decides
		{0xffffffff81100900, 0xffffffff81100b00, Capset},   // cap_capset.isra.0: suffix ignored; data symbols do not end it
	}
	if len(rs) != len(want) {
		t.Fatalf("ranges = %x, want %x", rs, want)
	}
	for i := range want {
		if rs[i] != want[i] {
			t.Errorf("range %d = %x, want %x", i, rs[i], want[i])
		}
	}
	for ip, name := range map[uint64]string{
		0xffffffff81100790: "do_syslog.part.0",
		0xffffffff81100780: "ns_capable+end", // a return address just past a function's last call
		0xffffffffc0000010: "ovl_copy_up_one",
		0:                  "",
	} {
		if name == "ns_capable+end" {
			name = "capable"
		}
		if got := tab.Func(ip); got != name {
			t.Errorf("Func(%x) = %q, want %q", ip, got, name)
		}
	}
	if k := tab.KindOf(0xffffffff81100904); k != Capset {
		t.Errorf("cap_capset.isra.0 kind %d", k)
	}
}

func TestBadKallsyms(t *testing.T) {
	var hidden strings.Builder // what kptr_restrict shows: every address 0
	for _, line := range strings.SplitAfter(sample, "\n") {
		if len(line) > 16 {
			line = strings.Repeat("0", 16) + line[16:]
		}
		hidden.WriteString(line)
	}
	for name, text := range map[string]string{
		"kptr_restrict": hidden.String(),
		"no _etext":     strings.ReplaceAll(sample, "_etext", "other"),
	} {
		if _, err := Parse(strings.NewReader(text)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// The running kernel's symbols: every function the walk must know is there
// under one of its names, and the table fits the BPF map.
func TestThisKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("kallsyms shows addresses to root only")
	}
	tab, err := LoadKallsyms()
	if err != nil {
		t.Fatal(err)
	}
	rs, err := tab.Ranges()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[Kind]int{}
	for _, r := range rs {
		kinds[r.Kind]++
	}
	for _, k := range []Kind{Plumbing, Capset, Probe} {
		if kinds[k] == 0 {
			t.Errorf("no function of kind %d in this kernel's symbols", k)
		}
	}
}

// A tracepoint sample: the BPF program, bpf_trace_run5, cap_capable,
// security_capable, ns_capable, then the caller do_syslog; the window holds
// locals and saved registers between the return addresses.
func TestLearner(t *testing.T) {
	tab, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	const (
		prog    = 0xffffffffc0001234
		intoRun = 0xffffffff81100010 // bpf_trace_run5: its slot is below the anchor
		intoTP  = 0xffffffff81100210 // __bpf_trace_cap_capable
		intoCap = 0xffffffff81100300 // cap_capable
		intoSec = 0xffffffff81100420 // security_capable
		intoNs  = 0xffffffff811006a0 // ns_capable
		site    = 0xffffffff811007a0 // do_syslog
	)
	ips := []uint64{prog, intoRun, intoTP, intoCap, intoSec, intoNs, site}
	window := []uint64{1, 2, intoTP, 7, intoCap, 0, 0, intoSec, 5, intoNs, site, 9}
	l := NewLearner(tab)
	frames, anchor := l.Learn(ips, window)
	if anchor == nil || *anchor != (Anchor{Offset: 16, Value: intoTP}) {
		t.Fatalf("anchor = %+v", anchor)
	}
	want := []Frame{{intoTP, 16, Glue}, {intoCap, 24, Plumbing}, {intoSec, 16, Plumbing}, {intoNs, 8, Plumbing}}
	if len(frames) != len(want) {
		t.Fatalf("frames = %+v, want %+v", frames, want)
	}
	for i := range want {
		if frames[i] != want[i] {
			t.Errorf("frame %d = %+v, want %+v", i, frames[i], want[i])
		}
	}
	// The same sample again teaches nothing new; one that disagrees on a frame
	// size leaves that frame to the unwinder.
	if f, a := l.Learn(ips, window); len(f) != 0 || a != nil {
		t.Errorf("relearned %+v %+v", f, a)
	}
	other := []uint64{1, 2, intoTP, 7, intoCap, 0, intoSec, 5, 5, intoNs, site}
	f, _ := l.Learn(ips, other)
	if len(f) != 1 || f[0].Ret != intoCap || f[0].Delta != 0 || l.Conflicts != 1 {
		t.Errorf("a conflicting size: %+v, %d conflicts", f, l.Conflicts)
	}
	// A sample whose first slot differs (another trampoline) teaches nothing.
	if f, a := l.Learn(ips, append([]uint64{0}, window...)); f != nil || a != nil {
		t.Errorf("another anchor taught %+v %+v", f, a)
	}
}

// arm64's kallsyms gives _etext, placed past the text, read-only data's type.
func TestTextBoundsOfAnyType(t *testing.T) {
	arm64 := "ffff800008010000 T _stext\nffff800008010100 T cap_capable\nffff800008e10000 R _etext\n"
	tab, err := Parse(strings.NewReader(arm64))
	if err != nil {
		t.Fatal(err)
	}
	if tab.TextStart != 0xffff800008010000 || tab.TextEnd != 0xffff800008e10000 {
		t.Errorf("text %x-%x", tab.TextStart, tab.TextEnd)
	}
}

// overlayfs's text: its functions in the kernel (with their __pfx_ padding)
// and in its module, adjacent ones merged.
func TestOverlayRanges(t *testing.T) {
	tab, err := Parse(strings.NewReader(`ffffffff81000000 T _stext
ffffffff81200000 t __pfx_ovl_permission
ffffffff81200010 t ovl_permission
ffffffff81200100 T ovl_override_creds
ffffffff81200200 T generic_permission
ffffffff81300000 t ovl_check_namelen.cold
ffffffff81300040 t xfs_attr3_leaf_compact.cold
ffffffff82000000 T _etext
ffffffffc0000000 t ovl_copy_up_one	[overlay]
ffffffffc0000400 t ovl_copy_up_data	[overlay]
ffffffffc0000800 t other_module_fn	[other]
`))
	if err != nil {
		t.Fatal(err)
	}
	got := tab.OverlayRanges()
	want := []Range{{Start: 0xffffffff81200000, End: 0xffffffff81200200}, {Start: 0xffffffff81300000, End: 0xffffffff81300040},
		{Start: 0xffffffffc0000000, End: 0xffffffffc0000800}}
	if len(got) != len(want) {
		t.Fatalf("ranges %x, want %x", got, want)
	}
	for i := range want {
		if got[i].Start != want[i].Start || got[i].End != want[i].End {
			t.Errorf("range %d = [%#x, %#x), want [%#x, %#x)", i, got[i].Start, got[i].End, want[i].Start, want[i].End)
		}
	}
}
