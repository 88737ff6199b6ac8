package textsafe

import "testing"

func TestVisible(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/dmesg":   "/usr/bin/dmesg",
		"café":             "café",
		"x\n21:36:50 host": `x\n21:36:50 host`,
		"a\rb\tc":          `a\rb\tc`,
		"\x1b[2K\x1b[8m":   `\x1b[2K\x1b[8m`,
		"\x1b]0;title\x07": `\x1b]0;title\x07`,
		"x\u202egnp.exe":   `x\u202egnp.exe`,
		"zero\u200bwidth":  `zero\u200bwidth`,
		"c1\u0085":         `c1\u0085`,
		"bad\xffutf8":      `bad\xffutf8`,
		`back\slash`:       `back\\slash`,
		"del\x7f":          `del\x7f`,
		"line\u2028sep":    `line\u2028sep`,
	} {
		if got := Visible(in); got != want {
			t.Errorf("Visible(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzVisible(f *testing.F) {
	f.Add("x\n\x1b[2K\u202e\\")
	f.Fuzz(func(t *testing.T, s string) {
		for _, c := range []byte(Visible(s)) {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("Visible(%q) keeps control byte %#x", s, c)
			}
		}
	})
}
