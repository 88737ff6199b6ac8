// Package boundedfile reads files a user names (--btf, --check, profile
// inputs) only when they are regular files, and only up to a size: /dev/zero,
// a FIFO or a huge file gets one clear error, not all of memory.
package boundedfile

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Open opens path for reading if it is a regular file of at most limit bytes
// (0: any size). The type is checked before the open, so that a FIFO does not
// block and a device is not acted on, and again on what was opened (without
// blocking), so that a file swapped meanwhile is refused too.
func Open(path string, limit int64) (*os.File, error) {
	before, err := os.Stat(path)
	if err != nil {
		return nil, err // *PathError names the file
	}
	if err := check(path, before, limit); err != nil {
		return nil, err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	after, err := f.Stat()
	if err == nil && !os.SameFile(before, after) {
		err = fmt.Errorf("%s: replaced while opened", path)
	}
	if err == nil {
		err = check(path, after, limit)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ErrNotRegular is a path that names a pipe, a device, a directory...: reading
// it could block for ever or never end.
var ErrNotRegular = errors.New("not a regular file")

func check(path string, fi os.FileInfo, limit int64) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: %w but %s", path, ErrNotRegular, Kind(fi.Mode()))
	}
	if limit > 0 && fi.Size() > limit {
		return fmt.Errorf("%s: %d bytes, more than the %d this reads", path, fi.Size(), limit)
	}
	return nil
}

// ReadFile reads a regular file of at most limit bytes.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := Open(path, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The size was checked; a file that grows meanwhile is cut at limit+1 and refused.
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: grew past %d bytes while read", path, limit)
	}
	return data, nil
}

// Kind names a file type for a message: "a named pipe", "a directory", ...
func Kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}
