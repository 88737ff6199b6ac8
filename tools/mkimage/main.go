// Command mkimage writes capsrec's container image as an OCI image archive (a
// tar of an OCI image layout): an image index with one image per binary, each
// FROM scratch with one layer holding the static binary at /capsrec, its
// platform read from the binary. No Docker: `make image`, then `ctr images
// import` or any registry tool (crane push, skopeo copy --all oci-archive:...)
// takes it, and each node pulls its own architecture.
//
//	go run ./tools/mkimage -binary dist/capsrec-linux-amd64 -binary dist/capsrec-linux-arm64 \
//		-tag ghcr.io/capsrec/capsrec:dev -o capsrec-image.tar
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/capsrec/capsrec/internal/elfbin"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

type binaries []string

func (b *binaries) String() string     { return fmt.Sprint(*b) }
func (b *binaries) Set(v string) error { *b = append(*b, v); return nil }

func run() error {
	var bins binaries
	flag.Var(&bins, "binary", "a static capsrec binary; repeatable, one per platform (default capsrec)")
	tag := flag.String("tag", "ghcr.io/capsrec/capsrec:dev", "the image's name")
	out := flag.String("o", "capsrec-image.tar", "the OCI archive to write")
	flag.Parse()
	if len(bins) == 0 {
		bins = binaries{"capsrec"}
	}
	ref, err := name.ParseReference(*tag)
	if err != nil {
		return fmt.Errorf("-tag: %w", err)
	}
	idx, platforms, err := index(bins)
	if err != nil {
		return err
	}
	if err := write(idx, ref, *out); err != nil {
		return err
	}
	digest, _ := idx.Digest()
	fmt.Printf("%s: %s %s (%s)\n", *out, ref.Name(), digest, strings.Join(platforms, ", "))
	return nil
}

// index makes an image index of one image per binary, each with its platform.
func index(bins []string) (v1.ImageIndex, []string, error) {
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var platforms []string
	for _, b := range bins {
		arch, err := archOf(b)
		if err != nil {
			return nil, nil, err
		}
		if slices.Contains(platforms, "linux/"+arch) {
			return nil, nil, fmt.Errorf("%s: a second binary for linux/%s", b, arch)
		}
		platforms = append(platforms, "linux/"+arch)
		img, err := image(b, arch)
		if err != nil {
			return nil, nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return idx, platforms, nil
}

// write writes idx as an OCI layout, tarred, named ref.
func write(idx v1.ImageIndex, ref name.Reference, out string) error {
	dir, err := os.MkdirTemp("", "capsrec-image-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	// ref.name for OCI tools; containerd's ctr reads the full name from its own annotation.
	err = p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref.Identifier(),
		"io.containerd.image.name":          ref.Name(),
	}))
	if err != nil {
		return err
	}
	return tarDir(dir, out)
}

// archOf is a static Linux binary's GOARCH, from its ELF header.
func archOf(binary string) (string, error) {
	b, err := elfbin.Read(binary)
	switch {
	case err != nil:
		return "", err
	case !b.Static:
		return "", fmt.Errorf("%s is dynamically linked: a FROM scratch image needs a static binary (CGO_ENABLED=0)", binary)
	case b.Arch == "":
		return "", fmt.Errorf("%s is for %v: capsrec is built for amd64 and arm64", binary, b.Machine)
	}
	return b.Arch, nil
}

// epoch keeps the archive the same for the same binary.
var epoch = time.Unix(0, 0).UTC()

func image(binary, arch string) (v1.Image, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	var layerTar bytes.Buffer
	tw := tar.NewWriter(&layerTar)
	if err := tw.WriteHeader(&tar.Header{Name: "capsrec", Mode: 0o755, Size: int64(len(bin)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "capsrec make image"}})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Created = "linux", arch, v1.Time{Time: epoch}
	cfg.Config.Entrypoint = []string{"/capsrec"}
	cfg.Config.Cmd = []string{"record", "-o", "json"}
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.source": "https://github.com/capsrec/capsrec"}
	return mutate.ConfigFile(img, cfg)
}

// tarDir writes an OCI layout folder as a tar, in a fixed order and time.
func tarDir(dir, out string) (err error) {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = filepath.ToSlash(rel), epoch, 0, 0, "", ""
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
