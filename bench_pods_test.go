package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/capsrec/capsrec/bpf"
	"github.com/capsrec/capsrec/enrich"
	"github.com/capsrec/capsrec/internal/ctrfixture"
	"github.com/capsrec/capsrec/internal/testutil"
)

// BenchmarkPodFilter: another container makes checks as fast as it can while
// capsrec records --pod xwing, so every one of them is dropped in the kernel
// by the cgroup set. Reports ns added per check, and that over what a no-op
// program on the same hook adds (target: within 1.5x).
func BenchmarkPodFilter(b *testing.B) {
	testutil.RequireRoot(b)
	if _, err := bpf.OpenNoop(); err != nil {
		b.Skip("the no-op floor needs the capability tracepoint")
	}
	dmesgRestrict(b)
	c := ctrfixture.Start(b)
	b.Setenv("CONTAINER_RUNTIME_ENDPOINT", c.Endpoint)
	c.RunPod("xwing", "default", map[string]string{"app": "xwing"}, "spaceship")
	tie := c.RunPod("tiefighter", "empire", nil, "cockpit")
	info, err := criLookup(c, tie.Containers["cockpit"])
	if err != nil {
		b.Fatal(err)
	}
	cgPath, err := enrich.ProcCgroup(info.HostPID)
	if err != nil {
		b.Fatal(err)
	}
	const n = 1_000_000
	// The checker runs in tiefighter's cockpit container's cgroup: a container's checks.
	measure := func() float64 {
		h := startHelper(b, "", 0, "syslog:"+strconv.Itoa(n))
		procs := filepath.Join("/sys/fs/cgroup/unified", cgPath, "cgroup.procs")
		if _, err := os.Stat(procs); err != nil {
			procs = filepath.Join("/sys/fs/cgroup", cgPath, "cgroup.procs")
		}
		if err := os.WriteFile(procs, []byte(strconv.Itoa(h.pid())), 0o644); err != nil {
			b.Fatalf("moving the checker into the container's cgroup: %v", err)
		}
		start := time.Now()
		h.run(b)
		return float64(time.Since(start).Nanoseconds()) / n
	}
	var base, noop, pod []float64
	for range 3 {
		base = append(base, measure())
		s, err := bpf.OpenNoop()
		if err != nil {
			b.Fatal(err)
		}
		noop = append(noop, measure())
		s.Close()
		rec := testutil.Record(b, "-o", "json", "--pod", "xwing")
		pod = append(pod, measure())
		rec.Stop(syscall.SIGINT)
	}
	mb, mn, mp := median3(base), median3(noop), median3(pod)
	b.ReportMetric(mb, "ns/check-no-recorder")
	b.ReportMetric(mn-mb, "ns-added-noop")
	b.ReportMetric(mp-mb, "ns-added-pod-filter")
	b.ReportMetric((mp-mb)/(mn-mb), "x-noop")
}

func median3(v []float64) float64 {
	a, b, c := v[0], v[1], v[2]
	return max(min(a, b), min(max(a, b), c))
}

func criLookup(c *ctrfixture.Containerd, id string) (*enrich.Info, error) {
	cri, err := enrich.DialCRI([]string{c.Endpoint}, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer cri.Close()
	return cri.Lookup(context.Background(), id)
}

// BenchmarkCRILookup is a cold-cache lookup: ContainerStatus (verbose) and PodSandboxStatus.
func BenchmarkCRILookup(b *testing.B) {
	testutil.RequireRoot(b)
	c := ctrfixture.Start(b)
	pod := c.RunPod("xwing", "default", nil, "spaceship")
	cri, err := enrich.DialCRI([]string{c.Endpoint}, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer cri.Close()
	id := pod.Containers["spaceship"]
	b.ResetTimer()
	for b.Loop() {
		if _, err := cri.Lookup(context.Background(), id); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}
