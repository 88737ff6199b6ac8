package profile

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/tetragon"
)

// nsCheck is a granted need of container "app" for readiness: own* puts it
// in a namespace of its own (else the host's, inum 1).
type nsCheck struct {
	cap             int32
	site, via       string
	ownUser, ownNet bool
	hostPID         bool
	ret             int32
	class           core.Class
}

func readinessOf(t *testing.T, checks ...nsCheck) (*Readiness, Recommendation) {
	t.Helper()
	r := onlySubject(t, profileOfNS(t, checks...)).Recommend()
	return r.UserNS, r
}

// profileOfNS writes the checks with capsrec's JSON writer and reads them back.
func profileOfNS(t *testing.T, checks ...nsCheck) *Profile {
	t.Helper()
	var host [core.NSCount]uint32
	for i := range host {
		host[i] = 1
	}
	var buf bytes.Buffer
	w := tetragon.NewWriter(&buf, "node1", host)
	for i, n := range checks {
		c := &core.Check{
			Time:    t0.Add(time.Duration(i) * time.Second),
			Process: &core.Process{Tgid: uint32(100 + i), ExecID: "eA==", Binary: "/bin/app"},
			Cap:     n.cap, Ret: n.ret, Method: core.MethodTracepoint, Syscall: -1, CallSite: n.site, CallSiteVia: n.via, Class: n.class,
			Container: &core.Container{ID: "abc", Runtime: "containerd", Name: "app", Pod: &core.Pod{Namespace: "prod", Name: pod}},
		}
		c.NS = host
		for i, own := range map[int]bool{core.NSUser: n.ownUser, core.NSNet: n.ownNet, core.NSPid: !n.hostPID, core.NSIpc: true} {
			if own {
				c.NS[i] = 2
			}
		}
		if err := w.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Flush()
	return readBytes(t, map[string][]byte{"node1.json": buf.Bytes()}, ReadOptions{})
}

func TestUserNSReadiness(t *testing.T) {
	own := nsCheck{cap: chown, site: "setattr_prepare", via: "capable_wrt_inode_uidgid", ownNet: true}
	bind := nsCheck{cap: netBind, site: "__inet_bind", via: "ns_capable", ownNet: true}
	mknod := nsCheck{cap: 27, site: "vfs_mknod", via: "capable", ownNet: true}
	odd := nsCheck{cap: sysAdmin, site: "some_ioctl", via: "ns_capable", ownNet: true}
	for _, c := range []struct {
		name                    string
		checks                  []nsCheck
		ready, decided, already bool
		reason                  string
	}{
		{"own namespaces only", []nsCheck{own, bind}, true, true, false, ""},
		{"capable()", []nsCheck{own, mknod}, false, true, false,
			"CAP_MKNOD at vfs_mknod (through capable()) by /bin/app: checked against the host's user namespace, refused in the pod's own"},
		{"an unknown caller of ns_capable", []nsCheck{own, odd}, false, false, false, "CAP_SYS_ADMIN at some_ioctl (through ns_capable()) by /bin/app: capsrec does not know"},
		{"capable() and an unknown one: decided", []nsCheck{mknod, odd}, false, true, false, "CAP_MKNOD"},
		{"hostNetwork", []nsCheck{{cap: chown, site: "setattr_prepare", via: "capable_wrt_inode_uidgid"}}, false, true, false, "hostNetwork"},
		{"hostPID", []nsCheck{{cap: chown, site: "setattr_prepare", via: "capable_wrt_inode_uidgid", ownNet: true, hostPID: true}}, false, true, false, "hostPID"},
		{"in its own user namespace already", []nsCheck{{cap: chown, site: "setattr_prepare", via: "capable_wrt_inode_uidgid", ownNet: true, ownUser: true},
			{cap: 27, site: "vfs_mknod", via: "capable", ownNet: true, ownUser: true, ret: -1, class: core.ClassUserNS}}, true, true, true,
			"CAP_MKNOD was refused once against a user namespace it does not own"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, rec := readinessOf(t, c.checks...)
			if r == nil {
				t.Fatal("no readiness for a container")
			}
			if r.Ready != c.ready || r.Decided != c.decided || r.Already != c.already || !strings.Contains(strings.Join(r.Reasons, "; "), c.reason) {
				t.Errorf("got %+v\nwant ready %v, decided %v, already %v, a reason with %q", r, c.ready, c.decided, c.already, c.reason)
			}
			if c.already && strings.Join(rec.Add, ",") != "CHOWN" {
				t.Errorf("in its own user namespace: add %v, want the need checked there, CHOWN", rec.Add)
			}
		})
	}
	// -o patch --userns: hostUsers: false only where every container is ready.
	for _, c := range []struct {
		checks []nsCheck
		want   string
		set    bool
	}{
		{[]nsCheck{own, bind}, "    spec:\n      hostUsers: false\n", true},
		{[]nsCheck{own, mknod}, "      # hostUsers: false is not set: app is not ready for it (see its note)\n", false},
	} {
		var patch bytes.Buffer
		if err := WritePatch(&patch, profileOfNS(t, c.checks...), nil, PatchOptions{UserNS: true}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(patch.String(), c.want) || strings.Contains(patch.String(), "\n      hostUsers: false\n") != c.set {
			t.Errorf("want %q in:\n%s", c.want, patch.String())
		}
	}
}
