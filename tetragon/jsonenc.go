package tetragon

import (
	"strconv"
	"time"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD, as encoding/json does.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\t':
				b = append(b, '\\', 't')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendKey(b []byte, comma bool, key string) []byte {
	if comma {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func appendUint(b []byte, comma bool, key string, v uint64) []byte {
	return strconv.AppendUint(appendKey(b, comma, key), v, 10)
}

func appendInt(b []byte, comma bool, key string, v int64) []byte {
	return strconv.AppendInt(appendKey(b, comma, key), v, 10)
}

func appendStr(b []byte, comma bool, key, v string) []byte {
	return appendString(appendKey(b, comma, key), v)
}

func appendBool(b []byte, comma bool, key string, v bool) []byte {
	return strconv.AppendBool(appendKey(b, comma, key), v)
}

// appendTimestamp writes t as protojson writes a google.protobuf.Timestamp:
// UTC, with 0, 3, 6 or 9 fractional digits.
func appendTimestamp(b []byte, t time.Time) []byte {
	t = t.UTC()
	b = append(b, '"')
	b = t.AppendFormat(b, "2006-01-02T15:04:05")
	return appendFraction(b, t.Nanosecond())
}

// appendFraction writes protojson's 0, 3, 6 or 9 fractional digits, the Z and the closing quote.
func appendFraction(b []byte, ns int) []byte {
	switch {
	case ns == 0:
	case ns%1e6 == 0:
		b = append(b, '.')
		b = appendPadded(b, ns/1e6, 3)
	case ns%1e3 == 0:
		b = append(b, '.')
		b = appendPadded(b, ns/1e3, 6)
	default:
		b = append(b, '.')
		b = appendPadded(b, ns, 9)
	}
	return append(b, 'Z', '"')
}

// secondCache keeps the formatted date and time of the last second seen.
type secondCache struct {
	unix int64
	text []byte
}

// appendTimestamp is the package's appendTimestamp, reusing the formatted second.
func (sc *secondCache) appendTimestamp(b []byte, t time.Time) []byte {
	t = t.UTC()
	if sec := t.Unix(); sec != sc.unix || sc.text == nil {
		sc.unix = sec
		sc.text = t.AppendFormat(sc.text[:0], "2006-01-02T15:04:05")
	}
	b = append(b, '"')
	b = append(b, sc.text...)
	return appendFraction(b, t.Nanosecond())
}

func appendPadded(b []byte, v, width int) []byte {
	var tmp [9]byte
	for i := width - 1; i >= 0; i-- {
		tmp[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, tmp[:width]...)
}
