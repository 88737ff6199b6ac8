// Package termwidth fits text to the terminal it is shown on: the terminal's
// width, a string's width in columns, and shortening that keeps what tells
// names apart.
package termwidth

import (
	"os"
	"strconv"
	"unicode"
	"unicode/utf8"

	"golang.org/x/term"
	"golang.org/x/text/width"
)

// Of is the width of the terminal f is, or 0 when f is no terminal (a pipe,
// a file: lines stay whole). $COLUMNS stands in when the terminal does not say.
func Of(f *os.File) int {
	if !term.IsTerminal(int(f.Fd())) {
		return 0
	}
	if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
		return w
	}
	if w, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && w > 0 {
		return w
	}
	return 80
}

// Width is how many columns s takes: wide (East Asian) runes two, combining
// marks and format characters none. s is text already made visible (textsafe).
func Width(s string) int {
	n := 0
	for _, r := range s {
		n += RuneWidth(r)
	}
	return n
}

// WidthBytes is Width of b, without copying it; printable ASCII (what most
// lines hold) is one column a byte, counted without decoding.
func WidthBytes(b []byte) int {
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			n := i
			for _, r := range string(b[i:]) {
				n += RuneWidth(r)
			}
			return n
		}
	}
	return len(b)
}

// RuneWidth is how many columns r takes (see Width).
func RuneWidth(r rune) int {
	switch {
	case r < 0x20 || r == 0x7f:
		return 0
	case r < 0x300:
		return 1
	case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf):
		return 0
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// Ellipsis marks where text was cut.
const Ellipsis = "…"

// Middle shortens s to at most w columns by cutting its middle, so that both
// ends stay (a pod's namespace and hash, a container's name).
func Middle(s string, w int) string {
	if Width(s) <= w {
		return s
	}
	if w <= 1 {
		return Head(s, w)
	}
	keep := w - 1
	head := Head(s, (keep+1)/2)
	tail := tailOf(s, keep-Width(head))
	return head + Ellipsis + tail
}

// Head is the start of s that fits in w columns, without an ellipsis.
func Head(s string, w int) string {
	n := 0
	for i, r := range s {
		rw := RuneWidth(r)
		if n+rw > w {
			return s[:i]
		}
		n += rw
	}
	return s
}

// End shortens s to at most w columns by cutting its end.
func End(s string, w int) string {
	if Width(s) <= w {
		return s
	}
	if w <= 1 {
		return Head(s, w)
	}
	return Head(s, w-1) + Ellipsis
}

// tailOf is the end of s that fits in w columns.
func tailOf(s string, w int) string {
	n, i := 0, len(s)
	for i > 0 {
		r, size := utf8.DecodeLastRuneInString(s[:i])
		rw := RuneWidth(r)
		if n+rw > w {
			break
		}
		n += rw
		i -= size
	}
	return s[i:]
}

// Pad appends spaces to s up to w columns.
func Pad(b []byte, s string, w int) []byte {
	b = append(b, s...)
	for n := Width(s); n < w; n++ {
		b = append(b, ' ')
	}
	return b
}
