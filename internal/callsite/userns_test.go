package callsite

import "testing"

func TestUserNSScope(t *testing.T) {
	for _, c := range []struct {
		site, via string
		want      Scope
	}{
		{"vfs_mknod", "capable", ScopeHost},
		{"can_nice", "capable.cold", ScopeHost}, // compiler suffixes do not matter
		{"anything_at_all", "capable", ScopeHost},
		{"setattr_prepare", "capable_wrt_inode_uidgid", ScopeOwn},
		{"rtnetlink_rcv_msg", "netlink_net_capable", ScopeOwn},
		{"__inet_bind", "ns_capable", ScopeOwn},
		{"__x64_sys_chroot", "ns_capable", ScopeOwn},
		{"__arm64_sys_chroot", "ns_capable", ScopeOwn},
		{"__do_sys_setgroups", "ns_capable_setid", ScopeOwn},
		{"__sys_setresuid", "ns_capable_setid", ScopeOwn},
		{"__x64_sys_sethostname", "ns_capable", ScopeOwn},
		// ns_capable from a caller not in the table: it may pass &init_user_ns (sk_capable's tail call).
		{"some_driver_ioctl", "ns_capable", ScopeUnknown},
		{"sock_setsockopt_unknown", "file_ns_capable", ScopeUnknown},
		{"vfs_mknod", "", ScopeUnknown}, // no capability function known (Tetragon, --live)
		{"", "", ScopeUnknown},
	} {
		if got := UserNSScope(c.site, c.via); got != c.want {
			t.Errorf("UserNSScope(%q, %q) = %s, want %s", c.site, c.via, got, c.want)
		}
	}
}
