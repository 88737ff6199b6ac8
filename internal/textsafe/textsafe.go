// Package textsafe makes strings from the node (binary names, comm, arguments,
// paths, cgroup, pod and container names: anyone who runs a process writes
// them) safe to show a person or put in a config file: every byte a terminal or
// a parser could act on is written as a visible escape.
package textsafe

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Visible escapes control characters (C0, DEL, C1), invalid UTF-8, Unicode
// format characters (bidi overrides, zero-width) and separators other than
// the space, as \n, \r, \t, \xNN or \uNNNN; a backslash becomes \\ so that an
// escape cannot be forged. Printable text is returned as it is.
func Visible(s string) string {
	i := 0
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '\\' {
			break
		}
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[i]))
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\x`)
			b.WriteString(hex2(byte(r)))
		case r >= 0x80 && (r < 0xa0 || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) || (unicode.IsSpace(r) && r != ' ')):
			q := strconv.QuoteRuneToASCII(r) // '\u202e'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

// OneLine keeps a message to one line: its line breaks become "; " and runs of
// white space one space.
func OneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
