// Package peer is a bench peer: capability checks recorded the way libbpf-tools'
// capable records them (kprobe + kretprobe, a perf buffer), to price what
// capsrec is compared with on kernels without fexit.
package peer

//go:generate go tool bpf2go -target bpfel -cc clang -cflags "-O2 -g -Wall -Werror -D__TARGET_ARCH_x86" -type cap_event capable capable.bpf.c -- -I/usr/include/x86_64-linux-gnu
