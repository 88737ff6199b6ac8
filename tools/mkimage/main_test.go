package main

import (
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/capsrec/capsrec/internal/testutil"
)

func fakeELF(t *testing.T, dir string, machine elf.Machine) string {
	return testutil.FakeELF(t, filepath.Join(dir, machine.String()), machine, false)
}

// make image: one index, an image per architecture, each saying its platform,
// and each holding its own binary.
func TestMultiArchitectureIndex(t *testing.T) {
	dir := t.TempDir()
	amd, arm := fakeELF(t, dir, elf.EM_X86_64), fakeELF(t, dir, elf.EM_AARCH64)
	idx, platforms, err := index([]string{amd, arm})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(platforms, " ") != "linux/amd64 linux/arm64" {
		t.Errorf("platforms %v", platforms)
	}
	out := filepath.Join(dir, "image.tar")
	if err := write(idx, name.MustParseReference("ghcr.io/capsrec/capsrec:test"), out); err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 2 {
		t.Fatalf("%d manifests, want 2", len(m.Manifests))
	}
	for i, want := range []string{"amd64", "arm64"} {
		d := m.Manifests[i]
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if d.Platform == nil || d.Platform.Architecture != want || cfg.Architecture != want || cfg.OS != "linux" {
			t.Errorf("manifest %d: platform %+v, config %s/%s, want linux/%s", i, d.Platform, cfg.OS, cfg.Architecture, want)
		}
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
		t.Errorf("no archive written: %v", err)
	}
}

func TestRefusedBinaries(t *testing.T) {
	dir := t.TempDir()
	amd := fakeELF(t, dir, elf.EM_X86_64)
	riscv := fakeELF(t, dir, elf.EM_RISCV)
	text := filepath.Join(dir, "text")
	if err := os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		bins []string
		want string
	}{
		{[]string{amd, amd}, "a second binary for linux/amd64"},
		{[]string{riscv}, "built for amd64 and arm64"},
		{[]string{text}, "not an ELF binary"},
	} {
		if _, _, err := index(c.bins); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.bins, err, c.want)
		}
	}
}
