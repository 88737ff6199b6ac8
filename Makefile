# capsrec: make help lists the targets.
GO ?= go
BIN ?= capsrec
# Privileged tests load BPF programs: run them one package at a time, so that
# the "nothing left attached" checks see only their own capsrec.
TESTFLAGS ?= -count=1 -p 1

.PHONY: help build generate lint test vmtest bench image release clean

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

build: ## build the capsrec binary (no clang needed: the BPF object is committed)
	CGO_ENABLED=0 $(GO) build -o $(BIN) .

generate: ## rebuild the BPF objects (capsrec's, the bench peer's) and Go bindings with clang, core's enums and the syscall table
	$(GO) generate ./bpf ./core ./internal/syscalls ./bench/peer

lint: ## gofmt, go vet and staticcheck (pinned in go.mod); CI runs it
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt -w these:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

test: ## run every test; as root the real-kernel tests run too
	$(GO) run ./tools/gotest $(TESTFLAGS) ./...

vmtest: ## boot Debian kernels 5.10 to the newest in qemu and run the privileged tests there
	bash test/vm/run.sh

bench: ## ns added per check on this kernel and, for fexit and kprobe, in qemu; writes BENCHMARKS.md
	bash bench/run.sh

clean:
	rm -rf $(BIN) capsrec-image.tar dist

PLATFORMS ?= linux/amd64 linux/arm64
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
release: ## cross-build static binaries for linux/amd64 and linux/arm64 into dist/, with SHA256SUMS
	rm -rf dist && mkdir -p dist
	for p in $(PLATFORMS); do \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -trimpath -ldflags "-X github.com/capsrec/capsrec/cli.Version=$(VERSION)" \
			-o dist/capsrec-$${p%/*}-$${p#*/} . || exit 1; \
	done
	cd dist && sha256sum capsrec-* >SHA256SUMS && cat SHA256SUMS

IMAGE ?= ghcr.io/capsrec/capsrec:dev
image: release ## write capsrec-image.tar: an OCI image index (amd64 and arm64) of the static binaries, FROM scratch (no Docker)
	$(GO) run ./tools/mkimage $(foreach p,$(PLATFORMS),-binary dist/capsrec-$(subst /,-,$(p))) -tag $(IMAGE) -o capsrec-image.tar
