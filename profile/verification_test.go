package profile

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// A patch without the capabilities --minimize found optional, and the proof
// in its comments; the same proof in the JSON.
func TestVerifiedPatchOmitsOptional(t *testing.T) {
	p := profileOfNet(t, netCheck{pod: pod, cap: netBind, site: "__inet_bind", netArg: 80, start: 1024},
		netCheck{pod: pod, cap: capNetRaw, site: "inet_create", netArg: 4, start: 1024})
	o := PatchOptions{}
	if got, want := p.PatchAdds(o), []ContainerCap{{"server", "NET_BIND_SERVICE"}, {"server", "NET_RAW"}}; !slices.Equal(got, want) {
		t.Fatalf("PatchAdds %v, want %v", got, want)
	}
	o.Omit = map[string][]string{"server": {"NET_RAW"}}
	if got := p.PatchAdds(o); !slices.Equal(got, []ContainerCap{{"server", "NET_BIND_SERVICE"}}) {
		t.Errorf("PatchAdds with NET_RAW omitted: %v", got)
	}
	p.Verification = &Verification{Verified: true, Pods: []string{"web-1\x1b[31m"}, Window: "30s", Signals: []string{"Ready (readiness probes) and no restarts"},
		Tries: []Try{
			{Container: "server", Cap: "NET_RAW", Optional: true, Tolerated: []string{"CAP_NET_RAW denied 1 time to x (/bin/server; socket)"}},
			{Container: "server", Cap: "NET_BIND_SERVICE", Problems: []string{"pod web-2: container server restarted 2 times"}},
		},
		Outcome: "the workload is left on the last verified patch: without the capabilities found optional"}
	var buf bytes.Buffer
	if err := WritePatch(&buf, p, nil, o); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		`# verified: applied under recording to 1 pod (web-1\x1b[31m), watched 30s after the rollout, by Ready (readiness probes) and no restarts` + "\n",
		"# verify: no need was denied\n",
		"# minimize: NET_RAW of container server is optional: healthy without it for 30s; refused and tolerated: CAP_NET_RAW denied 1 time to x (/bin/server; socket)\n",
		"# minimize: NET_BIND_SERVICE of container server is needed: without it pod web-2: container server restarted 2 times\n",
		"add: [NET_BIND_SERVICE]\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the patch lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("a pod name's escape reached the patch:\n%q", out)
	}
	buf.Reset()
	if err := Write(&buf, p, "json", Style{}); err != nil {
		t.Fatal(err)
	}
	var j struct {
		Verification struct {
			Verified bool
			Minimize []struct {
				Capability string
				Optional   bool
			}
		}
	}
	if err := json.Unmarshal(buf.Bytes(), &j); err != nil || !j.Verification.Verified || len(j.Verification.Minimize) != 2 || !j.Verification.Minimize[0].Optional {
		t.Errorf("JSON verification: %+v (%v)\n%s", j, err, buf.String())
	}
}

// DeniedNeeds names each refused need, by container and capability.
func TestDeniedNeeds(t *testing.T) {
	p := profileOfNet(t, netCheck{pod: pod, cap: netBind, ret: -1, site: "__inet_bind", netArg: 80, start: 1024},
		netCheck{pod: pod, cap: capNetRaw, site: "inet_create", netArg: 4, start: 1024})
	d := DeniedNeeds(p)
	if len(d) != 1 || d[0].Container != "server" || d[0].Cap != "NET_BIND_SERVICE" || !strings.HasPrefix(d[0].Text, "CAP_NET_BIND_SERVICE denied 1 time to ") {
		t.Errorf("DeniedNeeds %+v", d)
	}
}

// Since drops the checks before it: a StatefulSet's new pod has its old one's name.
func TestReadSince(t *testing.T) {
	data := netJSON(t, netCheck{pod: pod, cap: netBind, ret: -1, site: "__inet_bind", netArg: 80, start: 1024},
		netCheck{pod: pod, cap: netBind, site: "__inet_bind", netArg: 80, start: 1024})
	p := New()
	if err := Read("node1", bytes.NewReader(data), ReadOptions{Since: t0.Add(time.Second)}, p); err != nil {
		t.Fatal(err)
	}
	sp := onlySubject(t, p)
	if c := sp.Caps[capNetBindService]; sp.Checks != 1 || c == nil || c.Denied != 0 {
		t.Errorf("since the second check: %d checks, %+v; want the granted one alone", sp.Checks, c)
	}
}
