package english

import "testing"

func TestCount(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{{Count(1, "check"), "1 check"}, {Count(uint64(0), "line"), "0 lines"}, {Count(int64(2), "pod"), "2 pods"}} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
