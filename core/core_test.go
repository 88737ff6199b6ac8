package core

import (
	"slices"
	"testing"
)

func TestMethods(t *testing.T) {
	if !slices.Equal(Methods, []Method{MethodTracepoint, MethodFexit, MethodKprobe}) {
		t.Errorf("Methods = %v: want enum attach_method's order", Methods)
	}
	for id, want := range map[uint8]Method{MethodIDTracepoint: MethodTracepoint, MethodIDFexit: MethodFexit, MethodIDKprobe: MethodKprobe, 0: "", 200: ""} {
		if got := MethodOf(id); got != want {
			t.Errorf("MethodOf(%d) = %q, want %q", id, got, want)
		}
	}
	for in, want := range map[string]Method{"auto": MethodAuto, "Fexit": MethodFexit, "kprobe": MethodKprobe} {
		if got, err := ParseMethod(in); err != nil || got != want {
			t.Errorf("ParseMethod(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseMethod("uprobe"); err == nil || err.Error() != `unknown attach method "uprobe" (want auto, tracepoint, fexit or kprobe)` {
		t.Errorf("ParseMethod(uprobe): %v", err)
	}
}

func TestClassNames(t *testing.T) {
	for c := range ClassCount {
		if got, ok := ParseClass(c.String()); !ok || got != c {
			t.Errorf("class %d: %q reads back as %d, %v", c, c.String(), got, ok)
		}
	}
	if ClassUserNS.String() != "userns" || ClassOverrideCreds.String() != "override_creds" {
		t.Errorf("names: %v", ClassNames)
	}
	if _, ok := ParseClass("root"); ok {
		t.Error(`ParseClass("root") took it`)
	}
}

// The kernel counts a user-namespace check as the need it decided it was.
func TestAggKey(t *testing.T) {
	c := &Check{Cap: 21, Class: ClassUserNS, AuditKnown: true, Audit: false, CgroupID: 7}
	k := c.AggKey()
	if k.Class != ClassNeed || k.Audit != 2 || !k.Granted || k.CgroupID != 7 || k.Cap != 21 {
		t.Errorf("AggKey = %+v", k)
	}
	c.AuditKnown = false
	if c.AggKey().Audit != 0 {
		t.Error("the tracepoint's checks have no audit in the key")
	}
}

func TestNetArg(t *testing.T) {
	for _, tc := range []struct {
		cap      int32
		arg      uint16
		port     uint16
		protocol int32
	}{
		{10, 80, 80, -1},
		{13, 2, 0, 1}, // protocol + 1
		{13, 0, 0, -1},
		{21, 80, 0, -1},
	} {
		c := &Check{Cap: tc.cap, NetArg: tc.arg}
		if c.BindPort() != tc.port || c.SocketProtocol() != tc.protocol {
			t.Errorf("cap %d arg %d: port %d protocol %d", tc.cap, tc.arg, c.BindPort(), c.SocketProtocol())
		}
	}
}
