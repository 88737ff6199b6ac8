package caps

import "testing"

func TestParseSpellings(t *testing.T) {
	for _, in := range []string{"CAP_SYSLOG", "cap_syslog", "SYSLOG", "syslog", "34", " Syslog "} {
		got, err := Parse(in)
		if err != nil || got != 34 {
			t.Errorf("Parse(%q) = %d, %v; want 34", in, got, err)
		}
	}
	for _, in := range []string{"", "CAP_NOPE", "41", "-1", "sys log"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) succeeded", in)
		}
	}
}

func TestTableIsIndexedByValue(t *testing.T) {
	for i, c := range All {
		if c.Value != i || c.Meaning == "" {
			t.Errorf("entry %d is %+v", i, c)
		}
	}
}

func TestSetNames(t *testing.T) {
	got := Set(1<<0 | 1<<34).Names()
	if len(got) != 2 || got[0] != "CAP_CHOWN" || got[1] != "CAP_SYSLOG" {
		t.Errorf("Names() = %v", got)
	}
	if KubernetesName(34) != "SYSLOG" || Name(63) != "CAP_63" {
		t.Errorf("names: %s %s", KubernetesName(34), Name(63))
	}
}
