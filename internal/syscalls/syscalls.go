// Package syscalls names system call numbers. gen.sh writes the tables of
// amd64 and arm64; the build takes the binary's own (a recorder runs on its
// node's architecture).
package syscalls

//go:generate sh gen.sh

import "strconv"

// Name gives the syscall's name, "" for -1 (no syscall in progress) and the
// number itself for one the table lacks.
func Name(nr int32) string {
	if nr < 0 {
		return ""
	}
	if n, ok := names[nr]; ok {
		return n
	}
	return strconv.Itoa(int(nr))
}
