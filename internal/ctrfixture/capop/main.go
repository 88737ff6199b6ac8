// Command capop makes, in a test container, the capability uses that the kernel
// checks through noaudit or probing paths, so that their profiles can be
// replayed. Exit 0: the operation succeeded; 1: the kernel refused it.
//
//	capop seccomp      install a seccomp filter without no_new_privs (CAP_SYS_ADMIN)
//	capop inheritable  chown a file, drop CAP_CHOWN from the permitted set, then put
//	                   it in the inheritable set (CAP_CHOWN, then CAP_SETPCAP)
//	capop ping         an ICMP echo to 127.0.0.1 as iputils ping sends it: a
//	                   datagram socket, else a raw one (CAP_NET_RAW)
//	capop reexec memfd|deleted SIZE ARGV...
//	                   run ARGV (a busybox applet) from an unlinked copy of
//	                   busybox padded to SIZE bytes, as a runtime re-execs itself
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/capsrec/capsrec/internal/capops"
)

func main() {
	if len(os.Args) > 4 && os.Args[1] == "reexec" {
		size, err := strconv.ParseInt(os.Args[3], 10, 64)
		if err == nil {
			err = capops.Reexec(os.Args[2], "/bin/busybox", size, os.Args[4:])
		}
		fmt.Fprintln(os.Stderr, "capop:", err)
		os.Exit(1)
	}
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: capop seccomp|inheritable|ping|reexec")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "seccomp":
		err = capops.SeccompFilter()
	case "inheritable":
		err = capops.RaiseInheritable()
	case "ping":
		err = capops.Ping()
	default:
		err = fmt.Errorf("unknown operation %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "capop:", err)
		os.Exit(1)
	}
}
