package session

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/capsrec/capsrec/bpf"
	"github.com/capsrec/capsrec/enrich"
	"github.com/capsrec/capsrec/internal/callsite"
	"github.com/capsrec/capsrec/internal/runtimes"
	"github.com/capsrec/capsrec/internal/textsafe"
)

// classifyChecks gives the programs the call-site table from /proc/kallsyms and
// the container runtime binaries. Without symbols every check counts as a need:
// nothing is hidden that cannot be classified.
// It returns the runtime binaries' paths (by the kernel's mark less one) and
// what gives the kernel's symbols once they are read (nil without call sites).
func classifyChecks(opts *Options, cfg *bpf.Config, tree runtimes.Tree) (runtimePaths []string, symbols func() *callsite.Table, err error) {
	bins, err := runtimes.Find(opts.RuntimeBinaries, tree.Servers...)
	if err != nil {
		return nil, nil, err
	}
	cfg.RuntimeExes, cfg.RuntimeSizes = map[bpf.ExeKey]uint8{}, map[uint32]uint64{}
	for i, b := range bins {
		cfg.RuntimeExes[bpf.ExeKey{Ino: b.Ino, Dev: b.Dev}] = uint8(i + 1)
		cfg.RuntimeSizes[uint32(i+1)] = uint64(b.Size)
	}
	cfg.BeforeChecks = func(s *bpf.Session) error { return markRuntimeTree(opts.Stderr, s, bins, tree) }
	runtimePaths = runtimes.Paths(bins)

	if os.Getenv("CAPSREC_BENCH_NO_CALL_SITES") != "" {
		return runtimePaths, nil, nil // make bench: the program as it was before call sites, for the ratio
	}
	// Tests check every fast walk against the kernel's unwinder.
	if n, err := strconv.ParseUint(os.Getenv("CAPSREC_VERIFY_CALL_SITES"), 10, 32); err == nil {
		cfg.VerifyEvery = uint32(n)
	}
	// /proc/kallsyms takes 50-100 ms to read and parse: while the verifier works.
	type loaded struct {
		syms  *callsite.Table
		table bpf.SiteTable
	}
	done := make(chan loaded, 1)
	go func() {
		var l loaded
		syms, err := callsite.LoadKallsyms()
		var ranges []callsite.Range
		if err == nil {
			ranges, err = syms.Ranges()
		}
		if err != nil {
			fmt.Fprintf(opts.Stderr, "capsrec: warning: no call sites (%v): probes count as needs\n", err)
			done <- l
			return
		}
		l.syms = syms
		l.table.TextStart, l.table.TextEnd = syms.TextStart, syms.TextEnd
		for _, r := range ranges {
			l.table.Ranges = append(l.table.Ranges, bpf.SiteRange{Start: r.Start, End: r.End, Kind: uint32(r.Kind)})
		}
		for _, r := range syms.OverlayRanges() {
			l.table.Overlay = append(l.table.Overlay, bpf.SiteRange{Start: r.Start, End: r.End})
		}
		l.table.OverlayKnown = true
		debug.FreeOSMemory() // reading 5 MB of text left garbage: give it back before the ring buffer maps
		done <- l
	}()
	result := sync.OnceValue(func() loaded { return <-done })
	cfg.Sites = func() bpf.SiteTable { return result().table }
	return runtimePaths, func() *callsite.Table { return result().syms }, nil
}

// markRuntimeTree marks the runtime server's tree as it runs now, once the
// exec, fork and exit programs are attached: twice, so that what was forked
// between the first read of /proc and its marks is found by the second; what
// happens after a mark is written, the kernel marks itself.
func markRuntimeTree(stderr io.Writer, s *bpf.Session, bins []runtimes.Binary, tree runtimes.Tree) error {
	for pass := range 2 {
		marks := runtimes.Marks(bins, tree)
		for tgid, m := range marks {
			if err := s.MarkRuntime(tgid, m.Start, m.Mark); err != nil {
				return err
			}
		}
		if os.Getenv("CAPSREC_DEBUG_RUNTIME") != "" {
			fmt.Fprintf(stderr, "capsrec: pass %d: runtime servers %+v, binaries %+v, %d marked %v\n", pass, tree.Servers, bins, len(marks), marks)
		}
	}
	return nil
}

// runtimeEndpoints are the configured endpoint, or else the defaults.
func runtimeEndpoints(endpoint string) (endpoints []string, configured bool) {
	if endpoint != "" {
		return []string{endpoint}, true
	}
	return enrich.DefaultEndpoints, false
}

// FindRuntimeTree is where the runtime marks start: the runtime servers on
// the configured (endpoint) or default sockets that answer a CRI call, the
// host pids of their containers and pod sandboxes, and where they keep their
// bundles. It asks each socket once. A socket whose listener does not answer
// CRI gives nothing: whatever listens there is not trusted.
func FindRuntimeTree(endpoint string) (tree runtimes.Tree) {
	endpoints, _ := runtimeEndpoints(endpoint)
	for _, ep := range endpoints {
		cri, err := enrich.DialCRI([]string{ep}, 2*time.Second)
		if err != nil {
			continue
		}
		if cri.ServerPID > 0 {
			server := runtimes.NewServer(cri.ServerPID)
			tree.Servers = append(tree.Servers, server)
			tree.PIDs = append(tree.PIDs, cri.RuntimePIDs(context.Background())...)
			if dir := cri.TaskDir(context.Background()); dir != "" {
				tree.TaskDirs = append(tree.TaskDirs, server.Dir+dir)
			}
		}
		cri.Close()
	}
	return tree
}

// DialRuntime connects to endpoint, or when it is "" to the first default
// that answers. Given a stderr it says so once when none does, unless nothing
// was configured and no default socket exists: a machine without containers.
func DialRuntime(endpoint string, stderr io.Writer) (*enrich.CRI, error) {
	endpoints, configured := runtimeEndpoints(endpoint)
	cri, err := enrich.DialCRI(endpoints, 2*time.Second)
	if err != nil && stderr != nil && (configured || enrich.AnySocket(endpoints)) {
		fmt.Fprintf(stderr, "capsrec: warning: %s; checks go on without pod fields\n", textsafe.OneLine(err.Error()))
	}
	return cri, err
}

// warnOnce prints the first runtime warning of a session; one is enough to say pod fields may lack.
func warnOnce(stderr io.Writer) func(string) {
	var once sync.Once
	return func(msg string) {
		once.Do(func() { fmt.Fprintf(stderr, "capsrec: warning: %s; checks go on without pod fields\n", msg) })
	}
}
