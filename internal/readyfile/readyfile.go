// Package readyfile writes --ready-file: the file a script waits for before it
// starts what it wants recorded.
package readyfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/capsrec/capsrec/internal/boundedfile"
)

// Prepare runs before anything is attached: a ready file that cannot
// be written fails the session at once, and a stale one from an earlier run
// goes, so that a script never mistakes it for this run's.
func Prepare(path string) error {
	if path == "" {
		return nil
	}
	if err := replaceableReadyFile(path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--ready-file %s: removing the stale one: %v", path, bareError(err))
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".capsrec-ready-*")
	if err != nil {
		return fmt.Errorf("--ready-file %s: cannot write in %s: %v", path, filepath.Dir(path), bareError(err))
	}
	tmp.Close()
	return os.Remove(tmp.Name())
}

// bareError drops the file name an *os.PathError or *os.LinkError carries: the
// caller names the file the user gave, not a temporary one.
func bareError(err error) error {
	var pe *os.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return pe.Err
	case errors.As(err, &le):
		return le.Err
	}
	return err
}

// Write writes atomically, so that a script polling for it never reads half of it.
func Write(path string) error {
	if path == "" {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".capsrec-ready-*")
	if err != nil {
		return fmt.Errorf("--ready-file %s: %v", path, bareError(err))
	}
	_, err = fmt.Fprintf(tmp, "%d\n", os.Getpid())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if err = replaceableReadyFile(path); err != nil {
			os.Remove(tmp.Name())
			return err
		}
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("--ready-file %s: %v", path, bareError(err))
	}
	return nil
}

// replaceableReadyFile refuses a path that holds anything but a file or a
// symbolic link (a stale ready file): a device node, a socket, a FIFO or a
// directory is never removed or replaced.
func replaceableReadyFile(path string) error {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().IsRegular() || fi.Mode()&os.ModeSymlink != 0 {
		return nil
	}
	return fmt.Errorf("--ready-file %s: %s is there; only a file is replaced", path, boundedfile.Kind(fi.Mode()))
}
