package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/capsrec/capsrec/internal/testutil"
)

// nonRootCaps are the capabilities capsrec records with exactly as uid 0
// does, as the README states: BPF and PERFMON load and attach; SYSLOG reads
// /proc/kallsyms (call sites: probes told from needs); SYS_PTRACE reads other
// users' /proc/PID/exe (the runtime's tree); DAC_OVERRIDE opens the runtime's
// root-only socket (pod names).
var nonRootCaps = []string{"bpf", "perfmon", "syslog", "sys_ptrace", "dac_override"}

// asNobody runs capsrec as uid 65534 with exactly caps, from a copy of the
// binary nobody can run, in a directory it may write its ready file to.
func asNobody(t *testing.T, caps []string) (bin, dir string, prefix []string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "capsrec-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data, err := os.ReadFile(testutil.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "capsrec")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	set := "-all"
	for _, c := range caps {
		set += ",+" + c
	}
	return bin, dir, []string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=" + set, "--ambient-caps=" + set}
}

// A non-root user with the README's capabilities records the seed's check
// (dmesg refused CAP_SYSLOG) as root does: with its call site, no warning.
func TestRecordAsNonRootWithCapabilities(t *testing.T) {
	method := firstMethod(t)
	dmesgRestrict(t)
	bin, dir, prefix := asNobody(t, nonRootCaps)
	ready := filepath.Join(dir, "ready")
	h := startHelper(t, "", 65534, "syslog:3")
	args := append(prefix, bin, "record", "--ready-file", ready, "-o", "json", "--attach", method, "--pid", strconv.Itoa(h.pid()))
	s := testutil.StartReady(t, nil, ready, "setpriv", args...)
	h.run(t)
	s.WaitFor("the helper's three checks", func([]byte) bool { return len(linesOf(t, s, h.pid())) == 3 })
	s.Stop(syscall.SIGINT)
	for _, ev := range linesOf(t, s, h.pid()) {
		if ev.cap() != "CAP_SYSLOG" || *ev.ProcessKprobe.Return.IntArg == 0 || ev.ProcessKprobe.Capsrec["call_site"] == nil {
			t.Errorf("want CAP_SYSLOG refused, with its call site: %+v", ev.ProcessKprobe)
		}
	}
	if strings.Contains(s.Stderr(), "warning") {
		t.Errorf("a warning with the README's capabilities:\n%s", s.Stderr())
	}
	testutil.AssertNothingLeft(t)
}

// With BPF and PERFMON alone it records, and says what it cannot do; with
// neither it says what it needs, in one line.
func TestRecordAsNonRootWithLess(t *testing.T) {
	method := firstMethod(t)
	bin, dir, prefix := asNobody(t, []string{"bpf", "perfmon"})
	ready := filepath.Join(dir, "ready")
	s := testutil.StartReady(t, nil, ready, "setpriv", append(prefix, bin, "record", "--ready-file", ready, "--attach", method)...)
	s.Stop(syscall.SIGINT)
	if !strings.Contains(s.Stderr(), "warning: no call sites") {
		t.Errorf("without SYSLOG: want the call-site warning:\n%s", s.Stderr())
	}
	_, _, none := asNobody(t, nil)
	assertOneLineError(t, exec.Command("setpriv", append(none, bin, "record")...), "record needs root, or CAP_BPF and CAP_PERFMON")
	testutil.AssertNothingLeft(t)
}
