package cluster

import (
	"flag"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/capsrec/capsrec/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/*.yaml from the specs")

// The node pod's Job, golden (as kubectl-trace tests its Job): what the
// recorder may do on a node is reviewed here, line by line.
func TestNodePodJob(t *testing.T) {
	for _, k := range passedEnv { // the tests' knobs stay out of the golden file
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	base := NodePodSpec{
		Namespace: "shop", Node: "node-1", PullPolicy: corev1.PullIfNotPresent,
		RuntimeEndpoint: "unix:///run/containerd/containerd.sock",
		Args:            []string{"record", "--pod", "web", "--namespace", "shop"},
		Deadline:        10 * time.Minute,
	}
	image := base
	image.Image, image.Binary = "ghcr.io/capsrec/capsrec:dev", "/capsrec"
	copied := base
	copied.Image, copied.Copy, copied.OldKernel = "docker.io/library/busybox:1", true, true
	for name, s := range map[string]NodePodSpec{"job-image": image, "job-copy": copied} {
		got, err := yaml.Marshal(s.job())
		if err != nil {
			t.Fatal(err)
		}
		testutil.Golden(t, "testdata/"+name+".yaml", got, *update)
	}
}
