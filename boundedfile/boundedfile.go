// Package boundedfile reads files a user names (--btf, --check, profile
// inputs) only when they are regular files, and only up to a size: /dev/zero,
// a FIFO or a huge file gets one clear error, not all of memory.
package boundedfile

import (
	"fmt"
	"io"
	"os"
)

// Open opens path for reading if it is a regular file of at most max bytes
// (0: any size).
func Open(path string, max int64) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *PathError names the file
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file but %s", path, kind(fi.Mode()))
	}
	if max > 0 && fi.Size() > max {
		f.Close()
		return nil, fmt.Errorf("%s: %d bytes, more than the %d this reads", path, fi.Size(), max)
	}
	return f, nil
}

// ReadFile reads a regular file of at most max bytes.
func ReadFile(path string, max int64) ([]byte, error) {
	f, err := Open(path, max)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The size was checked; a file that grows meanwhile is cut at max+1 and refused.
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: grew past %d bytes while read", path, max)
	}
	return data, nil
}

func kind(m os.FileMode) string {
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
