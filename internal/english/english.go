// Package english writes counts as people read them: "1 check", "2 checks".
package english

import "strconv"

// Count is n and the noun, plural unless n is one; nouns here take an s.
func Count[N ~int | ~int64 | ~uint64 | ~uint32](n N, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatInt(int64(n), 10) + " " + noun + "s"
}
