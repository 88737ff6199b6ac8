// Command mkimage writes capsrec's container image as an OCI image archive (a
// tar of an OCI image layout), FROM scratch: one layer holding the static
// binary at /capsrec. No Docker: `make image`, then `ctr images import` or any
// registry tool (crane push, skopeo copy oci-archive:...) takes it.
//
//	go run ./tools/mkimage -binary capsrec -tag ghcr.io/capsrec/capsrec:dev -o capsrec-image.tar
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
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run() error {
	binary := flag.String("binary", "capsrec", "the static capsrec binary")
	tag := flag.String("tag", "ghcr.io/capsrec/capsrec:dev", "the image's name")
	out := flag.String("o", "capsrec-image.tar", "the OCI archive to write")
	flag.Parse()
	ref, err := name.ParseReference(*tag)
	if err != nil {
		return fmt.Errorf("-tag: %w", err)
	}
	img, err := image(*binary)
	if err != nil {
		return err
	}
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
	err = p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref.Identifier(),
		"io.containerd.image.name":          ref.Name(),
	}))
	if err != nil {
		return err
	}
	if err := tarDir(dir, *out); err != nil {
		return err
	}
	digest, _ := img.Digest()
	fmt.Printf("%s: %s %s\n", *out, ref.Name(), digest)
	return nil
}

// epoch keeps the archive the same for the same binary.
var epoch = time.Unix(0, 0).UTC()

func image(binary string) (v1.Image, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(bin, []byte("\x7fELF")) {
		return nil, fmt.Errorf("%s is not an ELF binary", binary)
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
	cfg.OS, cfg.Architecture, cfg.Created = "linux", runtime.GOARCH, v1.Time{Time: epoch}
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
