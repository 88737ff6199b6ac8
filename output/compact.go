package output

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/fatih/color"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/caps"
	"github.com/capsrec/capsrec/internal/syscalls"
	"github.com/capsrec/capsrec/internal/termwidth"
	"github.com/capsrec/capsrec/internal/textsafe"
)

// Compact writes one line per check: time, source, binary[pid], uid,
// capability, verdict (green granted, red denied), syscall, and notes.
type Compact struct {
	out                  *Lines
	granted, denied, dim *color.Color
	grantedS, deniedS    string
	listenS              string
	layout               layout
}

// layout is the columns' widths. Width 0 (a pipe, a file, --wide) writes
// every field whole; a terminal's width shrinks them, the time first, then
// the capability's CAP_ prefix, then source and process, shortened in the
// middle (both ends tell names apart): no line is longer than the terminal.
type layout struct {
	width                     int // 0: no limit
	timeLayout                string
	source, process, uid, cap int
	capPrefix                 bool
}

// Column widths of the whole layout, and the least the shrunk one keeps.
const (
	wideSource, wideProcess, wideUID, wideCap = 25, 26, 6, 22
	verdictWidth                              = 7
	minSource, minProcess, tailRoom           = 8, 11, 14 // a process keeps name[4194303]
)

func newLayout(width int) layout {
	l := layout{width: width, timeLayout: "15:04:05.000000", source: wideSource, process: wideProcess, uid: wideUID, cap: wideCap, capPrefix: true}
	if width <= 0 {
		return l
	}
	switch {
	case width < 100:
		l.timeLayout = "15:04:05"
	case width < 160:
		l.timeLayout = "15:04:05.000"
	}
	switch {
	case width < 100: // only CHECKPOINT_RESTORE is longer
		l.cap, l.capPrefix = 16, false
	case width < 140:
		l.cap, l.capPrefix = wideCap-len("CAP_"), false
	}
	// What source and process share: the rest less the syscall's room. A
	// pod's name is the longer: it takes two thirds when there is room.
	fixed := len(l.timeLayout) + 1 + l.uid + 1 + l.cap + 1 + verdictWidth + tailRoom + 2
	room := max(width-fixed, minSource+minProcess)
	l.source = room / 2
	if room >= 40 {
		l.source = min(room*2/3, 48)
	}
	l.source = max(l.source, minSource)
	l.process = max(min(room-l.source, 32), minProcess)
	return l
}

// NewCompact writes to w, in color when colored is true, within width
// columns (0: no limit).
func NewCompact(w io.Writer, colored bool, width int) *Compact {
	c := &Compact{
		out:     NewLines(w),
		granted: color.New(color.FgGreen),
		denied:  color.New(color.FgRed, color.Bold),
		dim:     color.New(color.Faint),
		layout:  newLayout(width),
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
	c.listenS = c.dim.Sprint("nocheck")
	return c
}

// Header is the line printed above the checks on a terminal, in the layout's columns.
func (o *Compact) Header() string {
	l := o.layout
	b := termwidth.Pad(nil, "TIME", len(l.timeLayout))
	b = termwidth.Pad(append(b, ' '), "SOURCE", l.source)
	b = termwidth.Pad(append(b, ' '), "PROCESS", l.process)
	b = termwidth.Pad(append(b, ' '), "UID", l.uid)
	b = termwidth.Pad(append(b, ' '), "CAPABILITY", l.cap)
	b = append(append(b, ' '), "VERDICT SYSCALL"...)
	if l.width > 0 && l.width < minLayoutWidth {
		return termwidth.Head(string(b), l.width)
	}
	return string(b)
}

// Write formats one check.
func (o *Compact) Write(c *core.Check) error {
	return o.out.Encode(o, c)
}

// Flush writes out what is buffered.
func (o *Compact) Flush() error { return o.out.Flush() }

// Source names where a check came from: host, namespace/pod/container, or a
// container id; names from the runtime are escaped (textsafe).
func Source(c *core.Check) string { return textsafe.Visible(source(c)) }

func source(c *core.Check) string {
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
func ProcessName(c *core.Check) string {
	if c.Process.Binary != "" {
		return textsafe.Visible(path.Base(c.Process.Binary))
	}
	return textsafe.Visible(c.Comm)
}

// padFrom pads what was appended since start to w columns, and a space.
func padFrom(b []byte, start, w int) []byte {
	if n := w - termwidth.WidthBytes(b[start:]); n > 0 {
		b = append(b, spaces[:min(n, len(spaces))]...)
	}
	return append(b, ' ')
}

// spaces pads columns: the widest is 48.
const spaces = "                                                                "

// column appends s in w columns and a space: shortened in the middle when the
// layout is limited, else whole (the next columns then shift).
func (l layout) column(b []byte, s string, w int) []byte {
	if l.width > 0 {
		s = termwidth.Middle(s, w)
	}
	start := len(b)
	return padFrom(append(b, s...), start, w)
}

// Append formats c without a newline.
func (o *Compact) Append(b []byte, c *core.Check) []byte {
	l := o.layout
	lineStart := len(b)
	b = c.Time.Local().AppendFormat(b, l.timeLayout)
	b = append(b, ' ')
	b = l.column(b, Source(c), l.source)
	start := len(b)
	name := ProcessName(c)
	if l.width > 0 { // a long name is shortened, never the pid
		name = termwidth.Middle(name, max(l.process-2-decimalDigits(c.Process.Tgid), 1))
	}
	b = append(append(b, name...), '[')
	b = append(strconv.AppendUint(b, uint64(c.Process.Tgid), 10), ']')
	b = padFrom(b, start, l.process)
	start = len(b)
	b = padFrom(strconv.AppendUint(b, uint64(c.UID), 10), start, l.uid)
	capName := caps.Name(int(c.Cap))
	if !l.capPrefix {
		capName = strings.TrimPrefix(capName, "CAP_")
	}
	b = l.column(b, capName, l.cap)
	switch {
	case c.Listen:
		b = append(b, o.listenS...)
	case c.Granted():
		b = append(b, o.grantedS...)
	default:
		b = append(b, o.deniedS...)
	}
	// The tail: the syscall, then notes, cut at the terminal's edge.
	room := -1
	if l.width > 0 {
		room = l.width - (len(l.timeLayout) + 1 + l.source + 1 + l.process + 1 + l.uid + 1 + l.cap + 1 + verdictWidth)
	}
	if c.Listen { // the bind this listen follows made no check
		b, room = appendTail(b, fmt.Sprintf("listen port %d (ip_unprivileged_port_start=%d)", c.BindPort(), c.NetSysctls.PortStart), room, nil)
	} else if name := syscalls.Name(c.Syscall); name != "" {
		b, room = appendTail(b, name, room, nil)
	}
	if c.Class != core.ClassNeed {
		b, room = appendTail(b, "("+c.Class.String()+")", room, o.dim)
	}
	if c.InSetID {
		b, _ = appendTail(b, "(insetid)", room, o.dim)
	}
	if l.width > 0 { // a uid of many digits, a terminal narrower than the columns
		b = cutVisible(b, lineStart, l.width)
	}
	return b
}

// minLayoutWidth is the narrowest terminal the columns fit; narrower ones get
// each line cut at their edge.
const minLayoutWidth = 8 + 1 + minSource + 1 + minProcess + 1 + wideUID + 1 + 16 + 1 + verdictWidth + tailRoom

// cutVisible cuts the line from start at width columns, not counting color
// escapes, and resets the color when it cut inside one.
func cutVisible(b []byte, start, width int) []byte {
	n := 0
	for i := start; i < len(b); {
		if b[i] == 0x1b { // ESC [ ... m: no column
			j := i + 1
			for j < len(b) && b[j] != 'm' {
				j++
			}
			i = j + 1
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		rw := termwidth.RuneWidth(r)
		if n+rw > width {
			b = b[:i]
			if bytes.IndexByte(b[start:], 0x1b) >= 0 {
				b = append(b, "\x1b[0m"...)
			}
			return b
		}
		n += rw
		i += size
	}
	return b
}

func decimalDigits(n uint32) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// appendTail appends " word" within room columns (-1: no limit), painted, and
// the room left; a word that does not fit whole is cut with an ellipsis.
func appendTail(b []byte, word string, room int, paint *color.Color) ([]byte, int) {
	if room == 0 {
		return b, 0
	}
	if room > 0 {
		if room < 2 {
			return b, 0
		}
		word = termwidth.End(word, room-1)
		room -= 1 + termwidth.Width(word)
	}
	b = append(b, ' ')
	if paint != nil {
		return append(b, paint.Sprint(word)...), room
	}
	return append(b, word...), room
}
