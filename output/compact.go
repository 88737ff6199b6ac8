package output

import (
	"io"
	"path"
	"strconv"

	"github.com/fatih/color"

	"github.com/capsrec/capsrec/internal/caps"
	"github.com/capsrec/capsrec/internal/syscalls"
	"github.com/capsrec/capsrec/internal/textsafe"
	"github.com/capsrec/capsrec/recorder"
)

// Compact writes one line per check: time, source, binary[pid], uid,
// capability, verdict (green granted, red denied), syscall, and notes.
type Compact struct {
	out                  *lines
	granted, denied, dim *color.Color
	grantedS, deniedS    string
	timeLayout           string
}

// NewCompact writes to w, in color when colored is true.
func NewCompact(w io.Writer, colored bool) *Compact {
	c := &Compact{
		out:        newLines(w),
		granted:    color.New(color.FgGreen),
		denied:     color.New(color.FgRed, color.Bold),
		dim:        color.New(color.Faint),
		timeLayout: "15:04:05.000000",
	}
	for _, col := range []*color.Color{c.granted, c.denied, c.dim} {
		if colored {
			col.EnableColor()
		} else {
			col.DisableColor()
		}
	}
	// Padded before coloring so that columns line up with and without color.
	c.grantedS = c.granted.Sprint("granted")
	c.deniedS = c.denied.Sprint("denied ")
	return c
}

// Header is the line printed above the checks on a terminal.
const Header = "TIME            SOURCE                    PROCESS                    UID    CAPABILITY             VERDICT SYSCALL"

// Write formats one check.
func (o *Compact) Write(c *recorder.Check) error {
	return o.out.write(o, c)
}

// Flush writes out what is buffered.
func (o *Compact) Flush() error { return o.out.Flush() }

// Source names where a check came from: host, namespace/pod/container, or a
// container id; names from the runtime are escaped (textsafe).
func Source(c *recorder.Check) string { return textsafe.Visible(source(c)) }

func source(c *recorder.Check) string {
	ctr := c.Container
	switch {
	case ctr == nil:
		return "host"
	case ctr.Pod != nil:
		return ctr.Pod.Namespace + "/" + ctr.Pod.Name + "/" + ctr.Name
	case ctr.Name != "":
		return ctr.Name
	}
	id := ctr.ID
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

// ProcessName is the binary's base name, or the kernel's comm when the binary
// is unknown, escaped: whoever runs a process names it.
func ProcessName(c *recorder.Check) string {
	if c.Process.Binary != "" {
		return textsafe.Visible(path.Base(c.Process.Binary))
	}
	return textsafe.Visible(c.Comm)
}

func pad(b []byte, start, width int) []byte {
	for len(b)-start < width {
		b = append(b, ' ')
	}
	return append(b, ' ')
}

// Append formats c without a newline.
func (o *Compact) Append(b []byte, c *recorder.Check) []byte {
	b = c.Time.Local().AppendFormat(b, o.timeLayout)
	b = append(b, ' ')
	start := len(b)
	b = append(b, Source(c)...)
	b = pad(b, start, 25)
	start = len(b)
	b = append(b, ProcessName(c)...)
	b = append(b, '[')
	b = strconv.AppendUint(b, uint64(c.Process.Tgid), 10)
	b = append(b, ']')
	b = pad(b, start, 26)
	start = len(b)
	b = strconv.AppendUint(b, uint64(c.UID), 10)
	b = pad(b, start, 6)
	start = len(b)
	b = append(b, caps.Name(int(c.Cap))...)
	b = pad(b, start, 22)
	if c.Granted() {
		b = append(b, o.grantedS...)
	} else {
		b = append(b, o.deniedS...)
	}
	if name := syscalls.Name(c.Syscall); name != "" {
		b = append(b, ' ')
		b = append(b, name...)
	}
	var notes []string
	if c.Class != recorder.ClassNeed {
		notes = append(notes, c.Class.String())
	}
	if c.InSetID {
		notes = append(notes, "insetid")
	}
	for _, n := range notes {
		b = append(b, ' ')
		b = append(b, o.dim.Sprint("("+n+")")...)
	}
	return b
}
