package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capsrec/capsrec/internal/callsite"
	"github.com/capsrec/capsrec/internal/testutil"
)

type classified struct {
	ProcessKprobe struct {
		Process struct {
			PID    int    `json:"pid"`
			Binary string `json:"binary"`
		} `json:"process"`
		Args []struct {
			CapabilityArg *struct {
				Name string `json:"name"`
			} `json:"capability_arg"`
		} `json:"args"`
		Capsrec struct {
			Class         string `json:"class"`
			CallSite      string `json:"call_site"`
			CallSiteProbe bool   `json:"call_site_probe"`
			Audit         *bool  `json:"audit"`
			SyscallName   string `json:"syscall_name"`
		} `json:"capsrec"`
	} `json:"process_kprobe"`
}

func (c classified) capName() string {
	for _, a := range c.ProcessKprobe.Args {
		if a.CapabilityArg != nil {
			return a.CapabilityArg.Name
		}
	}
	return ""
}

// baseSite is a call site's function less the compiler's suffixes.
func baseSite(name string) string {
	base, _, _ := strings.Cut(name, ".")
	return base
}

// TestCallSiteClasses runs host processes whose checks are known (an exec of
// sleep, memory mapped and freed in a loop, chown to another uid, dmesg as
// nobody, a seccomp filter without no_new_privs, a capset that drops and one
// that raises the inheritable set) and checks each check's class: a check is a
// probe only at a proven probe site (callsite.Kinds), or at cap_capset when the
// call does not raise the inheritable set; noaudit alone (fexit and kprobe see
// opts) never makes one.
func TestCallSiteClasses(t *testing.T) {
	for _, method := range methodsUnderTest(t) {
		t.Run(method, func(t *testing.T) {
			dmesgRestrict(t)
			t.Setenv("CAPSREC_DEBUG_WALK", "1") // the summary counts fast and slow walks
			s := testutil.Record(t, "-o", "json", "--attach", method, "--all")
			sleep := exec.Command("sleep", "0.1")
			if err := sleep.Run(); err != nil {
				t.Fatal(err)
			}
			// Private writable mappings are accounted: each asks CAP_SYS_ADMIN (a probe).
			for range 20 {
				m, err := syscall.Mmap(-1, 0, 1<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
				if err != nil {
					t.Fatal(err)
				}
				_ = syscall.Munmap(m)
			}
			file := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(file, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			// The first chown teaches the fast walk its frames; the later ones take it.
			var chown *exec.Cmd
			for i := range 3 {
				chown = exec.Command("chown", strconv.Itoa(1234+i), file)
				if out, err := chown.CombinedOutput(); err != nil {
					t.Fatalf("chown: %v %s", err, out)
				}
				s.WaitFor("chown's CAP_CHOWN", eventOf(t, chown.Process.Pid, "CAP_CHOWN"))
				time.Sleep(100 * time.Millisecond * testutil.Slow())
			}
			dmesg := exec.Command("dmesg")
			dmesg.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			_ = dmesg.Run()
			s.WaitFor("dmesg's CAP_SYSLOG", eventOf(t, dmesg.Process.Pid, "CAP_SYSLOG"))
			gates := startHelper(t, "capsrec-gates", 0, "seccomp,inheritable,syslog:1")
			gates.run(t)
			s.WaitFor("the gates helper's last check", eventOf(t, gates.pid(), "CAP_SYSLOG"))
			time.Sleep(100 * time.Millisecond * testutil.Slow())
			s.Stop(syscall.SIGINT)
			setpcap := map[string]int{}
			var setpcapSites []string

			seen := map[string]bool{}
			var mine []string // the test process's own checks, for the failure message
			for _, l := range s.Lines() {
				var ev classified
				if err := json.Unmarshal(l, &ev); err != nil {
					t.Fatalf("%v: %s", err, l)
				}
				pk, cs := ev.ProcessKprobe, ev.ProcessKprobe.Capsrec
				if pk.Process.PID == os.Getpid() && len(mine) < 40 {
					mine = append(mine, ev.capName()+" "+cs.Class+" "+cs.CallSite)
				}
				if cs.CallSite == "" {
					t.Errorf("no call site: %s", l)
				}
				switch pid := pk.Process.PID; {
				case pid == sleep.Process.Pid:
					if cs.Class == "need" {
						t.Errorf("sleep made a need: %s %s", ev.capName(), cs.CallSite)
					}
				case pid == os.Getpid() && ev.capName() == "CAP_SYS_ADMIN" && strings.Contains(cs.CallSite, "vm_enough_memory"):
					seen["mmap probe"] = true
					if cs.Class != "probe" {
						t.Errorf("an accounted mapping's CAP_SYS_ADMIN is %s", cs.Class)
					}
				case pid == chown.Process.Pid && ev.capName() == "CAP_CHOWN":
					seen["chown"] = true
					if cs.Class != "need" {
						t.Errorf("chown's CAP_CHOWN is %s (%s)", cs.Class, cs.CallSite)
					}
				case pid == dmesg.Process.Pid && ev.capName() == "CAP_SYSLOG":
					seen["dmesg"] = true
					if cs.Class != "need" {
						t.Errorf("dmesg's CAP_SYSLOG is %s (%s)", cs.Class, cs.CallSite)
					}
				case pid == gates.pid() && ev.capName() == "CAP_SYS_ADMIN" && cs.SyscallName == "prctl":
					seen["seccomp"] = true
					if cs.Class != "need" || (cs.Audit != nil && *cs.Audit) {
						t.Errorf("a seccomp filter without no_new_privs: CAP_SYS_ADMIN is %s (audit %v), want a noaudit need", cs.Class, cs.Audit)
					}
				case pid == gates.pid() && ev.capName() == "CAP_SETPCAP":
					setpcap[cs.Class]++
					setpcapSites = append(setpcapSites, fmt.Sprintf("%s at %s (call_site_probe %v)", cs.Class, cs.CallSite, cs.CallSiteProbe))
				}
				// A probe only where the call site is a proven probe; cap_capset's
				// own verdict depends on the call, checked just above.
				if k := callsite.Kinds[baseSite(cs.CallSite)]; k != callsite.Capset && cs.Class != "runtime" && cs.CallSiteProbe != (k == callsite.Probe) {
					t.Errorf("%s's %s at %s: call_site_probe=%v, but the site is of kind %d", filepath.Base(pk.Process.Binary), ev.capName(), cs.CallSite, cs.CallSiteProbe, k)
				}
			}
			// The drop asks CAP_SETPCAP and needs nothing; the raise needs it. Where
			// the compiler inlined cap_capable into cap_capset (5.10), fexit and
			// kprobe never see those checks at all.
			if len(setpcap) == 0 && method != "tracepoint" {
				t.Logf("no CAP_SETPCAP check: cap_capable is inlined into cap_capset on this kernel")
			} else if setpcap["probe"] != 1 || setpcap["need"] != 1 {
				t.Errorf("the capset drop and raise made CAP_SETPCAP checks %q, want one probe and one need", setpcapSites)
			}
			// fexit and kprobe see only the out-of-line cap_capable: where the compiler
			// inlined it into cap_vm_enough_memory (5.10), those probes never reach them.
			seen["mmap probe"] = seen["mmap probe"] || method != "tracepoint"
			for _, what := range []string{"mmap probe", "chown", "dmesg", "seccomp"} {
				if !seen[what] {
					t.Errorf("no %s check recorded; the test process's checks: %q", what, mine)
				}
			}
			// kprobes always take the kernel's unwinder, and so does every check on
			// arm64 (its saved return addresses may carry pointer authentication codes).
			m := regexp.MustCompile(`walks: (\d+) fast, (\d+) slow`).FindStringSubmatch(s.Stderr())
			switch {
			case m == nil:
				t.Errorf("no walk counts in the summary: %s", s.Stderr())
			case runtime.GOARCH == "arm64" && (m[1] != "0" || m[2] == "0"):
				t.Errorf("on arm64 every call site is the unwinder's, but: %s", m[0])
			case runtime.GOARCH != "arm64" && method != "kprobe" && m[1] == "0":
				t.Errorf("the fast call-site walk never found a call site: %s", s.Stderr())
			}
			testutil.AssertNothingLeft(t)
		})
	}
}
