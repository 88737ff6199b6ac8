package tetragon

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// scanner reads the few fields a profile needs from one JSON event and skips
// the rest without building it: encoding/json is about 20 times slower here.
type scanner struct {
	b     []byte
	pos   int
	depth int
}

// MaxDepth bounds how deeply objects and arrays nest in one event: capsrec's
// and Tetragon's nest 6 deep; 10 million [ must not exhaust the stack.
const MaxDepth = 64

var errSyntax = errors.New("invalid JSON")

func (s *scanner) fail(what string) error {
	return fmt.Errorf("%w: %s at byte %d", errSyntax, what, s.pos+1)
}

func (s *scanner) ws() {
	b, i := s.b, s.pos
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	s.pos = i
}

func (s *scanner) peek() byte {
	s.ws()
	if s.pos < len(s.b) {
		return s.b[s.pos]
	}
	return 0
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		return s.fail("expected " + strconv.QuoteRune(rune(c)))
	}
	s.pos++
	return nil
}

// str reads a string; the result aliases the line unless it had escapes.
func (s *scanner) str() (string, error) {
	if err := s.expect('"'); err != nil {
		return "", err
	}
	start := s.pos
	escaped := false
	for s.pos < len(s.b) {
		c := s.b[s.pos]
		switch {
		case c == '"':
			raw := s.b[start:s.pos]
			s.pos++
			if escaped {
				return unescape(raw)
			}
			return string(raw), nil
		case c == '\\':
			escaped = true
			s.pos += 2
		case c < 0x20:
			return "", s.fail("control character in string")
		default:
			s.pos++
		}
	}
	return "", s.fail("unterminated string")
}

func unescape(raw []byte) (string, error) {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(raw) {
			return "", errSyntax
		}
		switch raw[i] {
		case '"', '\\', '/':
			out = append(out, raw[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if i+4 >= len(raw) {
				return "", errSyntax
			}
			v, err := strconv.ParseUint(string(raw[i+1:i+5]), 16, 32)
			if err != nil {
				return "", errSyntax
			}
			out = utf8.AppendRune(out, rune(v))
			i += 4
		default:
			return "", errSyntax
		}
	}
	return string(out), nil
}

func (s *scanner) literal(word string) error {
	if len(s.b)-s.pos < len(word) || string(s.b[s.pos:s.pos+len(word)]) != word {
		return s.fail("bad literal")
	}
	s.pos += len(word)
	return nil
}

func (s *scanner) number() (int64, error) {
	s.ws()
	start := s.pos
	// Fast path: the integers every event is full of.
	neg := s.pos < len(s.b) && s.b[s.pos] == '-'
	if neg {
		s.pos++
	}
	var v int64
	digits := 0
	for s.pos < len(s.b) && s.b[s.pos] >= '0' && s.b[s.pos] <= '9' && digits < 18 {
		v = v*10 + int64(s.b[s.pos]-'0')
		s.pos++
		digits++
	}
	if digits > 0 && (s.pos == len(s.b) || !isNumberByte(s.b[s.pos])) {
		if neg {
			v = -v
		}
		return v, nil
	}
	s.pos = start
	for s.pos < len(s.b) {
		c := s.b[s.pos]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			s.pos++
			continue
		}
		break
	}
	if start == s.pos {
		return 0, s.fail("expected a number")
	}
	v, err := strconv.ParseInt(string(s.b[start:s.pos]), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(s.b[start:s.pos]), 64)
		if ferr != nil {
			return 0, s.fail("bad number")
		}
		return int64(f), nil
	}
	return v, nil
}

// integer reads a JSON number that is a whole number an int64 holds: 1.5, 1e3
// and 2^63 are refused, not rounded.
func (s *scanner) integer() (int64, error) {
	s.ws()
	start := s.pos
	v, err := s.number()
	if err != nil {
		return 0, err
	}
	text := s.b[start:s.pos]
	if bytes.ContainsAny(text, ".eE") {
		return 0, s.fail("not a whole number: " + string(text))
	}
	// number reads up to 18 digits exactly; past them it rounds through a float.
	if len(bytes.TrimPrefix(text, []byte{'-'})) > 18 {
		if _, err := strconv.ParseInt(string(text), 10, 64); err != nil {
			return 0, s.fail("bad number: " + string(text))
		}
	}
	return v, nil
}

func isNumberByte(c byte) bool {
	return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

func (s *scanner) boolean() (bool, error) {
	switch s.peek() {
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	}
	return false, s.fail("expected a boolean")
}

// skipString passes over a string without building it.
func (s *scanner) skipString() error {
	if err := s.expect('"'); err != nil {
		return err
	}
	b, i := s.b, s.pos
	for i < len(b) {
		switch b[i] {
		case '"':
			s.pos = i + 1
			return nil
		case '\\':
			i += 2
		default:
			i++
		}
	}
	s.pos = len(b)
	return s.fail("unterminated string")
}

// skip passes over one value of any kind, checking its structure.
func (s *scanner) skip() error {
	switch s.peek() {
	case '"':
		return s.skipString()
	case '{':
		return s.object(func([]byte) error { return s.skip() })
	case '[':
		return s.array(s.skip)
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	case 0:
		return s.fail("unexpected end")
	}
	_, err := s.number()
	return err
}

// object calls field for each key, positioned at its value; field must consume
// it. The key aliases the line: keys capsrec reads have no escapes.
func (s *scanner) object(field func(key []byte) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.depth++; s.depth > MaxDepth {
		return s.fail(fmt.Sprintf("nested deeper than %d", MaxDepth))
	}
	defer func() { s.depth-- }()
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		s.ws()
		start := s.pos + 1
		if err := s.skipString(); err != nil {
			return err
		}
		key := s.b[start : s.pos-1]
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := field(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.fail("expected , or }")
		}
	}
}

func (s *scanner) array(elem func() error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.depth++; s.depth > MaxDepth {
		return s.fail(fmt.Sprintf("nested deeper than %d", MaxDepth))
	}
	defer func() { s.depth-- }()
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.fail("expected , or ]")
		}
	}
}

// ValueError is a value of a stream Values could not read, and where it starts.
type ValueError struct {
	Start int
	Err   error
}

func (e *ValueError) Error() string { return e.Err.Error() }

// Values calls each with every JSON value of data, a stream of them or one
// array of them, and the offset it starts at: indented JSON (jq's, or
// Tetragon's documentation's). A value that is not JSON is a *ValueError;
// each's errors come back as they are.
func Values(data []byte, each func(value []byte, start int) error) error {
	s := &scanner{b: data}
	add := func() error {
		start := s.pos
		if err := s.skip(); err != nil {
			return &ValueError{Start: start, Err: err}
		}
		return each(data[start:s.pos], start)
	}
	if s.peek() == '[' {
		if err := s.array(add); err != nil {
			return err
		}
	}
	for s.peek() != 0 {
		if err := add(); err != nil {
			return err
		}
	}
	return nil
}
