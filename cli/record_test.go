package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/capsrec/capsrec/core"
)

// planOf parses argv (after "capsrec record") as the app does and returns
// record's plan: flags anywhere, a command after --.
func planOf(t *testing.T, argv ...string) (*recordPlan, error) {
	t.Helper()
	cmd := *recordCommand
	var plan *recordPlan
	var planErr error
	cmd.Action = func(c *cli.Context) error {
		plan, planErr = planRecord(c)
		return nil
	}
	app := &cli.App{Name: "capsrec", Commands: []*cli.Command{&cmd}, Flags: globalFlags(),
		ExitErrHandler: func(*cli.Context, error) {}}
	args := arrangeArgs(append([]string{"capsrec", "record"}, argv...), app.Commands, app.Flags, true)
	if err := app.Run(args); err != nil {
		return nil, err
	}
	return plan, planErr
}

// record's flags become one plan, checked before anything loads: what the
// kernel is given (its config), and one line for each combination it refuses.
func TestPlanRecord(t *testing.T) {
	for _, tc := range []struct {
		name  string
		argv  []string
		check func(*recordPlan) bool
	}{
		{"defaults: probes and runtime setup hidden in the kernel, every cgroup", nil, func(p *recordPlan) bool {
			return p.format == "compact" && p.opts.HideClasses == 1<<core.ClassProbe|1<<core.ClassRuntime && p.opts.Filter.Cgroups == core.CgroupsAll &&
				p.opts.RingBufferSize == 1<<20 && p.opts.WakeupBytes == 1<<17 && p.opts.Method == core.MethodAuto
		}},
		{"--all hides nothing", []string{"--all"}, func(p *recordPlan) bool { return p.opts.HideClasses == 0 }},
		{"kernel filters: pid, verdict, capability", []string{"--pid", "42", "--denied", "--cap", "syslog,CAP_NET_RAW"}, func(p *recordPlan) bool {
			return slices.Equal(p.opts.Filter.Pids, []uint32{42}) && p.opts.Filter.Verdict == core.VerdictDenied && p.opts.Filter.CapMask == 1<<34|1<<13
		}},
		{"a pod filter keeps the listed cgroups", []string{"-n", "prod", "--pod", "web-*"}, func(p *recordPlan) bool { return p.opts.Filter.Cgroups == core.CgroupsOnly && p.opts.Pods == p.pods }},
		{"--host drops them", []string{"--host"}, func(p *recordPlan) bool { return p.opts.Filter.Cgroups == core.CgroupsExclude }},
		{"a command is followed from its start", []string{"--", "true", "-x"}, func(p *recordPlan) bool {
			return p.opts.Filter.FollowPids && strings.HasSuffix(p.commandPath, "/true") && slices.Equal(p.command, []string{"true", "-x"})
		}},
		{"-o json, flags after the command's name stay its own", []string{"-o", "json", "--", "true", "--pid"}, func(p *recordPlan) bool {
			return p.format == "json" && slices.Equal(p.command, []string{"true", "--pid"})
		}},
		{"--summary", []string{"--summary"}, func(p *recordPlan) bool { return p.summary }},
		{"--no-summary", []string{"--no-summary"}, func(p *recordPlan) bool { return !p.summary }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planOf(t, tc.argv...)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(p) {
				t.Errorf("plan %+v, session %+v", p, p.opts)
			}
		})
	}
}

func TestPlanRecordRefuses(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"-o", "yaml"}, `unknown output format "yaml" (want compact or json)`},
		{[]string{"--attach", "uprobe"}, "--attach: "},
		{[]string{"--color", "sometimes"}, "sometimes"},
		{[]string{"extra"}, `record takes no arguments, got "extra"`},
		{[]string{"--"}, "no command after --"},
		{[]string{"--count", "-1"}, "--count -1: want 0 or more"},
		{[]string{"--duration", "-1s"}, "--duration -1s: want 0 or more"},
		{[]string{"--ring-buffer", "3"}, "--ring-buffer 3: want a power of two"},
		{[]string{"--ring-buffer", "1000"}, "--ring-buffer 1000: want a power of two"},
		{[]string{"--denied", "--granted"}, "--denied"},
		{[]string{"--cap", "CAP_NOPE"}, "CAP_NOPE"},
		{[]string{"--pod", "web", "--host"}, "--host selects processes in no container"},
		{[]string{"--pod", "web["}, `--pod "web[": bad glob`},
		{[]string{"-l", "app in ("}, "--selector: "},
		{[]string{"--pid", "1", "--", "true"}, "--pid and a command exclude each other"},
		{[]string{"-n", "prod", "--", "true"}, "a command runs on the host: pod filters"},
		{[]string{"--", "no-such-command-here"}, "the command: "},
		{[]string{"--no-summary", "--summary"}, "--no-summary and --summary/--full-summary: choose one"},
	} {
		_, err := planOf(t, tc.argv...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("record %q: %v, want one line with %q", tc.argv, err, tc.want)
		}
	}
}
