package kubectl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"sigs.k8s.io/yaml"

	"github.com/capsrec/capsrec/internal/textsafe"
	"github.com/capsrec/capsrec/kubectl/cluster"
	"github.com/capsrec/capsrec/profile"
)

// verifyFlags are profile's --verify and its knobs.
var verifyFlags = []cli.Flag{
	&cli.BoolFlag{Name: "verify", Usage: "apply the patch (the profile's, with --restart; --patch-file's otherwise) under recording, watch the new pods for --verify-duration, and roll back what fails: exit 1 with why"},
	&cli.DurationFlag{Name: "verify-duration", Value: 30 * time.Second, Usage: "with --verify: how long the patched pods must stay healthy after their rollout"},
	&cli.StringFlag{Name: "verify-cmd", Usage: "with --verify: a command (sh -c, run here) that must exit 0 at the end of the window, e.g. 'curl -sf http://web.example/healthz'"},
	&cli.StringFlag{Name: "patch-file", Usage: "with --verify and without --restart: the patch to verify (as -o patch writes it)"},
	&cli.StringFlag{Name: "recording", Usage: "with --verify and without --restart: verify the profile of this recording of the workload (what --save wrote)"},
	&cli.BoolFlag{Name: "minimize", Usage: "with --verify and --restart or --recording: then try the workload without each added capability in turn (a rollout each, under recording): those it stays healthy without are optional, and the patch leaves them out"},
	&cli.IntFlag{Name: "max-tries", Value: 8, Usage: "with --minimize: try at most this many capabilities"},
	&cli.BoolFlag{Name: "keep-optional", Usage: "with --minimize: report optional capabilities but keep them in the patch (and on the workload)"},
}

// verifyCmdTimeout bounds --verify-cmd.
const verifyCmdTimeout = 2 * time.Minute

// checkVerifyFlags rejects the combinations --verify cannot take.
func checkVerifyFlags(c *cli.Context) error {
	verifying := c.Bool("verify")
	sources := 0
	for _, set := range []bool{c.Bool("restart"), c.String("patch-file") != "", c.String("recording") != ""} {
		if set {
			sources++
		}
	}
	switch {
	case !verifying && (c.String("patch-file") != "" || c.String("recording") != "" || c.String("verify-cmd") != "" || c.IsSet("verify-duration") || c.Bool("minimize")):
		return errors.New("--patch-file, --recording, --verify-cmd, --verify-duration and --minimize go with --verify")
	case (c.IsSet("max-tries") || c.Bool("keep-optional")) && !c.Bool("minimize"):
		return errors.New("--max-tries and --keep-optional go with --minimize")
	case c.Bool("minimize") && !c.Bool("restart") && c.String("recording") == "":
		return errors.New("--minimize tries the profile's capabilities: profile with --restart, or give --recording")
	case c.Int("max-tries") < 0:
		return errors.New("--max-tries must not be negative")
	case !verifying:
		return nil
	case sources > 1:
		return errors.New("--verify verifies one patch: the profile --restart makes, --patch-file's or --recording's profile")
	case sources == 0:
		return errors.New("--verify needs a patch: profile with --restart, or give --patch-file or --recording")
	case c.String("recording") != "" && c.String("save") != "":
		return errors.New("--save goes with a recording made now, not with --recording")
	case c.Bool("wait") || c.String("check") != "":
		return errors.New("--verify takes neither --wait nor --check: it applies a patch to a running Deployment, DaemonSet or StatefulSet")
	case c.Duration("verify-duration") <= 0:
		return errors.New("--verify-duration must be positive")
	}
	return nil
}

// verifyBudget is how long a --verify may keep its recorders.
func verifyBudget(c *cli.Context) time.Duration {
	if !c.Bool("verify") {
		return 0
	}
	one := 2*c.Duration("rollout-timeout") + c.Duration("verify-duration") + verifyCmdTimeout
	if c.Bool("minimize") {
		return one * time.Duration(1+c.Int("max-tries"))
	}
	return one
}

// verifyProfile verifies the patch of merged, w's profile (source says where
// it was recorded), and prints the profile with what the verify proved.
func verifyProfile(ctx context.Context, s *pluginSession, w cluster.Workload, merged *profile.Profile, source string, format string, style profile.Style) error {
	c := s.c
	opts := profile.PatchOptions{Alternatives: style.Alternatives, UserNS: style.UserNS}
	v, _, err := verify(ctx, s, w, patchOf(merged, w, opts), verifyOptions{})
	if err != nil {
		return err
	}
	if v.Verified && c.Bool("minimize") {
		if opts, err = minimize(ctx, s, w, merged, opts, v); err != nil {
			return err
		}
	}
	merged.Verification = v
	if c.Bool("keep-optional") {
		opts.Omit = nil
	}
	if err := printProfile(c, w, merged, source, format, style, opts.Omit); err != nil {
		return err
	}
	return verdict(v)
}

// verifyRecording verifies the profile of --recording, a recording --save
// wrote: its containers of w alone.
func verifyRecording(ctx context.Context, s *pluginSession, w cluster.Workload, format string, style profile.Style) error {
	path := s.c.String("recording")
	prof, err := profile.ReadFiles([]string{path}, os.Stdin, profile.ReadOptions{Filter: profile.Filter{Namespaces: []string{w.Namespace}}})
	if err != nil {
		return fmt.Errorf("--recording: %w", err)
	}
	prof.Keep(func(sp *profile.SubjectProfile) bool {
		return sp.Subject.IsContainer() && sp.Subject.Namespace == w.Namespace && sp.Subject.Workload == w.Name
	})
	if prof.Len() == 0 {
		return fmt.Errorf("--recording %s holds no container of %s", textsafe.Visible(path), w)
	}
	return verifyProfile(ctx, s, w, prof, "recorded in "+path, format, style)
}

// omitted lists omit's capabilities: refusals a try tolerates (those proved optional before, and its own).
func omitted(omit map[string][]string) []profile.ContainerCap {
	var out []profile.ContainerCap
	for ctr, caps := range omit {
		for _, c := range caps {
			out = append(out, profile.ContainerCap{Container: ctr, Cap: c})
		}
	}
	return out
}

func patchOf(p *profile.Profile, w cluster.Workload, opts profile.PatchOptions) []byte {
	var b strings.Builder
	_ = writePatch(&b, p, w, opts)
	return []byte(b.String())
}

// minimize tries the verified patch without each capability it adds, one
// rollout each: one the workload stays healthy without is optional, left
// out of the next tries and of the patch it returns. A try that fails is
// rolled back by verify; with --keep-optional one that passes is too: the
// workload ends on the last verified template.
func minimize(ctx context.Context, s *pluginSession, w cluster.Workload, merged *profile.Profile, opts profile.PatchOptions, v *profile.Verification) (profile.PatchOptions, error) {
	c := s.c
	opts.Omit = map[string][]string{}
	candidates := merged.PatchAdds(opts)
	for i, cc := range candidates {
		if i >= c.Int("max-tries") {
			v.Untried = append(v.Untried, candidates[i:]...)
			break
		}
		try := opts
		try.Omit = maps.Clone(opts.Omit)
		try.Omit[cc.Container] = append(slices.Clone(try.Omit[cc.Container]), cc.Cap)
		progress(c, "kubectl capsrec: minimize: trying %s without %s\n", textsafe.Visible(cc.Container), cc.Cap)
		tv, tolerated, err := verify(ctx, s, w, patchOf(merged, w, try), verifyOptions{tolerate: omitted(try.Omit), putBack: c.Bool("keep-optional")})
		if err != nil {
			return opts, fmt.Errorf("minimize, without %s in container %s: %w", cc.Cap, textsafe.Visible(cc.Container), err)
		}
		t := profile.Try{Container: cc.Container, Cap: cc.Cap, Optional: tv.Verified}
		if tv.Verified {
			for _, d := range tolerated {
				t.Tolerated = append(t.Tolerated, d.Text)
			}
			opts = try
		} else {
			// Its own refusals first: the likeliest cause.
			for _, d := range tolerated {
				if d.Container == cc.Container && d.Cap == cc.Cap {
					t.Problems = append(t.Problems, d.Text)
				}
			}
			t.Problems = append(append(t.Problems, tv.Denied...), tv.Problems...)
		}
		v.Tries = append(v.Tries, t)
	}
	switch {
	case c.Bool("keep-optional"):
		v.Outcome = "the workload is left on the verified patch, optional capabilities kept (--keep-optional)"
	default:
		v.Outcome = "the workload is left on the last verified patch: without the capabilities found optional"
	}
	return opts, nil
}

// verifyPatchFile verifies --patch-file's patch, and prints what it proved:
// the patch with it as comments, or it alone.
func verifyPatchFile(ctx context.Context, s *pluginSession, w cluster.Workload, format string) error {
	patch, err := os.ReadFile(s.c.String("patch-file"))
	if err != nil {
		return fmt.Errorf("--patch-file: %w", err)
	}
	v, _, err := verify(ctx, s, w, patch, verifyOptions{})
	if err != nil {
		return err
	}
	out := s.c.App.Writer
	switch format {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Verification *profile.Verification `json:"verification"`
		}{v}); err != nil {
			return err
		}
	case "patch":
		for _, l := range v.Lines() {
			fmt.Fprintf(out, "# %s\n", l)
		}
		if _, err := out.Write(patch); err != nil {
			return err
		}
	default:
		for _, l := range v.Lines() {
			fmt.Fprintln(out, l)
		}
	}
	return verdict(v)
}

func verdict(v *profile.Verification) error {
	if v.Verified {
		return nil
	}
	why := append(append([]string{}, v.Denied...), v.Problems...)
	return cli.Exit("kubectl capsrec: the patch failed its verify: "+textsafe.Visible(textsafe.OneLine(strings.Join(why, "; "))), 1)
}

// patchJSON reads a patch as -o patch writes it (YAML, one workload) into JSON.
func patchJSON(patch []byte) ([]byte, error) {
	if strings.Contains("\n"+string(patch), "\n---") {
		return nil, errors.New("--patch-file: it patches more than one workload; give the one for this workload")
	}
	j, err := yaml.YAMLToJSON(patch)
	if err != nil {
		return nil, fmt.Errorf("--patch-file: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(j, &m); err != nil || m["spec"] == nil {
		return nil, errors.New("the patch sets no spec: there is nothing to verify")
	}
	return j, nil
}

// verifyOptions: denials of tolerate's capabilities do not fail the verify
// (they are what a --minimize try proves tolerated, returned apart); with
// putBack a verified patch is rolled back too.
type verifyOptions struct {
	tolerate []profile.ContainerCap
	putBack  bool
}

// verify applies patch to w under recording on every node its new pods may
// land on and watches them; what fails is rolled back. From the mark to the
// end the workload carries its template from before (cluster.VerifyMark):
// a run killed on the way leaves it for the next to restore.
func verify(ctx context.Context, s *pluginSession, w cluster.Workload, patchYAML []byte, o verifyOptions) (*profile.Verification, []profile.Denial, error) {
	patch, err := patchJSON(patchYAML)
	if err != nil {
		return nil, nil, err
	}
	snap, err := s.client.Snapshot(ctx, w)
	if err != nil {
		return nil, nil, err
	}
	if snap.Mark != nil {
		return nil, nil, fmt.Errorf("%s carries the mark of another --verify (started %s), which runs now or did not end", w, textsafe.Visible(snap.Marked))
	}
	_, old, err := s.client.PodNames(ctx, w)
	if err != nil {
		return nil, nil, err
	}
	nodes, err := s.client.CandidateNodes(ctx, w, s.c.Int("max-nodes"))
	if err != nil {
		return nil, nil, err
	}
	recCtx, stopRecording := context.WithCancel(ctx)
	defer stopRecording()
	runs, wait := startNodes(recCtx, s, w, nodes, nil, true)
	defer func() {
		stopRecording()
		wait()
		closeSpools(runs)
	}()
	if err := allReady(ctx, runs); err != nil {
		return nil, nil, err
	}
	ours, err := applyMarked(ctx, s, w, snap, patch)
	if err != nil {
		return nil, nil, err
	}
	v := &profile.Verification{Window: s.c.Duration("verify-duration").String(), Denied: []string{}, Problems: []string{}}
	if err := watch(ctx, s, w, snap.Template, ours, v); err != nil {
		return nil, nil, err
	}
	health, err := s.client.Health(ctx, w, old)
	if err != nil {
		return nil, nil, err
	}
	stopRecording()
	wait()
	tolerated, err := judge(ctx, s, runs, health, o, v)
	if err != nil {
		return nil, nil, err
	}
	if v.Verified && !o.putBack {
		v.Outcome = "the workload is left on the patched template"
		return v, tolerated, unmark(s, w)
	}
	if err := rollBack(ctx, s, w, snap.Template, ours, health.Pods); err != nil {
		return nil, nil, fmt.Errorf("the patch failed its verify (%s), and rolling back failed: %w", strings.Join(append(v.Denied, v.Problems...), "; "), err)
	}
	v.RolledBack = true
	v.Outcome = "rolled back: the workload is on its template from before"
	if v.Verified {
		v.Outcome = "verified, then put back on its template from before (--keep-optional)"
	}
	return v, tolerated, unmark(s, w)
}

// applyMarked marks w with its template from before, applies the patch and
// marks w again with the template the patch made, which it returns.
func applyMarked(ctx context.Context, s *pluginSession, w cluster.Workload, snap cluster.Snapshot, patch []byte) (json.RawMessage, error) {
	started := time.Now()
	if err := s.client.Mark(ctx, w, snap, started, ""); err != nil {
		return nil, err
	}
	ours, err := s.client.ApplyPatch(ctx, w, patch, snap.Template, started)
	if err != nil {
		return nil, errors.Join(err, unmark(s, w))
	}
	if err := s.client.Mark(ctx, w, snap, started, cluster.TemplateHash(ours)); err != nil {
		return nil, errors.Join(err, interrupted(s, w, snap.Template, ours))
	}
	progress(s.c, "kubectl capsrec: verifying: patched %s; waiting for its rollout\n", w)
	return ours, nil
}

// watch waits for the patch's rollout (a failed one is a problem of v), then
// --verify-duration, reading w's template every second: one changed by
// someone else stops the verify, and is left as they made it. Ctrl-C puts
// the template from before back.
func watch(ctx context.Context, s *pluginSession, w cluster.Workload, before, ours json.RawMessage, v *profile.Verification) error {
	started := time.Now()
	err := s.client.WaitRollout(ctx, w, started, s.c.Duration("rollout-timeout"))
	if err != nil && ctx.Err() == nil {
		v.Problems = append(v.Problems, err.Error())
	}
	if err == nil {
		progress(s.c, "kubectl capsrec: verifying: rolled out; watching for %s\n", v.Window)
	}
	end := time.Now().Add(s.c.Duration("verify-duration"))
	for {
		if ctx.Err() != nil {
			return interrupted(s, w, before, ours)
		}
		cur, err := s.client.Snapshot(ctx, w)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if err == nil && cluster.TemplateHash(cur.Template) != cluster.TemplateHash(ours) {
			return fmt.Errorf("stopped: the template of %s was %w: it is left as they made it; remove the mark once it is right (kubectl annotate %s/%s -n %s %s-)",
				w, cluster.ErrChanged, w.Kind, w.Name, w.Namespace, cluster.VerifyMark)
		}
		if len(v.Problems) > 0 || !time.Now().Before(end) {
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(min(time.Second, time.Until(end))):
		}
	}
}

// judge decides v from the new pods' health, the needs refused them (but
// for those o tolerates, returned apart) and --verify-cmd.
func judge(ctx context.Context, s *pluginSession, runs []*nodeRun, health cluster.PodHealth, o verifyOptions, v *profile.Verification) ([]profile.Denial, error) {
	v.Pods, v.Problems = health.Pods, append(v.Problems, health.Problems...)
	denied, err := deniedUnder(runs, health)
	if err != nil {
		return nil, err
	}
	var tolerated []profile.Denial
	for _, d := range denied {
		if slices.Contains(o.tolerate, profile.ContainerCap{Container: d.Container, Cap: d.Cap}) {
			tolerated = append(tolerated, d)
		} else {
			v.Denied = append(v.Denied, d.Text)
		}
	}
	v.Signals = signals(s.c, health)
	if len(health.Pods) == 0 {
		v.Problems = append(v.Problems, "no new pod was seen")
	}
	if cmd := s.c.String("verify-cmd"); cmd != "" && len(v.Problems) == 0 {
		if err := runVerifyCmd(ctx, cmd); err != nil {
			v.Problems = append(v.Problems, err.Error())
		}
	}
	v.Verified = len(v.Problems) == 0 && len(v.Denied) == 0
	return tolerated, nil
}

// closeSpools frees the recorders' spools (unlinked when made: closing frees them).
func closeSpools(runs []*nodeRun) {
	for _, r := range runs {
		if r.spool != nil {
			r.spool.Close()
		}
	}
}

// deniedUnder reads the recorders' spools into a profile of the new pods
// alone, and lists the needs the kernel refused them.
func deniedUnder(runs []*nodeRun, h cluster.PodHealth) ([]profile.Denial, error) {
	prof := profile.New()
	var errs []error
	for _, r := range runs {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("the recorder on node %s: %w", textsafe.Visible(r.node), r.err))
			continue
		}
		if _, err := r.spool.Seek(0, io.SeekStart); err != nil {
			errs = append(errs, err)
			continue
		}
		if len(h.Pods) == 0 {
			continue
		}
		if err := profile.Read(r.node, r.spool, profile.ReadOptions{Filter: profile.Filter{Pods: h.Pods}, Since: h.Since}, prof); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		// A node that did not record cannot say no need was denied there.
		return nil, fmt.Errorf("the verify's recording failed, the workload is left patched and marked (%s): %w", cluster.VerifyMark, err)
	}
	return profile.DeniedNeeds(prof), nil
}

// signals name the health signals the verdict rests on.
func signals(c *cli.Context, h cluster.PodHealth) []string {
	s := []string{"Ready and no restarts (no readiness probe on every container: Ready is only Running there)"}
	if h.Probed {
		s[0] = "Ready (readiness probes) and no restarts"
	}
	s = append(s, "no need denied (recorded on every node)")
	if cmd := c.String("verify-cmd"); cmd != "" {
		s = append(s, "--verify-cmd "+textsafe.Visible(cmd))
	}
	return s
}

func runVerifyCmd(ctx context.Context, cmd string) error {
	ctx, cancel := context.WithTimeout(ctx, verifyCmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sh", "-c", cmd).CombinedOutput()
	if err == nil {
		return nil
	}
	tail := strings.TrimSpace(string(out))
	if len(tail) > 200 {
		tail = tail[len(tail)-200:]
	}
	return fmt.Errorf("--verify-cmd failed (%v): %s", err, tail)
}

// rollBack puts template back and waits for that rollout. A StatefulSet
// does not replace a pod that never became Ready (its forced rollback): the
// new pods are deleted for the controller to remake them from the template.
func rollBack(ctx context.Context, s *pluginSession, w cluster.Workload, template, ours json.RawMessage, pods []string) error {
	progress(s.c, "kubectl capsrec: verify failed; rolling %s back\n", w)
	since := time.Now()
	if err := s.client.RestoreTemplate(ctx, w, template, ours); err != nil {
		return err
	}
	if w.Kind == "statefulset" {
		// Deleted before its controller saw the template, a pod would come back as it was.
		if err := s.client.WaitObserved(ctx, w, 30*time.Second); err != nil {
			return err
		}
		if err := s.client.DeletePods(ctx, w, pods); err != nil {
			return err
		}
	}
	return s.client.WaitRolloutPast(ctx, w, since, s.c.Duration("rollout-timeout"), pods)
}

// interrupted restores the template from before after Ctrl-C, without
// waiting for that rollout.
func interrupted(s *pluginSession, w cluster.Workload, before, ours json.RawMessage) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.client.RestoreTemplate(ctx, w, before, ours); err != nil {
		return fmt.Errorf("interrupted: %s is left on the unverified patch, marked (%s): %w", w, cluster.VerifyMark, err)
	}
	return errors.Join(errors.New("interrupted: the template from before is restored"), unmark(s, w))
}

func unmark(s *pluginSession, w cluster.Workload) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.client.Unmark(ctx, w); err != nil {
		return err
	}
	if err := s.client.UnmarkRevisions(ctx, w); err != nil {
		fmt.Fprintf(s.c.App.ErrWriter, "kubectl capsrec: warning: the mark %s stays on a revision of %s (a rollout undo to it brings it back): %s\n",
			cluster.VerifyMark, w, textsafe.Visible(textsafe.OneLine(err.Error())))
	}
	return nil
}

// checkMark deals with the mark an earlier --verify left on w: a --restart
// or --verify puts the template from before back first (it runs an
// unverified patch); another run says so.
func checkMark(ctx context.Context, s *pluginSession, w cluster.Workload) (cluster.Workload, error) {
	if !w.Restartable() {
		return w, nil
	}
	snap, err := s.client.Snapshot(ctx, w)
	if err != nil || snap.Mark == nil {
		return w, err
	}
	if !s.c.Bool("restart") && !s.c.Bool("verify") {
		fmt.Fprintf(s.c.App.ErrWriter, "kubectl capsrec: warning: %s runs the patch of a --verify that did not end (started %s): the next --verify or --restart puts its template from before back\n", w, textsafe.Visible(snap.Marked))
		return w, nil
	}
	if err := restoreInterrupted(ctx, s, w, snap); err != nil {
		return w, err
	}
	return s.client.ResolveWorkload(ctx, w.Namespace, w.Kind+"/"+w.Name, "")
}

// restoreInterrupted puts back the template an earlier --verify left on w,
// killed before it could: the workload runs an unverified patch until then.
func restoreInterrupted(ctx context.Context, s *pluginSession, w cluster.Workload, snap cluster.Snapshot) error {
	if snap.MarkPatched == "" && cluster.TemplateHash(snap.Mark) == cluster.TemplateHash(snap.Template) {
		return unmark(s, w) // killed before its patch: nothing to restore
	}
	if snap.MarkPatched == "" || snap.MarkPatched != cluster.TemplateHash(snap.Template) {
		// Killed before its patch was known to land, or changed since by
		// someone else: which template runs is theirs to say.
		return fmt.Errorf("an earlier --verify of %s (started %s) did not end, and %s changed since its patch or its patch is not known to have landed: check its template, then remove the mark (kubectl annotate %s/%s -n %s %s-)",
			w, textsafe.Visible(snap.Marked), w.Name, w.Kind, w.Name, w.Namespace, cluster.VerifyMark)
	}
	fmt.Fprintf(s.c.App.ErrWriter, "kubectl capsrec: an earlier --verify of %s (started %s) did not end: restoring its template from before\n", w, textsafe.Visible(snap.Marked))
	pods, _, err := s.client.PodNames(ctx, w)
	if err != nil {
		return err
	}
	if err := rollBack(ctx, s, w, snap.Mark, snap.Template, pods); err != nil {
		return err
	}
	return unmark(s, w)
}
