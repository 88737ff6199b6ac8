// Package bpfstats reads what the kernel counts of the programs on
// cap_capable (kernel.bpf_stats_enabled): their run time per check, without
// the reader's share of the CPU, steadier than wall time on a shared machine.
package bpfstats

import (
	"strings"
	"time"

	"github.com/cilium/ebpf"
)

// capPrograms are the programs on cap_capable, by the prefix of their names
// the kernel keeps (15 characters; cilium/ebpf may give back the whole name).
var capPrograms = []string{"tp_cap_capable", "fexit_cap_capab", "kprobe_cap_capa", "kretprobe_cap_c", "noop_cap_capabl", "floor_cap_capab", "peer_capable_en", "peer_capable_ex"}

func isCapProgram(name string) bool {
	for _, p := range capPrograms {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// NsPerRun sums the run time of the programs on cap_capable over the checks
// they ran for: what the hook costs, without the reader.
func NsPerRun() float64 {
	var total time.Duration
	var runs uint64
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			break
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		info, ierr := p.Info()
		st, serr := p.Stats()
		p.Close()
		if ierr != nil || serr != nil || !isCapProgram(info.Name) {
			continue
		}
		total += st.Runtime
		runs = max(runs, st.RunCount)
	}
	if runs == 0 {
		return 0
	}
	return float64(total.Nanoseconds()) / float64(runs)
}
