// Package peer is a bench peer: capability checks recorded the way libbpf-tools'
// capable records them (kprobe + kretprobe, a perf buffer), to price what
// capsrec is compared with on kernels without fexit.
package peer

//go:generate go tool bpf2go -target amd64,arm64 -cc clang -cflags "-O2 -g -Wall -Werror" -type cap_event capable capable.bpf.c -- -I/usr/include/x86_64-linux-gnu
