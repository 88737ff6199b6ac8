package profile

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/tetragon"
)

// roundTrip profiles one check twice: as the live pipeline does (FromCheck)
// and as capsrec profile does from what record -o json wrote of it. The two
// must agree: the writer and the reader of the Tetragon format are two homes
// of one format.
func roundTrip(t *testing.T, c *core.Check) (live, read []byte) {
	t.Helper()
	direct := New()
	direct.Add(FromCheck(c))
	var events bytes.Buffer
	w := tetragon.NewWriter(&events, "node", [core.NSCount]uint32{})
	if err := w.Write(c); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	fromJSON := New()
	if err := Read("events", bytes.NewReader(events.Bytes()), ReadOptions{Workers: 1}, fromJSON); err != nil {
		t.Fatalf("the reader refuses what the writer wrote: %v\n%s", err, events.Bytes())
	}
	var a, b bytes.Buffer
	if err := writeJSON(&a, direct); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(&b, fromJSON); err != nil {
		t.Fatal(err)
	}
	return a.Bytes(), b.Bytes()
}

// FuzzRoundTrip: whatever a check holds (hostile names included), its
// profile read back from the JSON the writer made is the profile made from
// the check itself.
func FuzzRoundTrip(f *testing.F) {
	f.Add("/usr/bin/app", "app", "web-7d4b9c8f6d-x2x9z", "prod", "registry/web:1", uint8(0), true, uint8(0), int16(92), uint32(0), false, uint16(0), true)
	f.Add("/usr/sbin/runc", "", "", "", "", uint8(8), true, uint8(2), int16(157), uint32(0), false, uint16(0), false)
	f.Add("/bin/busybox", "server", "web-0", "default", "busybox", uint8(10), false, uint8(0), int16(49), uint32(1000), false, uint16(80), true)
	f.Add("/usr/bin/\x1b[31mred\u202e", "c\"\\", "p\n", "n\x00", "i\t", uint8(21), true, uint8(4), int16(-1), uint32(65534), true, uint16(3), true)
	f.Add("/bin/sh", "docker-run-name", "", "", "alpine", uint8(21), true, uint8(0), int16(165), uint32(0), false, uint16(0), false)
	f.Fuzz(func(t *testing.T, binary, container, pod, namespace, image string, capability uint8, granted bool, class uint8, syscall int16, euid uint32, override bool, netArg uint16, inPod bool) {
		c := &core.Check{
			Time:    time.Date(2026, 12, 4, 12, 0, 0, 123456789, time.UTC),
			Process: &core.Process{Tgid: 100, ExecID: "eA==", Binary: binary},
			Cap:     int32(capability % 41), Method: core.MethodTracepoint, Syscall: int32(syscall),
			OverrideCreds: override, Class: core.Class(class % uint8(core.ClassCount)), EUID: euid, NetArg: netArg,
			NetSysctls: core.NetSysctls{PortStart: -1},
		}
		if !granted {
			c.Ret = -1
		}
		switch {
		case inPod:
			c.Container = &core.Container{ID: "abc", Runtime: "containerd", Name: container, ImageName: image,
				Pod: &core.Pod{Namespace: namespace, Name: pod}}
		case container != "" || image != "":
			// docker run, ctr run, or one the runtime did not describe (no name)
			c.Container = &core.Container{ID: "abc", Runtime: "containerd", Name: container, ImageName: image, Undescribed: container == ""}
		}
		live, read := roundTrip(t, c)
		// As JSON values: a name that is not UTF-8 is U+FFFD in both, escaped or not.
		var a, b any
		if err := json.Unmarshal(live, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(read, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("the profile of the check and that of its JSON differ:\nlive: %s\nread: %s", live, read)
		}
	})
}
