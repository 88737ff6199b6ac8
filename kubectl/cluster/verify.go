package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/capsrec/capsrec/internal/textsafe"
)

// VerifyMark is the annotation a --verify puts on the workload (its metadata,
// not its template: no rollout) before it patches the template: the template
// from before, so that a run killed mid-verify leaves what the next one needs
// to put it back.
const VerifyMark = "capsrec.io/verify-original"

// Snapshot is a workload's pod template as the API holds it.
type Snapshot struct {
	Template        json.RawMessage
	ResourceVersion string
	// Mark is an earlier --verify's VerifyMark, if one was left: Marked says
	// when that verify started.
	Mark   json.RawMessage
	Marked string
	// MarkPatched is TemplateHash of the template that verify's patch made;
	// "" when it was killed before it knew it.
	MarkPatched string
}

// TemplateHash names a template by its content, whatever its keys' order.
func TemplateHash(template json.RawMessage) string {
	var v any
	if err := json.Unmarshal(template, &v); err != nil {
		return ""
	}
	canon, _ := json.Marshal(v) // map keys sorted
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:])
}

// mark is VerifyMark's value.
type mark struct {
	Started  string          `json:"started"`
	Template json.RawMessage `json:"template"`
	Patched  string          `json:"patched_template,omitempty"`
}

// ErrChanged: someone else changed the workload's template during a verify.
var ErrChanged = errors.New("changed by someone else during the verify")

// Snapshot reads w's template, resourceVersion and any mark a --verify left.
func (c *Client) Snapshot(ctx context.Context, w Workload) (Snapshot, error) {
	raw, err := c.apps.Get().Namespace(w.Namespace).Resource(w.Kind + "s").Name(w.Name).DoRaw(ctx)
	if err != nil {
		return Snapshot{}, c.Explain(err, w.String())
	}
	var obj struct {
		Metadata struct {
			ResourceVersion string            `json:"resourceVersion"`
			Annotations     map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec struct {
			Template json.RawMessage `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return Snapshot{}, fmt.Errorf("%s: %w", w, err)
	}
	s := Snapshot{Template: obj.Spec.Template, ResourceVersion: obj.Metadata.ResourceVersion}
	if v, ok := obj.Metadata.Annotations[VerifyMark]; ok {
		var m mark
		if err := json.Unmarshal([]byte(v), &m); err != nil || len(m.Template) == 0 {
			return s, fmt.Errorf("%s: its annotation %s is not one capsrec wrote: remove it by hand (kubectl annotate %s/%s %s-)", w, VerifyMark, w.Kind, w.Name, VerifyMark)
		}
		s.Mark, s.Marked, s.MarkPatched = m.Template, m.Started, m.Patched
	}
	return s, nil
}

// Mark records s's template on w, before a verify patches it (patched ""),
// if w's template is still s's; and again once the patch made the template
// whose TemplateHash is patched. (Generation cannot tell a template's
// change: a Deployment's moves with its annotations.)
func (c *Client) Mark(ctx context.Context, w Workload, s Snapshot, at time.Time, patched string) error {
	v, err := json.Marshal(mark{Started: at.UTC().Format(time.RFC3339), Template: s.Template, Patched: patched})
	if err != nil {
		return err
	}
	want := TemplateHash(s.Template)
	if patched != "" {
		want = patched
	}
	return c.whileTemplate(ctx, w, want, func(rv string) error {
		_, err := c.patchRaw(ctx, w, types.MergePatchType, map[string]any{"metadata": map[string]any{
			"resourceVersion": rv, "annotations": map[string]any{VerifyMark: string(v)}}}, "annotating")
		return err
	})
}

// whileTemplate runs write with w's resourceVersion, for as long as w's
// template is still the one want names: a conflict with a status update
// (the controller's) is retried; one with a changed template is ErrChanged.
func (c *Client) whileTemplate(ctx context.Context, w Workload, want string, write func(rv string) error) error {
	for range 10 {
		s, err := c.Snapshot(ctx, w)
		if err != nil {
			return err
		}
		if TemplateHash(s.Template) != want {
			return fmt.Errorf("%s: %w", w, ErrChanged)
		}
		if err := write(s.ResourceVersion); !errors.Is(err, ErrChanged) {
			return err
		}
	}
	return fmt.Errorf("%s: written to without end by others: %w", w, ErrChanged)
}

// Unmark removes the mark once the workload is on a verified or its original template.
func (c *Client) Unmark(ctx context.Context, w Workload) error {
	_, err := c.patchRaw(ctx, w, types.MergePatchType, unmarkPatch, "annotating")
	return err
}

var unmarkPatch = map[string]any{"metadata": map[string]any{"annotations": map[string]any{VerifyMark: nil}}}

// UnmarkRevisions removes the mark from a Deployment's ReplicaSets: the
// Deployment controller copies its annotations onto the ReplicaSet a
// rollout makes, and kubectl rollout undo copies them back, which would mark
// a template the user chose as a verify that did not end. It names the
// ReplicaSets it could not unmark.
func (c *Client) UnmarkRevisions(ctx context.Context, w Workload) error {
	if w.Kind != "deployment" {
		return nil
	}
	raw, err := c.apps.Get().Namespace(w.Namespace).Resource("replicasets").
		Param("labelSelector", w.Selector.String()).DoRaw(ctx)
	if err != nil {
		return c.Explain(err, "listing the replicasets of "+w.String())
	}
	list := &appsv1.ReplicaSetList{}
	if err := json.Unmarshal(raw, list); err != nil {
		return fmt.Errorf("the replicasets of %s: %w", w, err)
	}
	var errs []error
	for _, rs := range list.Items {
		owned := slices.ContainsFunc(rs.OwnerReferences, func(o metav1.OwnerReference) bool {
			return o.Kind == "Deployment" && o.Name == w.Name
		})
		if _, marked := rs.Annotations[VerifyMark]; !owned || !marked {
			continue
		}
		if _, err := c.patchRaw(ctx, Workload{Kind: "replicaset", Name: rs.Name, Namespace: w.Namespace}, types.MergePatchType, unmarkPatch, "annotating"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ApplyPatch applies a strategic merge patch (JSON) to w, as kubectl patch
// does, only if w's template is still before's (else ErrChanged); it
// returns the template it made. The template is stamped too, as kubectl
// rollout restart does, so that every pod is new even when the patch
// changes nothing.
func (c *Client) ApplyPatch(ctx context.Context, w Workload, patch []byte, before json.RawMessage, at time.Time) (json.RawMessage, error) {
	var p map[string]any
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, fmt.Errorf("the patch: %w", err)
	}
	spec, _ := p["spec"].(map[string]any)
	if spec == nil {
		return nil, errors.New("the patch sets no spec")
	}
	ann := child(child(child(spec, "template"), "metadata"), "annotations")
	ann["kubectl.kubernetes.io/restartedAt"] = at.Format(time.RFC3339)
	meta := child(p, "metadata")
	var made json.RawMessage
	err := c.whileTemplate(ctx, w, TemplateHash(before), func(rv string) error {
		meta["resourceVersion"] = rv // the API server refuses it (Conflict) if w moved on
		raw, err := c.patchRaw(ctx, w, types.StrategicMergePatchType, p, "patching")
		if err != nil {
			return err
		}
		var obj struct {
			Spec struct {
				Template json.RawMessage `json:"template"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return fmt.Errorf("patching %s: %w", w, err)
		}
		made = obj.Spec.Template
		return nil
	})
	return made, err
}

// child is m[key] as a map, made if missing.
func child(m map[string]any, key string) map[string]any {
	c, _ := m[key].(map[string]any)
	if c == nil {
		c = map[string]any{}
		m[key] = c
	}
	return c
}

func (c *Client) patchRaw(ctx context.Context, w Workload, pt types.PatchType, body any, doing string) ([]byte, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	raw, err := c.apps.Patch(pt).Namespace(w.Namespace).Resource(w.Kind + "s").Name(w.Name).Body(data).DoRaw(ctx)
	// A JSON patch whose test failed is refused as invalid (422).
	if apierrors.IsConflict(err) || (pt == types.JSONPatchType && apierrors.IsInvalid(err)) {
		return nil, fmt.Errorf("%s: %w", w, ErrChanged)
	}
	if err != nil {
		return nil, c.Explain(err, doing+" "+w.String())
	}
	return raw, nil
}

// RestoreTemplate puts template back on w, as kubectl rollout undo does, only
// if w's template is still expect (a JSON patch's test): a workload someone
// else changed meanwhile is left as they made it (ErrChanged).
func (c *Client) RestoreTemplate(ctx context.Context, w Workload, template, expect json.RawMessage) error {
	_, err := c.patchRaw(ctx, w, types.JSONPatchType, []map[string]any{
		{"op": "test", "path": "/spec/template", "value": expect},
		{"op": "replace", "path": "/spec/template", "value": template},
	}, "restoring the template of")
	return err
}

// DeletePods deletes w's pods named.
func (c *Client) DeletePods(ctx context.Context, w Workload, names []string) error {
	for _, n := range names {
		err := c.core.Delete().Namespace(w.Namespace).Resource("pods").Name(n).Do(ctx).Error()
		if err != nil && !apierrors.IsNotFound(err) {
			return c.Explain(err, "deleting pod "+n)
		}
	}
	return nil
}

// PodNames are the names of all w's pods, whatever their phase, and their
// UIDs: a StatefulSet's new pod has its old one's name.
func (c *Client) PodNames(ctx context.Context, w Workload) (names, uids []string, err error) {
	pods, err := c.listPods(ctx, w.Namespace, w.Selector.String())
	if err != nil {
		return nil, nil, c.Explain(err, "listing the pods of "+w.String())
	}
	for _, p := range pods.Items {
		names, uids = append(names, p.Name), append(uids, string(p.UID))
	}
	return names, uids, nil
}

// PodHealth is what a verify reads of a workload's new pods.
type PodHealth struct {
	Pods []string // the new pods, running or not
	// Since is when the first of them was made (to the second): the checks
	// of the old pods, which may have had the same names, came before.
	Since time.Time
	// Problems: a pod not Ready, a container restarted (with its last
	// termination), a pod deleted; each a line for people.
	Problems []string
	// Probed: every container of the new pods has a readiness probe, so
	// Ready means more than Running.
	Probed bool
}

// Health reads the health of w's pods whose UIDs are not in old.
func (c *Client) Health(ctx context.Context, w Workload, old []string) (PodHealth, error) {
	pods, err := c.listPods(ctx, w.Namespace, w.Selector.String())
	if err != nil {
		return PodHealth{}, c.Explain(err, "listing the pods of "+w.String())
	}
	h := PodHealth{Probed: true}
	v := textsafe.Visible
	for _, p := range pods.Items {
		if slices.Contains(old, string(p.UID)) {
			continue
		}
		h.Pods = append(h.Pods, p.Name)
		if made := p.CreationTimestamp.Time; h.Since.IsZero() || made.Before(h.Since) {
			h.Since = made
		}
		if p.DeletionTimestamp != nil {
			h.Problems = append(h.Problems, fmt.Sprintf("pod %s is being deleted", v(p.Name)))
			continue
		}
		if !podReady(&p) {
			h.Problems = append(h.Problems, fmt.Sprintf("pod %s is not Ready (%s)", v(p.Name), p.Status.Phase))
		}
		for _, st := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
			if st.RestartCount > 0 {
				h.Problems = append(h.Problems, fmt.Sprintf("pod %s: container %s restarted %d times%s", v(p.Name), v(st.Name), st.RestartCount, lastTermination(st)))
			}
		}
		for _, ctr := range p.Spec.Containers {
			if ctr.ReadinessProbe == nil {
				h.Probed = false
			}
		}
	}
	return h, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func lastTermination(st corev1.ContainerStatus) string {
	t := st.LastTerminationState.Terminated
	if t == nil {
		return ""
	}
	return fmt.Sprintf(" (last: %s, exit code %d)", textsafe.Visible(t.Reason), t.ExitCode)
}
