package cli

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/cilium/ebpf/rlimit"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/textsafe"
	"github.com/capsrec/capsrec/session"
)

var doctorCommand = &cli.Command{
	Name:  "doctor",
	Usage: "say what this machine supports: kernel, BTF, privileges and which attach methods really work",
	Action: func(c *cli.Context) error {
		if c.NArg() > 0 {
			return fmt.Errorf("doctor takes no arguments, got %q", c.Args().First())
		}
		w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
		defer w.Flush()
		var uts unix.Utsname
		_ = unix.Uname(&uts)
		fmt.Fprintf(w, "kernel\t%s\n", unix.ByteSliceToString(uts.Release[:]))

		var cfg session.Options
		if err := loadBTFFlag(c, &cfg); err != nil {
			fmt.Fprintf(w, "btf\tfails: %v\n", err)
			return cli.Exit("", 1)
		}
		kernel, err := session.KernelSpec(cfg.KernelBTF)
		switch {
		case err != nil:
			fmt.Fprintf(w, "btf\tmissing: %v\n", err)
		case cfg.KernelBTF != nil:
			fmt.Fprintf(w, "btf\t%s (--btf)\n", c.String("btf"))
		default:
			fmt.Fprintf(w, "btf\t/sys/kernel/btf/vmlinux\n")
		}
		if kernel != nil {
			fmt.Fprintf(w, "cap_capable opts\t%s\n", session.CapCapableOpts(kernel))
		}
		if cri, err := session.DialRuntime(c.String("runtime-endpoint"), nil); err != nil {
			fmt.Fprintf(w, "container runtime\tnone: %s\n", textsafe.OneLine(err.Error()))
		} else {
			fmt.Fprintf(w, "container runtime\t%s %s at %s\n", cri.RuntimeName, cri.RuntimeVersion, cri.Endpoint)
			cri.Close()
		}
		if err := needRoot("doctor"); err != nil {
			fmt.Fprintf(w, "privileges\tneither root nor CAP_BPF + CAP_PERFMON: attach methods cannot be tested\n")
			return cli.Exit("", 1)
		}
		fmt.Fprintf(w, "privileges\t%s\n", privileges())
		if err := rlimit.RemoveMemlock(); err != nil {
			fmt.Fprintf(w, "memlock\tfails: %v\n", err)
		}
		if err != nil {
			return cli.Exit("", 1)
		}
		works := 0
		for _, m := range core.Methods {
			if err := session.TryAttach(cfg.KernelBTF, m, false); err != nil {
				fmt.Fprintf(w, "attach %s\tfails: %s\n", m, err)
				continue
			}
			works++
			fmt.Fprintf(w, "attach %s\tworks\n", m)
		}
		if err := session.TryAttach(cfg.KernelBTF, core.MethodAuto, true); err != nil {
			fmt.Fprintf(w, "process tracking\tfails: %s\n", err)
		} else {
			fmt.Fprintf(w, "process tracking\tworks (sched_process_exec/fork/exit)\n")
		}
		if works == 0 {
			return cli.Exit("", 1)
		}
		return nil
	},
}

// privileges says with what capsrec runs, and what a non-root user lacks of
// what recording as root gives (README: the capabilities instead of root).
func privileges() string {
	eff, ok := effectiveCaps()
	if os.Geteuid() == 0 || !ok {
		return "root"
	}
	var missing []string
	for _, c := range []struct {
		cap  int
		name string
		for_ string
	}{
		{unix.CAP_SYSLOG, "CAP_SYSLOG", "call sites: without it probes count as needs"},
		{unix.CAP_SYS_PTRACE, "CAP_SYS_PTRACE", "other users' /proc/PID/exe: the runtime's process tree"},
		{unix.CAP_DAC_OVERRIDE, "CAP_DAC_OVERRIDE", "the runtime's socket: pod names"},
	} {
		if eff&(1<<c.cap) == 0 {
			missing = append(missing, c.name+" ("+c.for_+")")
		}
	}
	s := fmt.Sprintf("uid %d with CAP_BPF and CAP_PERFMON", os.Geteuid())
	if len(missing) > 0 {
		s += "; lacks " + strings.Join(missing, ", ")
	}
	return s
}
