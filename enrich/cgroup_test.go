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
