package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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

// auditedProbes only test the answer of an audited check: the one place where
// the call site says probe and opts say audited.
var auditedProbes = map[string]bool{"cap_capset": true, "cap_inh_is_capped": true}

// TestCallSiteClasses runs host processes whose checks are known (an exec of
// sleep, memory mapped and freed in a loop, chown to another uid, dmesg as
// nobody) and checks each check's class; on fexit and kprobe, where the kernel
// passes opts, the call site alone must agree with CAP_OPT_NOAUDIT on every
// check seen.
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
			s.Stop(syscall.SIGINT)

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
				}
				// Where opts reach capsrec, the call site must say what they say.
				if cs.Audit != nil && cs.Class != "runtime" {
					noaudit := !*cs.Audit
					if cs.CallSiteProbe != noaudit && !(cs.CallSiteProbe && auditedProbes[cs.CallSite]) {
						t.Errorf("%s's %s at %s: call site says probe=%v, opts say noaudit=%v", filepath.Base(pk.Process.Binary), ev.capName(), cs.CallSite, cs.CallSiteProbe, noaudit)
					}
				}
			}
			// fexit and kprobe see only the out-of-line cap_capable: where the compiler
			// inlined it into cap_vm_enough_memory (5.10), those probes never reach them.
			seen["mmap probe"] = seen["mmap probe"] || method != "tracepoint"
			for _, what := range []string{"mmap probe", "chown", "dmesg"} {
				if !seen[what] {
					t.Errorf("no %s check recorded; the test process's checks: %q", what, mine)
				}
			}
			// kprobes always take the kernel's unwinder.
			if m := regexp.MustCompile(`walks: (\d+) fast`).FindStringSubmatch(s.Stderr()); method != "kprobe" && (m == nil || m[1] == "0") {
				t.Errorf("the fast call-site walk never found a call site: %s", s.Stderr())
			}
			testutil.AssertNothingLeft(t)
		})
	}
}
