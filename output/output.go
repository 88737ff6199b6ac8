// Package output writes checks for people (compact lines) and for programs (Tetragon JSON).
package output

import (
	"bufio"
	"fmt"

	"github.com/capsrec/capsrec/recorder"
)

// Writer takes checks one by one; Flush pushes out what it buffered.
type Writer interface {
	Write(c *recorder.Check) error
	Flush() error
}

// Formats of capsrec record's -o.
const (
	FormatCompact = "compact"
	FormatJSON    = "json"
)

// CheckFormat rejects anything but compact and json.
func CheckFormat(f string) error {
	if f != FormatCompact && f != FormatJSON {
		return fmt.Errorf("unknown output format %q (want compact or json)", f)
	}
	return nil
}

// UseColor decides whether to color: always, never, or auto (a terminal and no NO_COLOR).
func UseColor(mode string, isTerminal bool, noColorEnv bool) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto", "":
		return isTerminal && !noColorEnv, nil
	}
	return false, fmt.Errorf("unknown --color %q (want auto, always or never)", mode)
}

// writeLine buffers one whole line: what the buffer holds is flushed first
// when the line does not fit, so that the writer below only ever gets whole
// lines, and a session cut short never leaves half a line on stdout.
func writeLine(w *bufio.Writer, line []byte) error {
	if w.Buffered() > 0 && w.Available() < len(line) {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	_, err := w.Write(line)
	return err
}
