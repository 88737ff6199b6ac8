package kubectl

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/capsrec/capsrec/internal/elfbin"
)

var binaryForFlag = &cli.StringSliceFlag{
	Name:  "binary-for",
	Usage: "in copy mode, the static capsrec to copy to nodes of a platform: linux/arm64=PATH; repeatable (default: this binary for its own platform, capsrec-linux-ARCH beside it for others, as make release writes them)",
}

// binaries chooses the static capsrec copied into a node's recorder pod, by
// the node's platform: --binary-for, else this binary on its own platform,
// else a sibling capsrec-OS-ARCH in this binary's folder.
type binaries struct {
	self   string            // this binary
	given  map[string]string // platform (linux/arm64) -> path, from --binary-for
	chosen map[string]string // platform -> path, once checked
}

func newBinaries(flags []string) (*binaries, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this binary to copy it: %w", err)
	}
	b := &binaries{self: self, given: map[string]string{}, chosen: map[string]string{}}
	for _, f := range flags {
		platform, path, ok := strings.Cut(f, "=")
		if !ok || path == "" || !strings.Contains(platform, "/") {
			return nil, fmt.Errorf("--binary-for %q: want OS/ARCH=PATH (linux/arm64=dist/capsrec-linux-arm64)", f)
		}
		if err := checkBinary(path, platform); err != nil {
			return nil, fmt.Errorf("--binary-for %s: %w", platform, err)
		}
		b.given[platform] = path
	}
	return b, nil
}

// forPlatform is the binary for a node of platform (linux/arm64), or one line
// naming the node and what to pass.
func (b *binaries) forPlatform(node, platform string) (string, error) {
	if p, ok := b.chosen[platform]; ok {
		return p, nil
	}
	own := runtime.GOOS + "/" + runtime.GOARCH
	var path string
	switch sibling := filepath.Join(filepath.Dir(b.self), "capsrec-"+strings.ReplaceAll(platform, "/", "-")); {
	case b.given[platform] != "":
		path = b.given[platform]
	case platform == own:
		path = b.self
		if err := checkBinary(path, platform); err != nil {
			return "", fmt.Errorf("this capsrec: %w", err)
		}
	case checkBinary(sibling, platform) == nil:
		path = sibling
	default:
		return "", fmt.Errorf("node %s is %s and this capsrec is %s: pass --binary-for %s=PATH (make release writes dist/capsrec-%s), or --image with a multi-architecture image (make image)",
			node, platform, own, platform, strings.ReplaceAll(platform, "/", "-"))
	}
	b.chosen[platform] = path
	return path, nil
}

// checkBinary tells whether path is a static ELF executable for platform:
// the node's image has no loader or libraries for anything else.
func checkBinary(path, platform string) error {
	want := map[string]string{"linux/amd64": "amd64", "linux/arm64": "arm64"}[platform]
	if want == "" {
		return fmt.Errorf("capsrec runs on linux/amd64 and linux/arm64, not %s", platform)
	}
	b, err := elfbin.Read(path)
	switch {
	case err != nil:
		return err
	case !b.Static:
		return fmt.Errorf("%s is dynamically linked and cannot run in another image: build it with CGO_ENABLED=0 (make does), or pass --image", path)
	case b.Arch != want:
		return fmt.Errorf("%s is for %v, not %s", path, b.Machine, platform)
	}
	return nil
}
