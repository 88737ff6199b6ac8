package enrich

import (
	"os"
	"strings"
	"testing"
)

func TestParseCgroupSamples(t *testing.T) {
	data, err := os.ReadFile("testdata/cgroup-paths.txt")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, " | ")
		path, id, runtime, uid := f[0], f[1], f[2], f[3]
		ref, ok := ParseCgroup(path)
		if id == "-" {
			if ok {
				t.Errorf("%s: found %+v, want no container", path, ref)
			}
			continue
		}
		want := CgroupRef{ID: id}
		if runtime != "-" {
			want.Runtime = runtime
		}
		if uid != "-" {
			want.PodUID = uid
		}
		if !ok || ref != want {
			t.Errorf("%s:\n got %+v\nwant %+v", path, ref, want)
		}
	}
}

func TestSpecCgroupPath(t *testing.T) {
	for in, want := range map[string]string{
		"kubepods-besteffort-pod0b6e1c4a_8d4b_4c53_9a7e_2f1d3c5b7a90.slice:cri-containerd:5f3c": "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b6e1c4a_8d4b_4c53_9a7e_2f1d3c5b7a90.slice/cri-containerd-5f3c.scope",
		"kubepods-pod1.slice:crio:abc":              "/kubepods.slice/kubepods-pod1.slice/crio-abc.scope",
		"system.slice:docker:abc":                   "/system.slice/docker-abc.scope",
		"-.slice::x.slice":                          "/x.slice",
		"/capsrec-k8s/kubepods/besteffort/pod1/abc": "/capsrec-k8s/kubepods/besteffort/pod1/abc",
		"":                          "",
		"nonsense":                  "",
		"a.slice:b":                 "",
		"machine.slice:libpod:0123": "/machine.slice/libpod-0123.scope",
	} {
		if got := SpecCgroupPath(in); got != want {
			t.Errorf("SpecCgroupPath(%q) = %q, want %q", in, got, want)
		}
	}
}
