package ctrfixture

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/capsrec/capsrec/internal/testutil"
)

// cniPlugins are built from test/cni's module: a pod network namespace of
// its own gets an eth0 (podveth: both ends in the pod, nothing on the host)
// and its loopback up.
var cniPlugins = []string{
	"./podveth",
	"github.com/containernetworking/plugins/plugins/main/loopback",
	"github.com/containernetworking/plugins/plugins/ipam/host-local",
}

var cniBuild struct {
	once sync.Once
	dir  string
	err  error
}

// cniBin builds the plugins once per test binary, into the repository's
// ignored cache.
func cniBin(t testing.TB) string {
	cniBuild.once.Do(func() {
		dir := filepath.Join(testutil.Root(), ".cache", "cni-bin")
		build := exec.Command("go", append([]string{"build", "-o", dir + "/"}, cniPlugins...)...)
		build.Dir = filepath.Join(testutil.Root(), "test", "cni")
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
		if out, err := build.CombinedOutput(); err != nil {
			cniBuild.err = fmt.Errorf("building the CNI plugins: %w\n%s", err, out)
			return
		}
		cniBuild.dir = dir
	})
	if cniBuild.err != nil {
		t.Fatal(cniBuild.err)
	}
	return cniBuild.dir
}

// cniConfig writes the pod network's configuration under dir.
func cniConfig(dir string) error {
	conf := filepath.Join(dir, "cni", "conf")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		return err
	}
	list := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "capsrec-pods", "plugins": [{"type": "podveth",
  "ipam": {"type": "host-local", "subnet": "10.89.0.0/16", "dataDir": %q}}]}
`, filepath.Join(dir, "cni", "ipam"))
	return os.WriteFile(filepath.Join(conf, "10-pods.conflist"), []byte(list), 0o644)
}
