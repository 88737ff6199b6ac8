package procfs

import (
	"os"
	"strconv"
	"testing"
)

func TestParseStat(t *testing.T) {
	line := "4242 (a) b) (c) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615\n"
	st, ok := parseStat([]byte(line))
	if !ok || st.PPid != 17 || st.StartTicks != 987654 {
		t.Fatalf("parseStat = %+v, %v: a comm with spaces and parentheses", st, ok)
	}
	for _, bad := range []string{"", "4242 (x", "4242 (x) S 1 2", "4242 (x) S nope 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"} {
		if _, ok := parseStat([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestReadStatSelf(t *testing.T) {
	st, ok := ReadStat("/proc/" + strconv.Itoa(os.Getpid()))
	if !ok || st.PPid != uint32(os.Getppid()) || st.StartTicks == 0 {
		t.Fatalf("ReadStat(self) = %+v, %v; ppid %d", st, ok, os.Getppid())
	}
}
