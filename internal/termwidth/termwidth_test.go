package termwidth

import "testing"

func TestShorten(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{Middle("default/redis-6886f88696-6jnf6/redis", 20), "default/re…nf6/redis"},
		{Middle("short", 20), "short"},
		{Middle("日本語のポッド名", 9), "日本…ド名"},
		{End("clock_settime", 8), "clock_s…"},
		{Middle("abc", 1), "a"},
		{End("abc", 0), ""},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	for _, s := range []string{"default/redis-6886f88696-6jnf6/redis", "日本語のポッド名", "e\u0301e\u0301e\u0301e\u0301"} {
		for w := 0; w < 40; w++ {
			if got := Width(Middle(s, w)); got > w {
				t.Errorf("Middle(%q, %d) is %d columns", s, w, got)
			}
			if got := Width(End(s, w)); got > w {
				t.Errorf("End(%q, %d) is %d columns", s, w, got)
			}
		}
	}
	if Width("日本") != 4 || Width("e\u0301") != 1 {
		t.Errorf("widths: %d %d", Width("日本"), Width("e\u0301"))
	}
}
