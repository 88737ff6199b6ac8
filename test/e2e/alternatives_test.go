package e2e

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capsrec/capsrec/internal/ctrfixture"
	"github.com/capsrec/capsrec/internal/testutil"
)

// serveOnce serves a page on port and fetches it: exit 0 only when the bind worked.
func serveOnce(port string) []string {
	return []string{"/bin/sh", "-c", "echo ok > /tmp/index.html; httpd -p " + port + " -h /tmp; sleep 0.3; wget -q -O - http://127.0.0.1:" + strings.TrimPrefix(port, "127.0.0.1:") + "/index.html"}
}

type alternativesJSON struct {
	Subjects []struct {
		Workload       string `json:"workload"`
		Recommendation struct {
			Add     []string
			Sysctls []struct{ Name, Value, Why string }
			// The capability-free alternatives.
			Alternatives []struct {
				Replaces string
				Sysctl   struct{ Name, Value string }
				Covers   string
				Applies  bool
				Why      string
			}
		}
	}
}

// TestBindAlternativeReplayed: web servers on port 80 in real containerd
// pods. In a network namespace of its own, the profile offers
// ip_unprivileged_port_start=80 instead of NET_BIND_SERVICE, from the port
// bind(2) asked for; where the namespace already lets the port pass (what
// containerd 2 does for every pod) no check is made, and the profile still
// sees the bind and sets the sysctl itself. Replayed: with the sysctl and no
// capability the server answers, without either it does not. With
// hostNetwork the sysctl is the node's: no alternative.
func TestBindAlternativeReplayed(t *testing.T) {
	method := firstMethod(t)
	c := ctrfixture.Start(t)
	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", c.Endpoint)
	rec := testutil.Record(t, "-o", "json", "--attach", method)
	const portStart = "net.ipv4.ip_unprivileged_port_start"
	for _, p := range []struct {
		name    string
		own     bool
		sysctls map[string]string
		port    string
	}{
		{"web", true, nil, "80"},
		{"preset", true, map[string]string{portStart: "0"}, "80"}, // a runtime's default, as containerd 2's
		{"hostnet", false, nil, "127.0.0.1:989"},
	} {
		pod := c.RunPodWith(ctrfixture.PodOptions{Name: p.name, Namespace: "default", OwnNetwork: p.own, Sysctls: p.sysctls})
		id := c.RunContainer(pod, ctrfixture.ContainerSpec{Name: "server", Command: serveOnce(p.port)})
		if code := c.WaitExit(id, 30*time.Second*testutil.Slow()); code != 0 {
			t.Fatalf("%s: the server did not answer under the runtime's defaults: exit %d", p.name, code)
		}
	}
	time.Sleep(300 * time.Millisecond)
	rec.Stop(syscall.SIGINT)

	listens := 0
	for _, l := range rec.Lines() {
		if strings.Contains(string(l), `"capsrec_listen"`) {
			listens++
			if !strings.Contains(string(l), `"port":80,"ip_unprivileged_port_start":0`) || !strings.Contains(string(l), `"name":"preset"`) {
				t.Errorf("a listen event not of the preset pod's port 80: %s", l)
			}
		}
	}
	if listens == 0 {
		t.Errorf("no capsrec_listen event for the bind the preset pod's sysctl let pass")
	}

	events, out := profileRun(t, rec.AllLines(), "-o", "json", "--container", "server")
	var prof alternativesJSON
	if err := json.Unmarshal(out, &prof); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	byPod := map[string]int{}
	for i, s := range prof.Subjects {
		byPod[s.Workload] = i
	}
	for _, name := range []string{"web", "preset", "hostnet"} {
		if _, ok := byPod[name]; !ok {
			t.Fatalf("no profile of pod %s:\n%s", name, out)
		}
	}
	web := prof.Subjects[byPod["web"]].Recommendation
	if !slices.Equal(web.Add, []string{"NET_BIND_SERVICE"}) || len(web.Alternatives) != 1 || !web.Alternatives[0].Applies ||
		web.Alternatives[0].Sysctl.Name != portStart || web.Alternatives[0].Sysctl.Value != "80" || web.Alternatives[0].Covers != "bind(2) to port 80" {
		t.Errorf("web: add %v, alternatives %+v; want NET_BIND_SERVICE, replaceable by %s=80 (bind(2) to port 80)", web.Add, web.Alternatives, portStart)
	}
	preset := prof.Subjects[byPod["preset"]].Recommendation
	if len(preset.Add) != 0 || len(preset.Sysctls) != 1 || preset.Sysctls[0].Name != portStart || preset.Sysctls[0].Value != "80" ||
		!strings.Contains(preset.Sysctls[0].Why, portStart+"=0") {
		t.Errorf("preset: add %v, sysctls %+v; want none, and %s=80 because the namespace's is 0", preset.Add, preset.Sysctls, portStart)
	}
	host := prof.Subjects[byPod["hostnet"]].Recommendation
	if !slices.Equal(host.Add, []string{"NET_BIND_SERVICE"}) || len(host.Alternatives) != 1 || host.Alternatives[0].Applies ||
		!strings.Contains(host.Alternatives[0].Why, "hostNetwork") {
		t.Errorf("hostnet: add %v, alternatives %+v; want NET_BIND_SERVICE and no applicable alternative", host.Add, host.Alternatives)
	}

	patch, err := exec.Command(testutil.Binary(t), "profile", "-o", "patch", "--alternatives", "--pod", "web", events).Output()
	if err != nil {
		t.Fatalf("capsrec profile -o patch --alternatives: %v", err)
	}
	if !strings.Contains(string(patch), "        - name: "+portStart+"\n          value: \"80\"\n") || !strings.Contains(string(patch), "add: []") {
		t.Errorf("-o patch --alternatives does not set the sysctl and add nothing:\n%s", patch)
	}

	// Replay: what the profiles say, on a runtime that sets no sysctl.
	for _, r := range []struct {
		what    string
		sysctls map[string]string
		caps    []string
		works   bool
	}{
		{"web's alternative: the sysctl, no capability", map[string]string{portStart: web.Alternatives[0].Sysctl.Value}, []string{}, true},
		{"preset's own profile: its sysctl, its add list", map[string]string{portStart: preset.Sysctls[0].Value}, preset.Add, true},
		{"neither sysctl nor capability", nil, []string{}, false},
	} {
		pod := c.RunPodWith(ctrfixture.PodOptions{Name: "replay", Namespace: "default", OwnNetwork: true, Sysctls: r.sysctls})
		id := c.RunContainer(pod, ctrfixture.ContainerSpec{Name: "server", Command: serveOnce("80"), Caps: r.caps})
		if code := c.WaitExit(id, 30*time.Second*testutil.Slow()); (code == 0) != r.works {
			t.Errorf("%s: exit %d, want it to work: %v", r.what, code, r.works)
		}
		c.RemovePod(pod)
	}
}

// netScript, in a network namespace of its own: a listen on port 80 (a
// NET_BIND_SERVICE check, bind(2)'s port read), then with the namespace's
// ip_unprivileged_port_start at 0 one on port 81 (no check: a listen
// event), and a raw ICMP socket (a NET_RAW check, socket(2)'s protocol).
const netScript = `bb=/bin/busybox; $bb mknod /tmp/capsrec-null-$$ c 1 3; $bb rm -f /tmp/capsrec-null-$$; $bb ip link set lo up; $bb timeout 1 $bb nc -l -p 80 127.0.0.1;
$bb sysctl -w net.ipv4.ip_unprivileged_port_start=0 >/dev/null; $bb timeout 1 $bb nc -l -p 81 127.0.0.1;
$bb ping -c 1 127.0.0.1 >/dev/null; exit 0`

// TestNetFactsRecorded: the facts alternatives and user-namespace readiness
// rest on, from the real hooks on every attach method: the port and protocol
// of the calls, the namespace's sysctls as of each check, the bind that made
// no check, and the capability function each call site called.
func TestNetFactsRecorded(t *testing.T) {
	for _, method := range methodsUnderTest(t) {
		t.Run(method, func(t *testing.T) {
			out, err := exec.Command(testutil.Binary(t), "record", "-o", "json", "--attach", method, "--no-summary", "--",
				"/bin/busybox", "unshare", "-n", "/bin/busybox", "sh", "-c", netScript).Output()
			if err != nil {
				t.Fatalf("record -- unshare -n ...: %v\n%s", err, out)
			}
			var bind, raw, listen, mknod bool
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				var ev struct {
					ProcessKprobe *struct {
						Args []struct {
							CapabilityArg *struct{ Name string } `json:"capability_arg"`
						} `json:"args"`
						Capsrec struct {
							CallSite       string `json:"call_site"`
							Via            string `json:"call_site_via"`
							BindPort       int    `json:"bind_port"`
							SocketProtocol *int   `json:"socket_protocol"`
							Sysctls        *struct {
								PortStart int    `json:"ip_unprivileged_port_start"`
								PingGroup string `json:"ping_group_range"`
							} `json:"netns_sysctls"`
						} `json:"capsrec"`
					} `json:"process_kprobe"`
					Listen *struct {
						Capsrec struct {
							Port      int `json:"port"`
							PortStart int `json:"ip_unprivileged_port_start"`
						} `json:"capsrec"`
					} `json:"capsrec_listen"`
				}
				if err := json.Unmarshal([]byte(line), &ev); err != nil {
					t.Fatalf("%v: %s", err, line)
				}
				if l := ev.Listen; l != nil {
					listen = true
					if l.Capsrec.Port != 81 || l.Capsrec.PortStart != 0 {
						t.Errorf("a listen event not of port 81 at ip_unprivileged_port_start 0: %s", line)
					}
					continue
				}
				pk := ev.ProcessKprobe
				if pk == nil || len(pk.Args) < 2 || pk.Args[1].CapabilityArg == nil {
					continue
				}
				cs := pk.Capsrec
				switch pk.Args[1].CapabilityArg.Name {
				case "CAP_NET_BIND_SERVICE":
					bind = true
					if cs.BindPort != 80 || cs.Sysctls == nil || cs.Sysctls.PortStart != 1024 || !strings.Contains(cs.CallSite, "inet_bind") || cs.Via != "ns_capable" {
						t.Errorf("the bind's check: want port 80, at ip_unprivileged_port_start 1024, from __inet_bind through ns_capable: %s", line)
					}
				case "CAP_MKNOD": // through capable(): the host's user namespace, for readiness
					mknod = true
					if cs.CallSite != "vfs_mknod" || cs.Via != "capable" {
						t.Errorf("mknod's check: want vfs_mknod through capable: %s", line)
					}
				case "CAP_NET_RAW":
					raw = true
					if cs.SocketProtocol == nil || *cs.SocketProtocol != 1 || cs.Sysctls == nil || cs.Sysctls.PortStart != 0 || cs.Sysctls.PingGroup != "1 0" {
						t.Errorf("the raw socket's check: want protocol 1 (ICMP), the namespace's sysctls 0 and \"1 0\": %s", line)
					}
				}
			}
			if !bind || !raw || !listen || !mknod {
				t.Errorf("bind check %v, raw socket check %v, listen event %v, mknod check %v: want all four\n%s", bind, raw, listen, mknod, out)
			}
		})
	}
}

// TestICMPAlternativeIsConditional: two pings in real containerd pods, both
// a raw ICMP socket under NET_RAW as recorded (the runtime's 1.6 leaves
// ping_group_range at "1 0"). One falls back to a datagram socket when
// refused (as iputils ping does), one does not (busybox ping): the profile
// cannot tell them apart, so it offers ping_group_range as possible only,
// and --alternatives never uses it. Replayed with the sysctl and no
// capability: the first answers, the second fails.
func TestICMPAlternativeIsConditional(t *testing.T) {
	method := firstMethod(t)
	c := ctrfixture.Start(t)
	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", c.Endpoint)
	pings := map[string][]string{"iputils-like": {"/bin/capop", "ping"}, "busybox": {"/bin/busybox", "ping", "-c", "1", "-W", "1", "127.0.0.1"}}
	rec := testutil.Record(t, "-o", "json", "--attach", method)
	for name, cmd := range pings {
		pod := c.RunPodWith(ctrfixture.PodOptions{Name: name, Namespace: "default", OwnNetwork: true})
		if code := c.WaitExit(c.RunContainer(pod, ctrfixture.ContainerSpec{Name: "ping", Command: cmd}), 30*time.Second*testutil.Slow()); code != 0 {
			t.Fatalf("%s: no echo reply under the runtime's defaults: exit %d", name, code)
		}
	}
	time.Sleep(300 * time.Millisecond)
	rec.Stop(syscall.SIGINT)
	_, out := profileRun(t, rec.AllLines(), "-o", "json", "--container", "ping")
	var alts struct {
		Subjects []struct {
			Workload       string
			Recommendation struct {
				Add          []string
				Alternatives []struct {
					Replaces    string
					Sysctl      struct{ Name, Value string }
					Applies     bool
					Conditional bool
				}
			}
		}
	}
	if err := json.Unmarshal(out, &alts); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(alts.Subjects) != len(pings) {
		t.Fatalf("%d subjects, want %d:\n%s", len(alts.Subjects), len(pings), out)
	}
	for _, s := range alts.Subjects {
		r := s.Recommendation
		if !slices.Equal(r.Add, []string{"NET_RAW"}) || len(r.Alternatives) != 1 || r.Alternatives[0].Applies || !r.Alternatives[0].Conditional ||
			r.Alternatives[0].Sysctl.Name != "net.ipv4.ping_group_range" {
			t.Errorf("%s: add %v, alternatives %+v; want NET_RAW, and ping_group_range as possible only", s.Workload, r.Add, r.Alternatives)
		}
	}
	for name, cmd := range pings {
		pod := c.RunPodWith(ctrfixture.PodOptions{Name: "replay-" + name, Namespace: "default", OwnNetwork: true,
			Sysctls: map[string]string{"net.ipv4.ping_group_range": "0 2147483647"}})
		code := c.WaitExit(c.RunContainer(pod, ctrfixture.ContainerSpec{Name: "ping", Command: cmd, Caps: []string{}}), 30*time.Second*testutil.Slow())
		if (code == 0) != (name == "iputils-like") {
			t.Errorf("%s with ping_group_range and no capability: exit %d; only the datagram fallback should answer", name, code)
		}
		c.RemovePod(pod)
	}
}
