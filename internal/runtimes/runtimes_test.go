package runtimes

import (
	"os"
	"path/filepath"
	"testing"
)

// childMark follows the kernel's rules (capsrec.bpf.c's mark_runtime_exec) for
// what runs now below a marked process.
func TestChildMark(t *testing.T) {
	bins := []Binary{{Path: "/usr/sbin/runc", Ino: 10, Dev: 1, Size: 1000}, {Path: "/usr/bin/containerd-shim-runc-v2", Ino: 20, Dev: 1, Size: 2000}}
	byID := map[[2]uint64]int{{1, 10}: 0, {1, 20}: 1}
	runc, shim := proc{id: [2]uint64{1, 10}}, proc{id: [2]uint64{1, 20}}
	containerd := proc{id: [2]uint64{1, 99}}
	clone := proc{id: [2]uint64{5, 7}, size: 1000, unlinked: true}
	other := proc{id: [2]uint64{1, 55}}
	for _, c := range []struct {
		name   string
		parent uint8
		p, pp  proc
		want   uint8
	}{
		{"the server runs a shim", MarkServer, shim, containerd, 2},
		{"a shim runs runc", 2, runc, shim, 1},
		{"runc re-execs an unlinked copy of its size", 1, clone, runc, 1 | MarkClone},
		{"an unlinked file of another size", 1, proc{id: [2]uint64{5, 8}, size: 999, unlinked: true}, runc, 0},
		// A shim's child may be a container's first process, reparented to it.
		{"a shim's child runs an unlinked file of the shim's size", 2, proc{id: [2]uint64{5, 9}, size: 2000, unlinked: true}, shim, 0},
		{"a shim's child runs an unlinked file of runc's size", 2, clone, shim, 0},
		{"the server runs an unlinked file", MarkServer, clone, containerd, 0},
		{"the clone runs the container's command", 1 | MarkClone, other, clone, 0},
		{"the clone runs runc again", 1 | MarkClone, runc, clone, 0},
		{"runc runs anything else", 1, other, runc, 0},
		{"a forked child keeps its parent's", 1 | MarkClone, clone, clone, 1 | MarkClone},
		{"the server's forked child", MarkServer, containerd, containerd, MarkServer},
	} {
		if got := childMark(c.parent, c.p, c.pp, byID, bins); got != c.want {
			t.Errorf("%s: mark %#x, want %#x", c.name, got, c.want)
		}
	}
}

func TestIsShim(t *testing.T) {
	for path, want := range map[string]bool{
		"/usr/bin/containerd-shim-runc-v2": true, "/usr/bin/containerd-shim": true, "/usr/libexec/crio/conmon": true,
		"/usr/bin/conmonrs": true, "/usr/sbin/runc": false, "/usr/bin/crun": false, "/usr/bin/runsc": false,
	} {
		if IsShim(path) != want {
			t.Errorf("IsShim(%s) = %v", path, !want)
		}
	}
}

func TestReadBundles(t *testing.T) {
	dir := t.TempDir()
	for id, pid := range map[string]string{"aaa": "4242\n", "bbb": ""} {
		if err := os.MkdirAll(filepath.Join(dir, "k8s.io", id), 0o700); err != nil {
			t.Fatal(err)
		}
		if pid != "" {
			if err := os.WriteFile(filepath.Join(dir, "k8s.io", id, "init.pid"), []byte(pid), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := readBundles(dir)
	if len(got) != 2 || got["aaa"] != 4242 || got["bbb"] != 0 {
		t.Fatalf("readBundles = %v, want aaa:4242 and bbb:0 (no init yet)", got)
	}
	if got := flagValue([]string{"shim", "-namespace", "k8s.io", "-id", "aaa", "-address", "x"}, "-id"); got != "aaa" {
		t.Fatalf("flagValue = %q", got)
	}
}
