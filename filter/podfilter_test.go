package filter

import (
	"strings"
	"testing"

	"github.com/capsrec/capsrec/core"
)

func TestPodFilterMatches(t *testing.T) {
	web := &core.Container{ID: "w", Name: "nginx", Pod: &core.Pod{Namespace: "prod", Name: "web-1", Labels: map[string]string{"app": "web"}}}
	db := &core.Container{ID: "d", Name: "postgres", Pod: &core.Pod{Namespace: "prod", Name: "db-0", Labels: map[string]string{"app": "db"}}}
	bare := &core.Container{ID: "b", Name: "build"}                    // a container in no pod
	named := &core.Container{ID: "n", Undescribed: true}               // only a cgroup's name says so
	forged := &core.Container{ID: "f", Undescribed: true, Name: "web"} // names are not identity
	for _, tc := range []struct {
		name           string
		pods, ns, ctrs []string
		selector       string
		host           bool
		match          []*core.Container
		refuse         []*core.Container
		hostMatches    bool
	}{
		{name: "no flag: everything", match: []*core.Container{web, db, bare, named}, hostMatches: true},
		{name: "--pod glob", pods: []string{"web-*"}, match: []*core.Container{web}, refuse: []*core.Container{db, bare, named, forged}},
		{name: "--namespace and --container", ns: []string{"prod"}, ctrs: []string{"postgres"}, match: []*core.Container{db}, refuse: []*core.Container{web, bare}},
		{name: "--selector", selector: "app=web", match: []*core.Container{web}, refuse: []*core.Container{db, bare, named}},
		{name: "--host: no container, and those only a name calls one", host: true, match: []*core.Container{named, forged}, refuse: []*core.Container{web, db, bare}, hostMatches: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := NewPodFilter(tc.pods, tc.ns, tc.ctrs, tc.selector, tc.host)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.match {
				if !f.Matches(c) || !f.Kernel(c) {
					t.Errorf("%s does not match", c.ID)
				}
			}
			for _, c := range tc.refuse {
				if f.Matches(c) {
					t.Errorf("%s matches", c.ID)
				}
			}
			if f.Matches(nil) != tc.hostMatches {
				t.Errorf("a host process: match %v, want %v", f.Matches(nil), tc.hostMatches)
			}
		})
	}
}

func TestPodFilterRefuses(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pods      []string
		selector  string
		host      bool
		wantError string
	}{
		{"--host with --pod", []string{"web"}, "", true, "--host selects processes in no container: it excludes --pod, --namespace, --container and --selector"},
		{"a bad glob", []string{"web["}, "", false, `--pod "web[": bad glob`},
		{"a bad selector", nil, "app in (", false, "--selector: "},
	} {
		_, err := NewPodFilter(tc.pods, nil, nil, tc.selector, tc.host)
		if err == nil || !strings.Contains(err.Error(), tc.wantError) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.wantError)
		}
	}
}
