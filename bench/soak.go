package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// soak runs `capsrec record -o json > /dev/null` while short-lived processes
// churn (each an exec of chown, one CAP_CHOWN check) for d, and samples the
// recorder's RSS: at ready, then every minute. RSS must stay flat: a recorder
// that keeps every process that ever ran grows without bound (issue 17).
func soak(bin string, d time.Duration) (string, error) {
	dir, err := os.MkdirTemp("", "capsrec-soak-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	ready, target := filepath.Join(dir, "ready"), filepath.Join(dir, "target")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		return "", err
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return "", err
	}
	defer devnull.Close()
	var stderr strings.Builder
	cmd := exec.Command(bin, "record", "-o", "json", "--ready-file", ready)
	cmd.Stdout, cmd.Stderr = devnull, &stderr
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Since(start) > 30*time.Second {
			return "", fmt.Errorf("capsrec not ready: %s", stderr.String())
		}
	}
	time.Sleep(time.Second)
	samples := []int64{rssKiB(cmd.Process.Pid)}
	var runs int
	start, next := time.Now(), time.Now().Add(time.Minute)
	for time.Since(start) < d {
		if err := exec.Command("chown", strconv.Itoa(1000+runs%100), target).Run(); err != nil {
			return "", err
		}
		runs++
		if time.Now().After(next) {
			samples = append(samples, rssKiB(cmd.Process.Pid))
			next = next.Add(time.Minute)
		}
	}
	samples = append(samples, rssKiB(cmd.Process.Pid))
	_ = cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("capsrec: %v: %s", err, stderr.String())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| churn | processes | rate /s | RSS at ready | RSS at the end | largest | per minute (MiB) |\n|---|---|---|---|---|---|---|\n")
	var mib []string
	largest := samples[0]
	for _, s := range samples {
		mib = append(mib, fmt.Sprintf("%.1f", float64(s)/1024))
		largest = max(largest, s)
	}
	fmt.Fprintf(&b, "| %s of exec chown | %d | %.0f | %.1f MiB | %.1f MiB | %.1f MiB | %s |\n", d, runs,
		float64(runs)/time.Since(start).Seconds(), float64(samples[0])/1024, float64(samples[len(samples)-1])/1024,
		float64(largest)/1024, strings.Join(mib, " "))
	fmt.Fprintf(&b, "\ncapsrec's summary: %s\n", strings.TrimSpace(stderr.String()))
	return b.String(), nil
}

// rssKiB is a process's resident set now, from /proc (0 if unknown).
func rssKiB(pid int) int64 {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}
