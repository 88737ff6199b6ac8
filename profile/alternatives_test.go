package profile

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/tetragon"
)

// netCheck is a check (or a Listen item) of pod's container "server" for the
// alternatives' tests: ns 2 is the pod's own network namespace, 1 the host's.
type netCheck struct {
	pod     string
	cap     int32
	ret     int32
	site    string
	netArg  uint16
	start   int32 // the namespace's ip_unprivileged_port_start
	listen  bool
	hostNet bool
	noCtr   bool // a host process
}

var hostNS = [core.NSCount]uint32{core.NSNet: 1}

// profileOfNet writes the checks with capsrec's JSON writer and profiles
// what the reader reads back: the facts must survive the round trip.
func profileOfNet(t *testing.T, checks ...netCheck) *Profile {
	t.Helper()
	return readBytes(t, map[string][]byte{"node1.json": netJSON(t, checks...)}, ReadOptions{})
}

// netJSON is the checks, a second apart from t0, as capsrec's JSON writer writes them.
func netJSON(t *testing.T, checks ...netCheck) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := tetragon.NewWriter(&buf, "node1", hostNS)
	for i, n := range checks {
		c := &core.Check{
			Time:    t0.Add(time.Duration(i) * time.Second),
			Process: &core.Process{Tgid: uint32(100 + i), ExecID: "eA==", Binary: "/bin/server"},
			Cap:     n.cap, Ret: n.ret, Method: core.MethodTracepoint, Syscall: -1, CallSite: n.site,
			NetArg: n.netArg, NetSysctls: core.NetSysctls{PortStart: n.start, PingGroup: [2]uint32{1, 0}}, Listen: n.listen,
		}
		c.NS[core.NSNet] = 2
		if n.hostNet {
			c.NS[core.NSNet] = 1
		}
		if !n.noCtr {
			c.Container = &core.Container{ID: "abc", Runtime: "containerd", Name: "server", Pod: &core.Pod{Namespace: "prod", Name: n.pod}}
		}
		if err := w.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Flush()
	return buf.Bytes()
}

func onlySubject(t *testing.T, p *Profile) *SubjectProfile {
	t.Helper()
	if p.Len() != 1 {
		t.Fatalf("%d subjects, want 1", p.Len())
	}
	return p.Subjects()[0]
}

const pod = "web-7d4b9c8f6d-x2x9z"

func TestBindAlternative(t *testing.T) {
	bind := func(port uint16) netCheck {
		return netCheck{pod: pod, cap: netBind, site: "__inet_bind", netArg: port, start: 1024}
	}
	for _, c := range []struct {
		name    string
		checks  []netCheck
		value   string
		covers  string
		applies bool
		why     string
	}{
		{"two ports", []netCheck{bind(443), bind(80), bind(80)}, "80", "bind(2) to ports 80, 443", true, ""},
		{"v6", []netCheck{{pod: pod, cap: netBind, site: "__inet6_bind.isra.0", netArg: 53, start: 1024}}, "53", "bind(2) to port 53", true, ""},
		{"refused too", []netCheck{{pod: pod, cap: netBind, ret: -1, site: "__inet_bind", netArg: 25, start: 1024}, bind(80)}, "25", "bind(2) to ports 25, 80", true, ""},
		{"a port not read", []netCheck{bind(80), {pod: pod, cap: netBind, site: "__inet_bind", start: 1024}}, "0",
			"bind(2) to port 80 and 1 bind whose port was not read (io_uring or another path)", true, ""},
		{"another call site", []netCheck{bind(80), {pod: pod, cap: netBind, site: "sctp_do_bind", start: 1024}}, "80",
			"bind(2) to port 80 and 1 check elsewhere (sctp_do_bind)", false, "1 need at a call site the sysctl does not decide (sctp_do_bind)"},
		{"hostNetwork", []netCheck{{pod: pod, cap: netBind, site: "__inet_bind", netArg: 80, start: 1024, hostNet: true}}, "80",
			"bind(2) to port 80", false, "hostNetwork: the sysctl is the node's, a pod cannot set it"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sp := onlySubject(t, profileOfNet(t, c.checks...))
			r := sp.Recommend()
			if len(r.Alternatives) != 1 {
				t.Fatalf("alternatives %+v, want one", r.Alternatives)
			}
			a := r.Alternatives[0]
			if a.Replaces != "NET_BIND_SERVICE" || a.Sysctl.Name != SysctlPortStart || a.Sysctl.Value != c.value || a.Covers != c.covers ||
				a.Applies != c.applies || a.Why != c.why {
				t.Errorf("got %+v\nwant %s=%s covering %q, applies %v, why %q", a, SysctlPortStart, c.value, c.covers, c.applies, c.why)
			}
			used := r.WithAlternatives()
			if wantAdd := []string{}; c.applies && (!slices.Equal(used.Add, wantAdd) || len(used.Sysctls) != 1 || used.Sysctls[0].Value != c.value) {
				t.Errorf("with alternatives: add %v, sysctls %+v", used.Add, used.Sysctls)
			}
			if !c.applies && (!slices.Equal(used.Add, r.Add) || len(used.Sysctls) != 0) {
				t.Errorf("an alternative that does not apply was used: add %v, sysctls %+v", used.Add, used.Sysctls)
			}
		})
	}
}

// A bind the namespace let pass with no check (containerd 2's default) is
// no need here, but the profile depends on the sysctl: it says so and sets
// it. Where a pod cannot set it, NET_BIND_SERVICE is the portable answer.
func TestUncheckedListen(t *testing.T) {
	sp := onlySubject(t, profileOfNet(t, netCheck{pod: pod, cap: netBind, netArg: 912, start: 0, listen: true},
		netCheck{pod: pod, cap: netBind, netArg: 443, start: 0, listen: true}))
	r := sp.Recommend()
	if len(r.Add) != 0 || sp.Checks != 0 || len(r.Sysctls) != 1 || r.Sysctls[0].Value != "443" ||
		!strings.Contains(r.Sysctls[0].Why, "listened on ports 443, 912 with no NET_BIND_SERVICE check") ||
		!strings.Contains(r.Sysctls[0].Why, SysctlPortStart+"=0") {
		t.Errorf("add %v, checks %d, sysctls %+v", r.Add, sp.Checks, r.Sysctls)
	}
	var patch bytes.Buffer
	if err := WritePatch(&patch, profileOfNet(t, netCheck{pod: pod, cap: netBind, netArg: 80, start: 0, listen: true}), nil, PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if want := "      securityContext:\n        sysctls:\n        - name: net.ipv4.ip_unprivileged_port_start\n          value: \"80\"\n"; !strings.Contains(patch.String(), want) {
		t.Errorf("the patch does not set the sysctl the profile depends on:\n%s", patch.String())
	}
	for name, n := range map[string]netCheck{
		"hostNetwork": {pod: pod, cap: netBind, netArg: 80, start: 0, listen: true, hostNet: true},
		"host":        {cap: netBind, netArg: 80, start: 0, listen: true, noCtr: true},
	} {
		r := onlySubject(t, profileOfNet(t, n)).Recommend()
		if !slices.Equal(r.Add, []string{"NET_BIND_SERVICE"}) || len(r.Sysctls) != 0 || !strings.Contains(r.HostNetUnchecked, "port 80") {
			t.Errorf("%s: add %v, sysctls %+v, unchecked %q; want NET_BIND_SERVICE", name, r.Add, r.Sysctls, r.HostNetUnchecked)
		}
	}
}

// ping_group_range stands in for NET_RAW only for a program that can use
// ICMP datagram sockets: never applied, said as a condition.
func TestRawICMPAlternativeIsConditional(t *testing.T) {
	icmp := netCheck{pod: pod, cap: 13, site: "inet_create", netArg: 1 + 1, start: 1024}
	a := onlySubject(t, profileOfNet(t, icmp)).Recommend().Alternatives
	if len(a) != 1 || a[0].Replaces != "NET_RAW" || a[0].Applies || !a[0].Conditional || a[0].Sysctl.Name != SysctlPingGroup {
		t.Errorf("raw ICMP: %+v", a)
	}
	packet := netCheck{pod: pod, cap: 13, site: "packet_create", netArg: 0x0300 + 1, start: 1024}
	if a := onlySubject(t, profileOfNet(t, packet)).Recommend().Alternatives; len(a) != 0 {
		t.Errorf("a packet socket has no alternative: %+v", a)
	}
	if a := onlySubject(t, profileOfNet(t, icmp, packet)).Recommend().Alternatives; len(a) != 1 || a[0].Conditional {
		t.Errorf("raw ICMP and a packet socket: %+v, want it not to apply", a)
	}
}

// Profiles of two nodes merge their facts.
func TestMergeNetFacts(t *testing.T) {
	p := profileOfNet(t, netCheck{pod: pod, cap: netBind, site: "__inet_bind", netArg: 443, start: 1024})
	p.Merge(profileOfNet(t, netCheck{pod: "web-7d4b9c8f6d-q8w2k", cap: netBind, site: "__inet_bind", netArg: 80, start: 1024}))
	if a := onlySubject(t, p).Recommend().Alternatives; len(a) != 1 || a[0].Sysctl.Value != "80" || a[0].Covers != "bind(2) to ports 80, 443" {
		t.Errorf("merged: %+v", a)
	}
}
