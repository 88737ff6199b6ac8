// Command bench measures what capsrec adds to each capability check, against
// no hook and against a no-op BPF program on the same hook, in one run so
// that the ratios hold on a noisy machine. `make bench` runs it.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/capsrec/capsrec/bench/peer"
	"github.com/capsrec/capsrec/bpf"
	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/bpfstats"
	"github.com/capsrec/capsrec/recorder/ring"
	"github.com/capsrec/capsrec/tetragon"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "checker" {
		os.Exit(checker(os.Args[2:]))
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// checker N RATE: N syslog(SIZE_BUFFER) calls, each one CAP_SYSLOG check under
// dmesg_restrict, at RATE per second (0: as fast as it can). Prints ns per call.
// With CAPSREC_BENCH_CHECK=mmap (-check mmap) each call is a private writable
// one-page mmap and its munmap: one CAP_SYS_ADMIN check the kernel's
// overcommit accounting makes, a probe capsrec hides.
func checker(args []string) int {
	n, _ := strconv.Atoi(args[0])
	rate, _ := strconv.Atoi(args[1])
	mmap := os.Getenv("CAPSREC_BENCH_CHECK") == "mmap"
	runtime.LockOSThread()
	start := time.Now()
	for i := range n {
		if mmap {
			addr, _, _ := syscall.RawSyscall6(syscall.SYS_MMAP, 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE,
				syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS, ^uintptr(0), 0)
			syscall.RawSyscall(syscall.SYS_MUNMAP, addr, 4096, 0)
		} else {
			syscall.RawSyscall(syscall.SYS_SYSLOG, 10, 0, 0)
		}
		if rate > 0 && i%256 == 0 {
			due := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
			for time.Now().Before(due) {
			}
		}
	}
	fmt.Println(time.Since(start).Nanoseconds() / int64(n))
	return 0
}

type result struct {
	bpfNs               float64 // the BPF program's own run time per check (bpf_stats), 0 if unknown
	bpfRuns             []float64
	name                string
	nsPerCheck          []float64
	printed, lost, seen int
	eventsPerSec        float64
	rssKiB              int64
	ready               time.Duration
	checks              int
}

var (
	checks     = flag.Int("n", 2_000_000, "checks per run")
	rounds     = flag.Int("rounds", 3, "rounds; each scenario's median is reported")
	out        = flag.String("write", "", "also write the results as Markdown to this file")
	capsBin    = flag.String("capsrec", "", "capsrec binary (default: build one)")
	methods    = flag.String("methods", "", "attach methods to measure capsrec with, comma-separated (default: auto only)")
	onlyProf   = flag.Bool("profile-only", false, "measure only capsrec profile")
	check      = flag.String("check", "syslog", "the check each call makes: syslog (CAP_SYSLOG, shown) or mmap (CAP_SYS_ADMIN of overcommit accounting, a hidden probe)")
	only       = flag.String("only", "", "run only the scenarios whose name matches this regexp (with the no-recorder and no-op baselines)")
	before     = flag.String("before", "", "an earlier capsrec binary: its rows run beside today's")
	beforeName = flag.String("before-name", "before", "what the -before rows are called")
	soakFor    = flag.Duration("soak", 0, "only the soak: record while processes churn this long, sampling RSS each minute")
)

func run() error {
	flag.Parse()
	if os.Geteuid() != 0 {
		return errors.New("needs root")
	}
	switch *check {
	case "syslog", "mmap":
		os.Setenv("CAPSREC_BENCH_CHECK", *check) // the checkers inherit it
	default:
		return fmt.Errorf("-check %q: want syslog or mmap", *check)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return err
	}
	// The BPF programs' own run time per check: the reader's share of the CPU is
	// not in it, so it holds steadier than ns/check on a shared machine.
	if st, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err == nil {
		defer st.Close()
	}
	restore, err := setDmesgRestrict()
	if err != nil {
		return err
	}
	defer restore()
	bin := *capsBin
	if bin == "" {
		// go build needs the module; under `go run` the working directory is its root.
		dir, err := os.MkdirTemp("", "capsrec-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "capsrec")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}

	if *soakFor > 0 {
		table, err := soak(bin, *soakFor)
		if err != nil {
			return err
		}
		fmt.Print(table)
		if *out != "" {
			return os.WriteFile(*out, []byte(table), 0o644)
		}
		return nil
	}
	if *onlyProf {
		for _, n := range []int{100_000, 1_000_000} {
			line, err := benchProfile(bin, n)
			if err != nil {
				return err
			}
			fmt.Println(line)
		}
		return nil
	}

	type scenario struct {
		name string
		n    int
		run  func(n int) (*result, error)
	}
	capsrec := func(args ...string) func(int) (*result, error) {
		return func(n int) (*result, error) {
			return runCapsrec(bin, self, n, 0, append([]string{"record"}, args...)...)
		}
	}
	pacedRecord := func(args ...string) func(int) (*result, error) {
		return func(n int) (*result, error) {
			return runCapsrec(bin, self, n, 200_000, append([]string{"record"}, args...)...)
		}
	}
	live := func(args ...string) func(int) (*result, error) {
		return func(n int) (*result, error) {
			return runCapsrec(bin, self, n, 0, append([]string{"profile", "--live", "-o", "json"}, args...)...)
		}
	}
	// An earlier capsrec (-before), same runs otherwise.
	withBefore := func(paced int, args ...string) func(int) (*result, error) {
		return func(n int) (*result, error) { return runCapsrec(*before, self, n, paced, args...) }
	}
	// The program as it was before call-site classification: the baseline of its cost target.
	noCallSites := func(run func(int) (*result, error)) func(int) (*result, error) {
		return func(n int) (*result, error) {
			os.Setenv("CAPSREC_BENCH_NO_CALL_SITES", "1")
			defer os.Unsetenv("CAPSREC_BENCH_NO_CALL_SITES")
			return run(n)
		}
	}
	scenarios := []scenario{{"no recorder", *checks, func(n int) (*result, error) { return runChecker(self, n, 0) }}}
	// The no-op floor sits on the tracepoint, which older kernels lack.
	if noop, err := bpf.OpenNoop(); err == nil {
		noop.Close()
		scenarios = append(scenarios, scenario{"no-op BPF program (floor)", *checks, runNoop},
			scenario{"record floor: reserve, stamp, submit", *checks, runRecordFloor})
	}
	if *methods == "" {
		scenarios = append(scenarios,
			scenario{"capsrec -o json, no call sites (before)", *checks, noCallSites(capsrec("-o", "json"))},
			scenario{"capsrec -o json > /dev/null", *checks, capsrec("-o", "json")},
			// At full speed both lose checks, and a lost check costs the program little:
			// the BPF cost of a recorded check is compared where nothing is lost.
			scenario{"json at 200k/s, no call sites (before)", 400_000, noCallSites(pacedRecord("-o", "json"))},
			scenario{"json at 200k/s, with call sites", 400_000, pacedRecord("-o", "json")},
			scenario{"capsrec -o compact > /dev/null", *checks, capsrec("-o", "compact")},
			scenario{"capsrec, all filtered in kernel, no call sites (before)", *checks, noCallSites(capsrec("-o", "json", "--cap", "chown"))},
			scenario{"capsrec, all filtered in kernel (--cap chown)", *checks, capsrec("-o", "json", "--cap", "chown")},
			scenario{"capsrec profile --live (counted in kernel)", *checks, live()})
		if *before != "" {
			scenarios = append(scenarios,
				scenario{*beforeName + ": -o json > /dev/null", *checks, withBefore(0, "record", "-o", "json")},
				scenario{*beforeName + ": json at 200k/s", 400_000, withBefore(200_000, "record", "-o", "json")},
				scenario{*beforeName + ": -o compact > /dev/null", *checks, withBefore(0, "record", "-o", "compact")},
				scenario{*beforeName + ": profile --live", *checks, withBefore(0, "profile", "--live", "-o", "json")})
		}
	}
	for _, m := range strings.Split(*methods, ",") {
		if m == "" {
			continue
		}
		scenarios = append(scenarios,
			scenario{"capsrec --attach " + m + " -o json > /dev/null", *checks, capsrec("--attach", m, "-o", "json")},
			// What classifying call sites costs on this architecture (arm64: the kernel's unwinder, always).
			scenario{"capsrec --attach " + m + " -o json, no call sites", *checks, noCallSites(capsrec("--attach", m, "-o", "json"))},
			scenario{"capsrec --attach " + m + ", all filtered in kernel", *checks, capsrec("--attach", m, "-o", "json", "--cap", "chown")},
			scenario{"capsrec profile --live --attach " + m, *checks, live("--attach", m)})
		if m == "kprobe" {
			scenarios = append(scenarios, scenario{"peer: libbpf-tools capable (kprobe, perf buffer)", *checks, runCapablePeer})
		}
	}
	// bpftrace's tracepoint probes need tracefs mounted; the bench does not mount it (it leaves the host as it is).
	_, tracefs := os.Stat("/sys/kernel/tracing/events/capability/cap_capable")
	if _, err := exec.LookPath("bpftrace"); err == nil && *methods == "" && tracefs != nil {
		fmt.Fprintln(os.Stderr, "bench: bpftrace left out: tracefs is not mounted at /sys/kernel/tracing")
	}
	if _, err := exec.LookPath("bpftrace"); err == nil && *methods == "" && tracefs == nil {
		scenarios = append(scenarios, scenario{"bpftrace printf > /dev/null", max(*checks/20, 10000), func(n int) (*result, error) { return runBpftrace(self, n) }})
	}
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			return fmt.Errorf("-only: %w", err)
		}
		kept := scenarios[:0]
		for i, sc := range scenarios {
			if i < 2 || re.MatchString(sc.name) {
				kept = append(kept, sc)
			}
		}
		scenarios = kept
	}
	results := map[string]*result{}
	for r := range *rounds {
		for _, s := range scenarios {
			res, err := s.run(s.n)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			fmt.Fprintf(os.Stderr, "round %d: %-48s %6.0f ns/check\n", r+1, s.name, res.nsPerCheck[0])
			if prev := results[s.name]; prev != nil {
				prev.nsPerCheck = append(prev.nsPerCheck, res.nsPerCheck...)
				prev.bpfRuns = append(prev.bpfRuns, res.bpfNs)
				prev.bpfNs = median(prev.bpfRuns)
				prev.lost += res.lost
				prev.rssKiB = max(prev.rssKiB, res.rssKiB)
				prev.ready = max(prev.ready, res.ready)
				prev.eventsPerSec = max(prev.eventsPerSec, res.eventsPerSec)
			} else {
				res.name = s.name
				res.bpfRuns = []float64{res.bpfNs}
				results[s.name] = res
			}
		}
	}
	var paced *result
	if *methods == "" {
		// Zero loss at a steady 200,000 checks/s, the target rate.
		if paced, err = runCapsrec(bin, self, 400_000, 200_000, "record", "-o", "json"); err != nil {
			return err
		}
		paced.name = "capsrec -o json, paced at 200,000 checks/s"
	}

	var profLines []string
	if *methods == "" {
		for _, n := range []int{100_000, 1_000_000} {
			line, err := benchProfile(bin, n)
			if err != nil {
				return fmt.Errorf("capsrec profile: %w", err)
			}
			profLines = append(profLines, line)
		}
	}

	var ordered []*result
	for _, s := range scenarios {
		ordered = append(ordered, results[s.name])
	}
	report := format(ordered, paced)
	if len(profLines) > 0 {
		report += "\n" + strings.Join(profLines, "\n") + "\n"
	}
	fmt.Print(report)
	if *out != "" {
		return os.WriteFile(*out, []byte(benchmarksHeader()+report+"```\n"), 0o644)
	}
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func format(rs []*result, paced *result) string {
	base, floor := median(rs[0].nsPerCheck), 0.0
	if strings.HasPrefix(rs[1].name, "no-op") {
		floor = median(rs[1].nsPerCheck)
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', tabwriter.Debug)
	fmt.Fprintln(w, "scenario\tns/check\tadded ns/check\tadded / no-op's\t/ no recorder\tBPF ns/check\tevents/s delivered\tlost\tpeak RSS\tready")
	for _, r := range rs {
		ns := median(r.nsPerCheck)
		added := ns - base
		ratio := "-"
		if floor-base > 0 && r != rs[0] {
			ratio = fmt.Sprintf("%.2fx", added/(floor-base))
		}
		cells := []string{r.name, fmt.Sprintf("%.0f", ns), fmt.Sprintf("%.0f", added), ratio, fmt.Sprintf("%.2fx", ns/base), "-", "-", "-", "-", "-"}
		if r.bpfNs > 0 {
			cells[5] = fmt.Sprintf("%.0f", r.bpfNs)
		}
		if r.rssKiB > 0 || r.eventsPerSec > 0 {
			cells[6] = fmt.Sprintf("%.0f", r.eventsPerSec)
			cells[7] = strconv.Itoa(r.lost)
		}
		if r.rssKiB > 0 {
			cells[8] = fmt.Sprintf("%.1f MiB", float64(r.rssKiB)/1024)
			if r.ready > 0 {
				cells[9] = fmt.Sprintf("%d ms", r.ready.Milliseconds())
			}
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
	w.Flush()
	if paced != nil {
		fmt.Fprintf(&b, "\n%s: %d checks, %d printed, %d lost, peak RSS %.1f MiB\n", paced.name, paced.checks, paced.printed, paced.lost, float64(paced.rssKiB)/1024)
	}
	return b.String()
}

func benchmarksHeader() string {
	var uts syscall.Utsname
	_ = syscall.Uname(&uts)
	release := make([]byte, 0, len(uts.Release))
	for _, c := range uts.Release {
		if c == 0 {
			break
		}
		release = append(release, byte(c))
	}
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if name, ok := strings.CutPrefix(sc.Text(), "model name\t: "); ok {
				cpu = name
				break
			}
		}
		f.Close()
	}
	return fmt.Sprintf("## On this machine's kernel\n\nWritten by `make bench` on %s: kernel %s, %d CPUs (%s), Go %s.\n"+
		"Each check is one `syslog(SYSLOG_ACTION_SIZE_BUFFER)` made by root under `kernel.dmesg_restrict=1`: one granted CAP_SYSLOG check.\n"+
		"Scenarios run interleaved, %d rounds, medians shown; \"added\" is against the no-recorder run of the same round set.\n\n```\n",
		time.Now().UTC().Format("2006-01-02"), release, runtime.NumCPU(), cpu, runtime.Version(), *rounds)
}

func setDmesgRestrict() (func(), error) {
	const knob = "/proc/sys/kernel/dmesg_restrict"
	old, err := os.ReadFile(knob)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(knob, []byte("1"), 0o644); err != nil {
		return nil, err
	}
	return func() { _ = os.WriteFile(knob, old, 0o644) }, nil
}

func runChecker(self string, n, rate int) (*result, error) {
	out, err := exec.Command(self, "checker", strconv.Itoa(n), strconv.Itoa(rate)).Output()
	if err != nil {
		return nil, fmt.Errorf("checker: %w", err)
	}
	ns, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return nil, err
	}
	return &result{nsPerCheck: []float64{ns}, checks: n}, nil
}

// runCapablePeer prices libbpf-tools' capable (kprobe + kretprobe, a perf
// buffer, one formatted line per check) on the same checks.
func runCapablePeer(n int) (*result, error) {
	c, err := peer.Open(io.Discard)
	if err != nil {
		return nil, err
	}
	self, _ := os.Executable()
	res, err := runChecker(self, n, 0)
	bpfNs := bpfstats.NsPerRun()
	c.Close()
	if err == nil {
		res.bpfNs = bpfNs
		res.printed, res.lost = int(c.Events), int(c.Lost)
		res.eventsPerSec = float64(res.printed) / (res.nsPerCheck[0] * float64(n) / 1e9)
	}
	return res, err
}

func runNoop(n int) (*result, error) {
	s, err := bpf.OpenNoop()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	self, _ := os.Executable()
	res, err := runChecker(self, n, 0)
	if err == nil {
		res.bpfNs = bpfstats.NsPerRun()
	}
	return res, err
}

// runRecordFloor: a program that only reserves, stamps and submits one record
// per check, drained as capsrec drains its ring: the least any design that
// sends a record per check pays on this kernel.
func runRecordFloor(n int) (*result, error) {
	s, err := bpf.OpenRecordFloor()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	rd, err := ring.New(s.Events())
	if err != nil {
		return nil, err
	}
	var stop atomic.Bool
	done := make(chan int)
	go func() {
		defer rd.Close()
		got := 0
		for !stop.Load() {
			if ok, _ := rd.Wait(time.Millisecond); ok {
				k, _ := rd.Read(func([]byte) error { return nil })
				got += k
			}
		}
		done <- got
	}()
	self, _ := os.Executable()
	res, err := runChecker(self, n, 0)
	stop.Store(true)
	got := <-done
	if err != nil {
		return nil, err
	}
	res.bpfNs = bpfstats.NsPerRun()
	res.printed, res.lost = got, max(0, n-got)
	res.eventsPerSec = float64(got) / (res.nsPerCheck[0] * float64(n) / 1e9)
	return res, nil
}

var summaryRE = regexp.MustCompile(`(\d+) checks? seen, (?:\d+ sent whole, )?(\d+) (?:printed|aggregated), (\d+) filtered, (\d+) lost`)

func runCapsrec(bin, self string, n, rate int, args ...string) (*result, error) {
	dir, err := os.MkdirTemp("", "capsrec-bench-ready-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ready := filepath.Join(dir, "ready")
	cmd := exec.Command(bin, append(args, "--ready-file", ready)...)
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	defer devnull.Close()
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = devnull, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Since(start) > 30*time.Second {
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("capsrec not ready: %s", stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	readyAfter := time.Since(start)
	res, err := runChecker(self, n, rate)
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	res.bpfNs = bpfstats.NsPerRun()
	time.Sleep(200 * time.Millisecond)
	_ = cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("capsrec: %v: %s", err, stderr.String())
	}
	m := summaryRE.FindStringSubmatch(stderr.String())
	if m == nil {
		return nil, fmt.Errorf("no summary from capsrec: %s", stderr.String())
	}
	res.seen, _ = strconv.Atoi(m[1])
	res.printed, _ = strconv.Atoi(m[2])
	res.lost, _ = strconv.Atoi(m[4])
	res.ready = readyAfter
	res.eventsPerSec = float64(res.printed) / (res.nsPerCheck[0] * float64(n) / 1e9)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.rssKiB = ru.Maxrss
	}
	return res, nil
}

func runBpftrace(self string, n int) (*result, error) {
	cmd := exec.Command("bpftrace", "-e", `tracepoint:capability:cap_capable { printf("%d %s %d %d\n", pid, comm, args->cap, args->ret); }`)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// bpftrace prints "Attaching 1 probe..." once attached; the rest is thrown away, as > /dev/null would.
	attached := make(chan struct{})
	go func() {
		r := bufio.NewReader(stdout)
		if line, _ := r.ReadString('\n'); strings.HasPrefix(line, "Attaching") {
			close(attached)
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	select {
	case <-attached:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return nil, errors.New("bpftrace did not attach")
	}
	res, err := runChecker(self, n, 0)
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
	return res, err
}

// benchProfile writes n capsrec JSON events of 80 containers and 10 host
// binaries, and times capsrec profile over them.
func benchProfile(bin string, n int) (string, error) {
	f, err := os.CreateTemp("", "capsrec-bench-events-*.json")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	w := tetragon.NewWriter(f, "node-1", [core.NSCount]uint32{})
	capList := []int32{0, 1, 10, 12, 13, 21, 34, 7}
	start := time.Unix(1_800_000_000, 0)
	procs := make([]*core.Process, 90)
	for i := range procs {
		procs[i] = &core.Process{Tgid: uint32(1000 + i), ExecID: "ZXhlYw==", Binary: fmt.Sprintf("/usr/bin/app%d", i%10), Cwd: "/", Flags: "execve"}
	}
	for i := range n {
		c := &core.Check{Time: start.Add(time.Duration(i) * time.Microsecond), Process: procs[i%90], Tid: uint32(1000 + i%90),
			Cap: capList[i%len(capList)], Ret: -int32(i % 3 / 2), Method: core.MethodFexit, AuditKnown: true, Audit: i%5 != 0, Syscall: 16}
		if k := i % 90; k < 80 {
			c.Container = &core.Container{ID: "0123456789abcdef0123456789abcdef", Runtime: "containerd", Name: fmt.Sprintf("c%d", k%2),
				ImageName: "registry/app:1", Pod: &core.Pod{Namespace: "ns" + strconv.Itoa(k%4), Name: fmt.Sprintf("web%d-7d4b9c8f6d-x2x9z", k/2)}}
		}
		if err := w.Write(c); err != nil {
			return "", err
		}
	}
	if err := w.Flush(); err != nil {
		return "", err
	}
	fi, _ := f.Stat()
	f.Close()
	cmd := exec.Command(bin, "profile", "-o", "json", f.Name())
	cmd.Stdout = io.Discard
	var stderr strings.Builder
	cmd.Stderr = &stderr
	t := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%v: %s", err, stderr.String())
	}
	took := time.Since(t)
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss
	}
	return fmt.Sprintf("capsrec profile over %d events (%.0f MiB, 90 subjects): %.0f events/s, peak RSS %.1f MiB",
		n, float64(fi.Size())/(1<<20), float64(n)/took.Seconds(), float64(rss)/1024), nil
}
