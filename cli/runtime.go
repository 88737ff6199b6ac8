package cli

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/capsrec/capsrec/bpf"
	"github.com/capsrec/capsrec/enrich"
	"github.com/capsrec/capsrec/internal/callsite"
	"github.com/capsrec/capsrec/internal/runtimes"
	"github.com/capsrec/capsrec/internal/textsafe"
)

var runtimeBinaryFlag = &cli.StringSliceFlag{Name: "runtime-binary", Usage: "a container runtime executable the runtime server runs besides those found in its root (runc, crun, youki, runsc, conmon, containerd shims); repeatable"}

// classifyChecks gives the programs the call-site table from /proc/kallsyms and
// the container runtime binaries. Without symbols every check counts as a need:
// nothing is hidden that cannot be classified.
// It returns the runtime binaries' paths (by the kernel's mark less one) and
// what gives the kernel's symbols once they are read (nil without call sites).
func classifyChecks(c *cli.Context, cfg *bpf.Config, tree runtimeTree) (runtimePaths []string, symbols func() *callsite.Table, err error) {
	servers := tree.servers
	bins, err := runtimes.Find(c.StringSlice("runtime-binary"), servers...)
	if err != nil {
		return nil, nil, err
	}
	cfg.RuntimeExes, cfg.RuntimeSizes = map[bpf.ExeKey]uint8{}, map[uint32]uint64{}
	for i, b := range bins {
		cfg.RuntimeExes[bpf.ExeKey{Ino: b.Ino, Dev: b.Dev}] = uint8(i + 1)
		cfg.RuntimeSizes[uint32(i+1)] = uint64(b.Size)
	}
	cfg.RuntimeTgids = runtimes.Marks(bins, servers, tree.pids)
	if os.Getenv("CAPSREC_DEBUG_RUNTIME") != "" {
		fmt.Fprintf(c.App.ErrWriter, "capsrec: runtime servers %+v, binaries %+v, %d marked now %v\n", servers, bins, len(cfg.RuntimeTgids), cfg.RuntimeTgids)
	}
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
			fmt.Fprintf(c.App.ErrWriter, "capsrec: warning: no call sites (%v): probes count as needs\n", err)
			done <- l
			return
		}
		l.syms = syms
		l.table.TextStart, l.table.TextEnd = syms.TextStart, syms.TextEnd
		for _, r := range ranges {
			l.table.Ranges = append(l.table.Ranges, bpf.SiteRange{Start: r.Start, End: r.End, Kind: uint32(r.Kind)})
		}
		debug.FreeOSMemory() // reading 5 MB of text left garbage: give it back before the ring buffer maps
		done <- l
	}()
	result := sync.OnceValue(func() loaded { return <-done })
	cfg.Sites = func() bpf.SiteTable { return result().table }
	return runtimePaths, func() *callsite.Table { return result().syms }, nil
}

// runtimeEndpoints are --runtime-endpoint, or else the defaults.
func runtimeEndpoints(c *cli.Context) (endpoints []string, configured bool) {
	if ep := c.String("runtime-endpoint"); ep != "" {
		return []string{ep}, true
	}
	return enrich.DefaultEndpoints, false
}

// runtimeTree is where the runtime marks start: the runtime servers on the
// configured or default sockets that answer a CRI call, and the host pids of
// their containers and pod sandboxes.
type runtimeTree struct {
	servers []runtimes.Server
	pids    []uint32
}

// findRuntimeTree asks each socket once. A socket whose listener does not
// answer CRI gives nothing: whatever listens there is not trusted.
func findRuntimeTree(c *cli.Context) (tree runtimeTree) {
	endpoints, _ := runtimeEndpoints(c)
	for _, ep := range endpoints {
		cri, err := enrich.DialCRI([]string{ep}, 2*time.Second)
		if err != nil {
			continue
		}
		if cri.ServerPID > 0 {
			tree.servers = append(tree.servers, runtimes.NewServer(cri.ServerPID))
			tree.pids = append(tree.pids, cri.RuntimePIDs(context.Background())...)
		}
		cri.Close()
	}
	return tree
}

// dialRuntime connects to --runtime-endpoint, or to the first default that
// answers. With warn it says so once when none does, unless nothing was
// configured and no default socket exists: a machine without containers.
func dialRuntime(c *cli.Context, warn bool) (*enrich.CRI, error) {
	endpoints, configured := runtimeEndpoints(c)
	cri, err := enrich.DialCRI(endpoints, 2*time.Second)
	if err != nil && warn && (configured || enrich.AnySocket(endpoints)) {
		fmt.Fprintf(c.App.ErrWriter, "capsrec: warning: %s; checks go on without pod fields\n", textsafe.OneLine(err.Error()))
	}
	return cri, err
}

// warnOnce prints the first runtime warning of a session; one is enough to say pod fields may lack.
func warnOnce(c *cli.Context) func(string) {
	var once sync.Once
	return func(msg string) {
		once.Do(func() { fmt.Fprintf(c.App.ErrWriter, "capsrec: warning: %s; checks go on without pod fields\n", msg) })
	}
}
