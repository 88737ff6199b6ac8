// Package output writes checks: compact lines for people, the line chunks
// every writer (tetragon's JSON too) gathers, and the asynchronous stdout.
package output

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/mattn/go-isatty"

	"github.com/capsrec/capsrec/core"
)

// Writer takes checks one by one; Flush pushes out what it buffered.
type Writer interface {
	Write(c *core.Check) error
	Flush() error
}

// Formats of capsrec record's -o.
const (
	FormatCompact = "compact"
	FormatJSON    = "json"
)

// Format is one -o choice: its name and, for help, what it writes.
type Format struct{ Name, Help string }

// FormatTable is a command's -o choices: its validation and help text.
type FormatTable []Format

// Formats are record's -o.
var Formats = FormatTable{
	{FormatCompact, "one colored line per check"},
	{FormatJSON, "Tetragon's process_kprobe events, one per line"},
}

// Names are the table's formats.
func (t FormatTable) Names() []string {
	names := make([]string, len(t))
	for i, f := range t {
		names[i] = f.Name
	}
	return names
}

// Check rejects a format not in the table.
func (t FormatTable) Check(f string) error {
	names := t.Names()
	if slices.Contains(names, f) {
		return nil
	}
	return fmt.Errorf("unknown output format %q (want %s)", f, orList(names))
}

// Usage is -o's help: each format, with what it writes.
func (t FormatTable) Usage() string {
	parts := make([]string, len(t))
	for i, f := range t {
		parts[i] = f.Name
		if f.Help != "" {
			parts[i] += " (" + f.Help + ")"
		}
	}
	return orList(parts)
}

func orList(l []string) string {
	if len(l) == 1 {
		return l[0]
	}
	return strings.Join(l[:len(l)-1], ", ") + " or " + l[len(l)-1]
}

// ColorFor decides whether to color what goes to f: --color always, never, or
// auto (f is a terminal and NO_COLOR is not set).
func ColorFor(mode string, f *os.File) (bool, error) {
	return UseColor(mode, isatty.IsTerminal(f.Fd()), os.Getenv("NO_COLOR") != "")
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

// A writer gathers lines in chunks of chunkSize and hands a chunk on when less
// than lineRoom is left: a line that outgrew its chunk would copy the chunk.
// Each chunk handed on wakes the writing goroutine: they are not small.
const (
	chunkSize = 64 << 10
	lineRoom  = 16 << 10
)

// Lines gathers whole lines and hands them on a chunk at a time, so that the
// writer below only ever gets whole lines, and a session cut short never
// leaves half a line on stdout. Encoders (compact, tetragon's JSON) append
// straight into the chunk; an Async below takes the chunk itself, not a
// copy, with its line count.
type Lines struct {
	w     io.Writer
	async *Async
	buf   []byte
	n     int // lines in buf
}

// NewLines gathers lines for w.
func NewLines(w io.Writer) *Lines {
	l := &Lines{w: w, buf: make([]byte, 0, chunkSize)}
	l.async, _ = w.(*Async)
	return l
}

// LineEncoder appends one check's line, without its newline.
type LineEncoder interface {
	Append(b []byte, c *core.Check) []byte
}

// Encode appends c's line, as enc encodes it, to the chunk: handed on first
// when nearly full.
func (l *Lines) Encode(enc LineEncoder, c *core.Check) error {
	if cap(l.buf)-len(l.buf) < lineRoom {
		if err := l.Flush(); err != nil {
			return err
		}
	}
	l.buf = append(enc.Append(l.buf, c), '\n')
	l.n++
	return nil
}

// WriteLine appends a whole line, given without its newline.
func (l *Lines) WriteLine(line []byte) error {
	if cap(l.buf)-len(l.buf) < len(line)+1 {
		if err := l.Flush(); err != nil {
			return err
		}
	}
	l.buf = append(append(l.buf, line...), '\n')
	l.n++
	return nil
}

// Flush hands on what is gathered.
func (l *Lines) Flush() error {
	if len(l.buf) == 0 {
		return nil
	}
	if l.async != nil {
		next, err := l.async.WriteChunk(l.buf, l.n)
		l.buf, l.n = next, 0
		return err
	}
	_, err := l.w.Write(l.buf)
	l.buf, l.n = l.buf[:0], 0
	return err
}
