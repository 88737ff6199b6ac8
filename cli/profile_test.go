package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// runCommand runs one of the app's commands on argv (flags anywhere, as the
// app arranges them) and returns its stdout and its error.
func runCommand(t *testing.T, cmd *cli.Command, argv ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := &cli.App{Name: "capsrec", Commands: []*cli.Command{cmd}, Flags: globalFlags(),
		Writer: &out, ErrWriter: &errOut, ExitErrHandler: func(*cli.Context, error) {}}
	err := app.Run(arrangeArgs(append([]string{"capsrec", cmd.Name}, argv...), app.Commands, app.Flags, true))
	return out.String(), errOut.String(), err
}

// The seed's real Tetragon event (pod default/xwing, container spaceship:
// CAP_SYSLOG refused) profiled from a file, in each format and selection.
func TestProfileFiles(t *testing.T) {
	const event = "../testdata/tetragon-cap_capable-event.json"
	for _, tc := range []struct {
		argv []string
		want []string
	}{
		{[]string{event, "--color", "never"}, []string{"default/xwing"}},
		{[]string{"-o", "yaml", event}, []string{"container: spaceship", "drop: [ALL]", "denied: SYSLOG"}},
		{[]string{"-o", "json", event}, []string{`"namespace": "default"`}},
		{[]string{"-o", "patch", event}, []string{"spec:", "capabilities:"}},
		{[]string{"-o", "docker", event}, []string{"--cap-drop=ALL"}},
		{[]string{"-n", "nothing-here", "-o", "json", event}, []string{"[]"}},
	} {
		out, errOut, err := runCommand(t, profileCommand, tc.argv...)
		if err != nil {
			t.Errorf("profile %q: %v\n%s", tc.argv, err, errOut)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("profile %q: no %q in\n%s", tc.argv, w, out)
			}
		}
	}
}

func TestProfileRefuses(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"-o", "xml", "f.json"}, `unknown output format "xml"`},
		{[]string{"--pod", "web[", "f.json"}, `"web[": bad glob`},
		{[]string{"--live", "--check", "d.yaml"}, "--check compares recorded files, not a --live session"},
		{[]string{"--interval", "1m", "f.json"}, "--interval goes with --live"},
		{[]string{"--duration", "1m", "f.json"}, "--duration goes with --live"},
		{[]string{"/nonexistent/rec.json"}, "/nonexistent/rec.json"},
		{[]string{"--"}, "no command after --: profile -- COMMAND [ARGS]"},
		{[]string{"f.json", "--", "true"}, "profile reads files or runs a command, not both"},
		{[]string{"--live", "--", "true"}, "--live and --check do not apply"},
		{[]string{"--pod", "x", "--", "true"}, "--pod does not apply to a command's profile"},
		{[]string{"--attach", "uprobe", "--", "true"}, "--attach: "},
		{[]string{"--duration", "-1s", "--", "true"}, "--duration -1s: want 0 or more"},
	} {
		_, _, err := runCommand(t, profileCommand, tc.argv...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("profile %q: %v, want one line with %q", tc.argv, err, tc.want)
		}
	}
}
