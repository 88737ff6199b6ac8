package output

import (
	"os"

	"golang.org/x/sys/unix"
)

// IsPipe tells whether f is a pipe: a reader that may go away (| head).
func IsPipe(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeNamedPipe != 0
}

// ReaderGone tells whether the read end of the pipe f writes to has been closed.
func ReaderGone(f *os.File) bool {
	fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLOUT}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLERR != 0
}
