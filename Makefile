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

generate: ## rebuild the BPF objects (capsrec's, the bench peer's) and Go bindings with clang, and the syscall table
	$(GO) generate ./bpf ./internal/syscalls ./bench/peer

lint: ## gofmt, go vet and staticcheck (pinned in go.mod); CI runs it
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt -w these:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

test: ## run every test; as root the real-kernel tests run too
	$(GO) test $(TESTFLAGS) ./...

vmtest: ## boot Debian kernels 5.10 to the newest in qemu and run the privileged tests there
	bash test/vm/run.sh

bench: ## ns added per check on this kernel and, for fexit and kprobe, in qemu; writes BENCHMARKS.md
	bash bench/run.sh

clean:
	rm -f $(BIN) capsrec-image.tar

IMAGE ?= ghcr.io/capsrec/capsrec:dev
image: build ## write capsrec-image.tar: an OCI image archive of the static binary, FROM scratch (no Docker)
	$(GO) run ./tools/mkimage -binary $(BIN) -tag $(IMAGE) -o capsrec-image.tar
