package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capsrec/capsrec/internal/testutil"
)

// Record the real dmesg denial and a granted CAP_CHOWN, then profile the recording.
func TestProfileOfARecording(t *testing.T) {
	method := firstMethod(t)
	dmesgRestrict(t)
	s := testutil.Record(t, "-o", "json", "--attach", method, "--cap", "syslog,chown")
	dmesg := exec.Command("dmesg")
	dmesg.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	_ = dmesg.Run()
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	chown := exec.Command("chown", "1234", file)
	if err := chown.Run(); err != nil {
		t.Fatal(err)
	}
	s.WaitFor("chown's CAP_CHOWN", eventOf(t, chown.Process.Pid, "CAP_CHOWN"))
	s.Stop(syscall.SIGINT)
	var recording []byte
	for _, l := range s.Lines() {
		recording = append(append(recording, l...), '\n')
	}
	events := filepath.Join(dir, "events.json")
	if err := os.WriteFile(events, recording, 0o644); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(testutil.Binary(t), "profile", "-o", "json", events).Output()
	if err != nil {
		t.Fatalf("capsrec profile: %v", err)
	}
	var prof struct {
		Subjects []struct {
			Binary         string `json:"binary"`
			Capabilities   map[string]struct{ Verdict string }
			Recommendation struct{ Drop, Add, Denied []string }
		}
	}
	if err := json.Unmarshal(out, &prof); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	found := map[string]bool{}
	for _, sub := range prof.Subjects {
		r := sub.Recommendation
		switch {
		case strings.HasSuffix(sub.Binary, "/dmesg"):
			found["dmesg"] = true
			if !strings.HasPrefix(sub.Capabilities["CAP_SYSLOG"].Verdict, "denied") || !slices.Equal(r.Denied, []string{"SYSLOG"}) || len(r.Add) != 0 {
				t.Errorf("dmesg: %+v", sub)
			}
		case strings.HasSuffix(sub.Binary, "/chown"):
			found["chown"] = true
			if !slices.Equal(r.Add, []string{"CHOWN"}) || !slices.Equal(r.Drop, []string{"ALL"}) {
				t.Errorf("chown: %+v", sub)
			}
		}
	}
	if !found["dmesg"] || !found["chown"] {
		t.Errorf("profile lacks dmesg or chown: %s", out)
	}
}

// record --summary prints a line per subject after the counts;
// --full-summary the whole profile table; --no-summary neither.
func TestRecordSummary(t *testing.T) {
	method := firstMethod(t)
	dmesgRestrict(t)
	for _, c := range []struct {
		flag        string
		want, never string
	}{
		{"--summary", "needs [], denied [SYSLOG]", "denied: the workload tried"},
		{"--full-summary", "denied: the workload tried", "the session's profile"},
		{"--no-summary", "checks seen", "SYSLOG"},
	} {
		t.Run(c.flag, func(t *testing.T) {
			h := startHelper(t, "", 65534, "syslog:2")
			s := testutil.Record(t, "--attach", method, "--pid", strconv.Itoa(h.pid()), c.flag)
			h.run(t)
			s.WaitFor("the denial", func(l []byte) bool { return strings.Contains(string(l), "CAP_SYSLOG") })
			s.Stop(syscall.SIGINT)
			stderr := s.Stderr()
			if !strings.Contains(stderr, "checks seen") || !strings.Contains(stderr, c.want) || strings.Contains(stderr, c.never) {
				t.Errorf("want %q and not %q on stderr:\n%s", c.want, c.never, stderr)
			}
		})
	}
}

// The README's jq line selects exactly the denied checks: not the summary
// line, not a process_exec, not a granted check.
func TestReadmeJQ(t *testing.T) {
	method := firstMethod(t)
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`capsrec record -o json \| jq '([^']+)'`).FindSubmatch(readme)
	if m == nil {
		t.Fatal("no jq line in the README")
	}
	f := ownedFile(t)
	out, err := exec.Command(testutil.Binary(t), "record", "-o", "json", "--attach", method, "--",
		"sh", "-c", `chown 65534 "$1"; setpriv --reuid=65534 chown 0 "$1"; true`, "sh", f).Output() // a grant, then denials
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	jq := exec.Command("jq", "-c", string(m[1]))
	jq.Stdin = bytes.NewReader(out)
	sel, err := jq.Output()
	if err != nil {
		t.Fatalf("jq %s: %v", m[1], err)
	}
	denied := 0
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		if ev := decode(t, line); ev.ProcessKprobe.Return.IntArg != nil && *ev.ProcessKprobe.Return.IntArg < 0 {
			denied++
		}
	}
	selected := strings.Split(strings.TrimSpace(string(sel)), "\n")
	if denied == 0 || len(selected) != denied || !strings.Contains(string(out), `"capsrec_summary"`) {
		t.Errorf("the README's jq selected %d lines of %d denied checks (and the summary line):\n%.2000s", len(selected), denied, sel)
	}
	for _, line := range selected {
		if !strings.Contains(line, `"int_arg":-`) || !strings.HasPrefix(line, `{"process_kprobe"`) {
			t.Errorf("the README's jq selected a line that is no denied check: %.300s", line)
		}
	}
}

// Flags after arguments, as people type them; --check's exit codes: 1 when
// the manifest differs, 2 when it cannot decide.
func TestProfileFlagsAnywhereAndCheckExits(t *testing.T) {
	bin := testutil.Binary(t)
	event := "testdata/tetragon-cap_capable-event.json"
	out, err := exec.Command(bin, "profile", event, "-o", "yaml", "--color", "never").Output()
	if err != nil || !strings.Contains(string(out), "capabilities:") {
		t.Errorf("profile FILE -o yaml: %v\n%s", err, out)
	}
	dir := t.TempDir()
	manifest := filepath.Join(dir, "all.yaml")
	if err := os.WriteFile(manifest, []byte("kind: Service\nmetadata: {name: x}\n---\nkind: Pod\nmetadata: {name: xwing}\nspec:\n  containers:\n  - name: spaceship\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The seed's event has no capsrec summary: partial, so undecided.
	cmd := exec.Command(bin, "profile", event, "--check", manifest)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if exitCode(err) != 2 || !strings.Contains(string(out), "cannot decide") || !strings.Contains(stderr.String(), "passed over what is no workload: 1 Service") {
		t.Errorf("--check of a partial profile: %v, want exit 2\n%s%s", err, out, stderr.String())
	}
	out, err = exec.Command(bin, "profile", event, "--check", manifest, "--allow-partial").Output()
	if exitCode(err) != 1 || !strings.Contains(string(out), "default/xwing container spaceship: grants capabilities it never needed") {
		t.Errorf("--check --allow-partial of a manifest granting the defaults: %v, want exit 1\n%s", err, out)
	}
	if _, err := exec.Command(bin, "profile", event, "--check", filepath.Join(dir, "none.yaml")).Output(); exitCode(err) != 2 {
		t.Errorf("--check of a missing manifest: %v, want exit 2", err)
	}
}

func TestProfileBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{\"process_kprobe\":{\"function_name\":\"cap_capable\"}}\nnot json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	svc := filepath.Join(dir, "svc.yaml")
	if err := os.WriteFile(svc, []byte("kind: Service\nmetadata: {name: x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := testutil.Binary(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"profile", "-o", "xml", bad}, `unknown output format "xml"`},
		{[]string{"profile", filepath.Join(dir, "nope.json")}, "nope.json: no such file"},
		{[]string{"profile", bad}, bad + ":1: "},
		{[]string{"profile", "--namespace", "[x", bad}, "bad glob"},
		{[]string{"profile", "--check", svc, "testdata/tetragon-cap_capable-event.json"}, "not a workload"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			assertOneLineError(t, exec.Command(bin, c.args...), c.want)
		})
	}
}

// profile --live counts in the kernel: 500 denials of one binary arrive as one
// event, and the profile still says 500.
func TestProfileLive(t *testing.T) {
	for _, method := range methodsUnderTest(t) {
		t.Run(method, func(t *testing.T) {
			dmesgRestrict(t)
			h := startHelper(t, "livehelper", 65534, "syslog:500")
			ready := filepath.Join(t.TempDir(), "ready")
			cmd := exec.Command(testutil.Binary(t), "profile", "--live", "--attach", method, "-o", "json", "--ready-file", ready)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			for _, err := os.Stat(ready); err != nil; _, err = os.Stat(ready) {
				if cmd.ProcessState != nil {
					t.Fatalf("exited: %s", stderr.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			h.run(t)
			time.Sleep(100 * time.Millisecond * testutil.Slow())
			_ = cmd.Process.Signal(syscall.SIGINT)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("profile --live: %v\n%s", err, stderr.String())
			}
			var prof struct {
				Subjects []struct {
					Binary       string `json:"binary"`
					Capabilities map[string]struct {
						Denied uint64 `json:"denied"`
					}
				}
			}
			if err := json.Unmarshal([]byte(stdout.String()), &prof); err != nil {
				t.Fatalf("%v: %s", err, stdout.String())
			}
			found := false
			for _, s := range prof.Subjects {
				if strings.HasSuffix(s.Binary, "/livehelper") {
					found = true
					if n := s.Capabilities["CAP_SYSLOG"].Denied; n != 500 {
						t.Errorf("CAP_SYSLOG denied %d times, want 500", n)
					}
				}
			}
			if !found {
				t.Errorf("no livehelper subject in %s", stdout.String())
			}
			m := regexp.MustCompile(`(\d+) checks? seen, (\d+) sent whole, (\d+) aggregated, (\d+) filtered, (\d+) lost`).FindStringSubmatch(stderr.String())
			if m == nil || m[3] == "0" {
				t.Errorf("no checks were aggregated in the kernel: %s", stderr.String())
			} else {
				n := make([]int, 6)
				for i := 1; i < 6; i++ {
					n[i], _ = strconv.Atoi(m[i])
				}
				if n[1] != n[2]+n[3]+n[4]+n[5] {
					t.Errorf("the summary does not add up: %s", m[0])
				}
			}
			testutil.AssertNothingLeft(t)
		})
	}
}

// --summary counts every check, also those --unique does not print.
func TestRecordSummaryUnique(t *testing.T) {
	method := firstMethod(t)
	dmesgRestrict(t)
	h := startHelper(t, "", 65534, "syslog:3")
	s := testutil.Record(t, "--attach", method, "--pid", strconv.Itoa(h.pid()), "--full-summary", "--unique", "--cap", "syslog")
	h.run(t) // the helper has exited: its checks are in the ring, which the stop drains
	s.Stop(syscall.SIGINT)
	if n := len(s.Lines()); n != 1 {
		t.Errorf("--unique printed %d lines, want 1", n)
	}
	if !regexp.MustCompile(`CAP_SYSLOG +0 +3 `).MatchString(s.Stderr()) {
		t.Errorf("the summary does not count all 3 denials:\n%s", s.Stderr())
	}
}
