package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/capsrec/capsrec/internal/testutil"
)

// ownedFile is a file for a real chown(1) to give away: a CAP_CHOWN need.
func ownedFile(t *testing.T) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "owned")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// The commands' whole path in this process, over a real session: flags ->
// plan -> session -> stages -> writer -> summary.
func TestRecordACommand(t *testing.T) {
	testutil.RequireRoot(t)
	chown, err := exec.LookPath("chown")
	if err != nil {
		testutil.Skip(t, "no chown(1)")
	}
	for _, tc := range []struct {
		name string
		argv []string
		out  func(string) bool
		err  []string
	}{
		{"-o json: the need and the summary line", []string{"-o", "json", "--cap", "chown", "--no-summary"},
			func(out string) bool {
				var kinds []string
				for line := range strings.Lines(out) {
					var ev map[string]json.RawMessage
					if json.Unmarshal([]byte(line), &ev) != nil {
						return false
					}
					for k := range ev {
						if k != "node_name" && k != "time" {
							kinds = append(kinds, k)
						}
					}
				}
				return strings.Contains(out, `"CAP_CHOWN"`) && strings.Contains(strings.Join(kinds, " "), "process_kprobe") &&
					strings.Contains(out, `"capsrec_summary"`)
			}, []string{"checks seen", "0 lost"}},
		{"compact, --count 1: one line", []string{"--cap", "chown", "--count", "1", "--no-summary"},
			func(out string) bool { return strings.Count(out, "\n") == 1 && strings.Contains(out, "CAP_CHOWN") },
			[]string{"1 printed"}},
		{"--full-summary: the profile on stderr", []string{"--cap", "chown", "--full-summary", "-o", "json"},
			func(out string) bool { return strings.Contains(out, "CAP_CHOWN") }, []string{"CHOWN", chown}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			argv := append(tc.argv, "--", "chown", "1234:1234", ownedFile(t))
			out, errOut, err := runCommand(t, recordCommand, argv...)
			if err != nil {
				t.Fatalf("record %q: %v\n%s", argv, err, errOut)
			}
			if !tc.out(out) {
				t.Errorf("record %q: stdout\n%s", argv, out)
			}
			for _, w := range tc.err {
				if !strings.Contains(errOut, w) {
					t.Errorf("record %q: no %q on stderr\n%s", argv, w, errOut)
				}
			}
		})
	}
}

func TestProfileACommand(t *testing.T) {
	testutil.RequireRoot(t)
	if _, err := exec.LookPath("chown"); err != nil {
		testutil.Skip(t, "no chown(1)")
	}
	out, errOut, err := runCommand(t, profileCommand, "-o", "json", "--", "chown", "1234:1234", ownedFile(t))
	if err != nil {
		t.Fatalf("profile -- chown: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, `"CAP_CHOWN"`) || !strings.Contains(out, "chown 1234:1234") {
		t.Errorf("profile -- chown: no CAP_CHOWN need of the command in\n%s", out)
	}
}

// profile --live over a real session: a chown made once it is ready is in
// the profile of what the kernel counted.
func TestProfileLive(t *testing.T) {
	testutil.RequireRoot(t)
	chown, err := exec.LookPath("chown")
	if err != nil {
		testutil.Skip(t, "no chown(1)")
	}
	ready, file := filepath.Join(t.TempDir(), "ready"), ownedFile(t)
	made := make(chan error, 1)
	go func() {
		for range 200 {
			if _, err := os.Stat(ready); err == nil {
				made <- exec.Command(chown, "1234:1234", file).Run()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		made <- os.ErrDeadlineExceeded
	}()
	out, errOut, err := runCommand(t, profileCommand, "--live", "--duration", "3s", "--ready-file", ready, "-o", "json")
	if err != nil {
		t.Fatalf("profile --live: %v\n%s", err, errOut)
	}
	if err := <-made; err != nil {
		t.Fatalf("chown: %v", err)
	}
	if !strings.Contains(out, `"CAP_CHOWN"`) || !strings.Contains(out, chown) {
		t.Errorf("profile --live: no %s CAP_CHOWN in\n%s", chown, out)
	}
	if !strings.Contains(errOut, "sent whole") {
		t.Errorf("profile --live: no summary line on stderr\n%s", errOut)
	}
}
