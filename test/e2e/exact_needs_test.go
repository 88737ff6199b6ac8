package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/capsrec/capsrec/internal/ctrfixture"
	"github.com/capsrec/capsrec/internal/testutil"
)

// A workload is a container doing real privileged work; want is the add list
// its profile must name, exactly.
type workload struct {
	name   string
	script string
	want   []string
	exec   bool // run script through ExecSync in a sleeping container (kubectl exec)
	// record, when not nil, are the capabilities the recorded run is given
	// (drop ALL, add these) instead of the runtime's defaults, which lack them.
	record []string
}

var workloads = []workload{
	{name: "sleeper", script: "sleep 1", want: []string{}},
	{name: "dmesg", script: "dmesg >/dev/null", want: []string{}}, // CAP_SYSLOG denied: tried, not needed
	{name: "chown", script: "touch /tmp/f && chown 1234:1234 /tmp/f", want: []string{"CHOWN"}},
	{name: "dac", script: "touch /tmp/f && chmod 000 /tmp/f && echo x > /tmp/f", want: []string{"DAC_OVERRIDE"}},
	{name: "fowner", script: "touch /tmp/f && chown 1234 /tmp/f && chmod 600 /tmp/f", want: []string{"CHOWN", "FOWNER"}},
	{name: "mknod", script: "mknod /tmp/null c 1 3", want: []string{"MKNOD"}},
	{name: "chroot", script: "chroot / /bin/true", want: []string{"SYS_CHROOT"}},
	{name: "kill", script: "su -s /bin/sh nobody -c 'exec sleep 30' & sleep 0.5; kill $!", want: []string{"KILL", "SETGID", "SETUID"}},
	{name: "execd", script: "touch /tmp/e && chown 1234 /tmp/e", want: []string{"CHOWN"}, exec: true},
	// Needs the kernel asks without auditing, or on a path that mostly probes.
	{name: "seccomp", script: "exec capop seccomp", want: []string{"SYS_ADMIN"}, record: []string{"SYS_ADMIN", "CHOWN", "SETPCAP"}},
	{name: "inheritable", script: "exec capop inheritable", want: []string{"CHOWN", "SETPCAP"}},
}

// run starts w in pod p with caps (nil: the runtime's defaults) and returns its exit code.
func (w workload) run(c *ctrfixture.Containerd, p *ctrfixture.Pod, name string, caps []string) int32 {
	if w.exec {
		id := c.RunContainer(p, ctrfixture.ContainerSpec{Name: name, Command: []string{"/bin/sleep", "3600"}, Caps: caps})
		return c.Exec(id, "/bin/sh", "-c", w.script)
	}
	id := c.RunContainer(p, ctrfixture.ContainerSpec{Name: name, Command: []string{"/bin/sh", "-c", "set -e; " + w.script}, Caps: caps})
	return c.WaitExit(id, 30*time.Second*testutil.Slow())
}

type profileJSON struct {
	Subjects []struct {
		Container      string `json:"container"`
		Binary         string `json:"binary"`
		Capabilities   map[string]struct{ Verdict string }
		Recommendation struct{ Drop, Add, Denied []string }
		Coverage       struct {
			StartObserved bool `json:"start_observed"`
			Partial       bool `json:"partial"`
		}
	}
	Recorded struct {
		Sessions    int  `json:"sessions"`
		LossesKnown bool `json:"losses_known"`
	}
}

// profileRun writes a recording's lines to a file and runs capsrec profile
// ARGS FILE on it; it returns the file and what profile printed.
func profileRun(t *testing.T, lines [][]byte, args ...string) (events string, out []byte) {
	t.Helper()
	events = filepath.Join(t.TempDir(), "events.json")
	var data []byte
	for _, l := range lines {
		data = append(append(data, l...), '\n')
	}
	if err := os.WriteFile(events, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testutil.Binary(t), append(append([]string{"profile"}, args...), events)...).Output()
	if err != nil {
		t.Fatalf("capsrec profile %v: %v", args, err)
	}
	return events, out
}

func profileOf(t *testing.T, lines [][]byte) profileJSON {
	t.Helper()
	_, out := profileRun(t, lines, "-o", "json")
	var prof profileJSON
	if err := json.Unmarshal(out, &prof); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return prof
}

// TestExactNeeds records real containers in containerd, checks that each
// profile's add list is exactly what the workload's own code needs (runc's
// setup and kernel probes left out), then closes the loop: each workload runs
// with drop ALL + its add list, and fails with any one of them removed.
func TestExactNeeds(t *testing.T) {
	method := firstMethod(t)
	dmesgRestrict(t)
	c := ctrfixture.Start(t)
	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", c.Endpoint)
	// --all keeps runtime setup and probes in the recording; the profile must
	// leave them out all the same, and the default view must not print them.
	// No --pod: the profile is read per container name. The pod starts after
	// the recorders: its shim is started by containerd during the session.
	all := testutil.Record(t, "-o", "json", "--attach", method, "--all")
	hidden := testutil.Record(t, "-o", "json", "--attach", method)
	pod := c.RunPod("needs", "default", map[string]string{"app": "needs"})
	exits := map[string]int32{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, w := range workloads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code := w.run(c, pod, w.name, w.record)
			mu.Lock()
			exits[w.name] = code
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, w := range workloads {
		if (exits[w.name] == 0) != (w.name != "dmesg") {
			t.Errorf("%s exited %d under the runtime's defaults", w.name, exits[w.name])
		}
	}
	c.Exec(pod.Containers["execd"], "/bin/true") // a last round trip before stopping
	time.Sleep(300 * time.Millisecond)
	all.Stop(syscall.SIGINT)
	hidden.Stop(syscall.SIGINT)

	classes := map[string]int{}
	for _, l := range all.Lines() {
		var ev struct {
			ProcessKprobe struct {
				Process struct {
					Binary    string `json:"binary"`
					Arguments string `json:"arguments"`
				} `json:"process"`
				Capsrec struct {
					Class    string `json:"class"`
					CallSite string `json:"call_site"`
				} `json:"capsrec"`
			} `json:"process_kprobe"`
		}
		if err := json.Unmarshal(l, &ev); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		pk := ev.ProcessKprobe
		classes[pk.Capsrec.Class]++
		if pk.Capsrec.Class == "runtime" && filepath.Base(pk.Process.Binary) != "runc" && !strings.HasPrefix(filepath.Base(pk.Process.Binary), "containerd-shim") {
			t.Errorf("a runtime check shows binary %q, want runc by its real name", pk.Process.Binary)
		}
		if pk.Capsrec.CallSite == "" {
			t.Errorf("a check without a call site: %s", l)
		}
	}
	if classes["runtime"] == 0 || classes["probe"] == 0 || classes["need"] == 0 {
		t.Errorf("--all recorded classes %v; want runtime setup, probes and needs", classes)
	}
	for _, l := range hidden.Lines() {
		if !strings.Contains(string(l), `"class":"need"`) && !strings.Contains(string(l), `"class":"override_creds"`) {
			t.Errorf("the default view printed a hidden class: %s", l)
		}
	}
	if !strings.Contains(hidden.Stderr(), "runtime setup and") || !strings.Contains(hidden.Stderr(), "--all shows them") {
		t.Errorf("the summary does not count hidden checks: %s", hidden.Stderr())
	}

	// Every container is in the profile, the idle one too (add []), each seen
	// from its start: the JSON holds their process_exec events and the summary.
	for name, lines := range map[string][][]byte{"--all": all.AllLines(), "default": hidden.AllLines()} {
		prof := profileOf(t, lines)
		got := map[string][]string{}
		for _, sub := range prof.Subjects {
			got[sub.Container] = sub.Recommendation.Add
			if sub.Container != "" && (!sub.Coverage.StartObserved || sub.Coverage.Partial) {
				t.Errorf("%s recording: %s's coverage %+v, want its start observed and nothing partial", name, sub.Container, sub.Coverage)
			}
		}
		if prof.Recorded.Sessions != 1 || !prof.Recorded.LossesKnown {
			t.Errorf("%s recording: recorded %+v, want one session whose losses are known", name, prof.Recorded)
		}
		for _, w := range workloads {
			add, ok := got[w.name]
			if !ok {
				t.Errorf("%s recording: %s is not in the profile", name, w.name)
			} else if !slices.Equal(add, w.want) {
				t.Errorf("%s recording: %s's add = %v, want %v", name, w.name, add, w.want)
			}
		}
	}

	t.Run("close the loop", func(t *testing.T) {
		type trial struct {
			w    workload
			caps []string
			ok   bool
		}
		var trials []trial
		for _, w := range workloads {
			trials = append(trials, trial{w, w.want, true})
			for i := range w.want {
				trials = append(trials, trial{w, slices.Delete(slices.Clone(w.want), i, i+1), false})
			}
		}
		var wg sync.WaitGroup
		// At most 16 at once: about 20 containers starting at once in one pod
		// hang containerd 1.6's shim here.
		slots := make(chan struct{}, 16)
		for i, tr := range trials {
			wg.Add(1)
			go func() {
				defer wg.Done()
				slots <- struct{}{}
				defer func() { <-slots }()
				name := tr.w.name + "-loop-" + string(rune('a'+i))
				code := tr.w.run(c, pod, name, tr.caps)
				switch {
				case tr.ok && code != exits[tr.w.name]:
					t.Errorf("%s with drop ALL, add %v exited %d, as under the defaults %d expected", tr.w.name, tr.caps, code, exits[tr.w.name])
				case !tr.ok && code == 0:
					t.Errorf("%s with drop ALL, add %v succeeded: the removed capability was not needed", tr.w.name, tr.caps)
				}
			}()
		}
		wg.Wait()
	})
	testutil.AssertNothingLeft(t)
}
