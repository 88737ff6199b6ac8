package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/capsrec/capsrec/internal/textsafe"
)

// Restartable tells whether --restart can restart w: what kubectl rollout
// restart restarts.
func (w Workload) Restartable() bool {
	return w.Kind == "deployment" || w.Kind == "daemonset" || w.Kind == "statefulset"
}

// CandidateNodes are the nodes w's new pods may land on: those that run its
// pods now, and the Ready nodes its pod template admits (nodeSelector,
// required node affinity, taints its tolerations allow), at most max. A bare
// selector has no template: every Ready node is a candidate.
func (c *Client) CandidateNodes(ctx context.Context, w Workload, max int) (map[string]*NodePods, error) {
	nodes := map[string]*NodePods{}
	if running, err := c.NodesOf(ctx, w); err == nil {
		nodes = running
	}
	list := &corev1.NodeList{}
	if err := c.core.Get().Resource("nodes").Do(ctx).Into(list); err != nil {
		return nil, c.Explain(err, "listing nodes")
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	image := ""
	if w.Template != nil && len(w.Template.Spec.Containers) > 0 {
		image = w.Template.Spec.Containers[0].Image
	}
	for i := range list.Items {
		n := &list.Items[i]
		if _, ok := nodes[n.Name]; ok || !ready(n) || (w.Template != nil && !Admits(&w.Template.Spec, n, w.Kind == "daemonset")) {
			continue
		}
		// An image a running pod there has is surely on the node; the
		// template's may be on no node yet (or never be pullable).
		img := c.imageOnNode(ctx, n.Name)
		if img == "" {
			img = image
		}
		nodes[n.Name] = &NodePods{Image: img}
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%s: no Ready node admits its pods (nodeSelector, affinity, taints)", w)
	}
	if len(nodes) > max {
		return nil, fmt.Errorf("%s: %d nodes may run its new pods, more than --max-nodes %d", w, len(nodes), max)
	}
	return nodes, nil
}

// imageOnNode is the image of a pod that runs on node: there already, for a
// recorder to copy capsrec into when nothing else names one.
func (c *Client) imageOnNode(ctx context.Context, node string) string {
	pods := &corev1.PodList{}
	err := c.core.Get().Resource("pods").VersionedParams(&metav1.ListOptions{FieldSelector: "spec.nodeName=" + node + ",status.phase=Running"}, params).Do(ctx).Into(pods)
	if err != nil {
		return ""
	}
	for _, p := range pods.Items {
		for _, ctr := range p.Spec.Containers {
			if ctr.Image != "" {
				return ctr.Image
			}
		}
	}
	return ""
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Admits tells whether a pod of spec may be scheduled on n, by the rules
// that do not depend on other pods: the node's name, nodeSelector, required
// node affinity, taints (NoSchedule, NoExecute) and, but for a DaemonSet's
// pods, the node being cordoned.
func Admits(spec *corev1.PodSpec, n *corev1.Node, daemonSet bool) bool {
	if spec.NodeName != "" && spec.NodeName != n.Name {
		return false
	}
	if n.Spec.Unschedulable && !daemonSet {
		return false
	}
	if !labels.SelectorFromSet(spec.NodeSelector).Matches(labels.Set(n.Labels)) {
		return false
	}
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		if !slices.ContainsFunc(a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms,
			func(t corev1.NodeSelectorTerm) bool { return termMatches(t, n) }) {
			return false
		}
	}
	for i := range n.Spec.Taints {
		taint := &n.Spec.Taints[i]
		if taint.Effect == corev1.TaintEffectPreferNoSchedule {
			continue
		}
		if !slices.ContainsFunc(spec.Tolerations, func(t corev1.Toleration) bool { return t.ToleratesTaint(klog.Background(), taint, true) }) {
			return false
		}
	}
	return true
}

// termMatches: every expression of the term holds (an empty term matches nothing).
func termMatches(t corev1.NodeSelectorTerm, n *corev1.Node) bool {
	if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
		return false
	}
	for _, e := range t.MatchExpressions {
		if !requirementMatches(e, labels.Set(n.Labels)) {
			return false
		}
	}
	for _, e := range t.MatchFields {
		if e.Key != "metadata.name" || !requirementMatches(e, labels.Set{"metadata.name": n.Name}) {
			return false
		}
	}
	return true
}

var operators = map[corev1.NodeSelectorOperator]selection.Operator{
	corev1.NodeSelectorOpIn: selection.In, corev1.NodeSelectorOpNotIn: selection.NotIn,
	corev1.NodeSelectorOpExists: selection.Exists, corev1.NodeSelectorOpDoesNotExist: selection.DoesNotExist,
	corev1.NodeSelectorOpGt: selection.GreaterThan, corev1.NodeSelectorOpLt: selection.LessThan,
}

func requirementMatches(e corev1.NodeSelectorRequirement, set labels.Set) bool {
	op, ok := operators[e.Operator]
	if !ok {
		return false
	}
	r, err := labels.NewRequirement(e.Key, op, e.Values)
	return err == nil && r.Matches(set)
}

// CanRestart asks the API server whether we may patch w (a
// SelfSubjectAccessReview), before anything is started on a node.
func (c *Client) CanRestart(ctx context.Context, w Workload) error {
	review := fmt.Sprintf(`{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"resourceAttributes":{"namespace":%q,"verb":"patch","group":"apps","resource":%q,"name":%q}}}`,
		w.Namespace, w.Kind+"s", w.Name)
	raw, err := c.core.Post().AbsPath("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews").SetHeader("Content-Type", "application/json").
		Body([]byte(review)).DoRaw(ctx)
	if err != nil {
		return c.Explain(err, "asking whether we may restart "+w.String())
	}
	var answer struct {
		Status struct {
			Allowed bool   `json:"allowed"`
			Reason  string `json:"reason"`
		} `json:"status"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return fmt.Errorf("asking whether we may restart %s: %w", w, err)
	}
	if !answer.Status.Allowed {
		return fmt.Errorf("forbidden: we cannot patch %s, which --restart and --verify do (RBAC: verb patch on %ss.apps)", w, w.Kind)
	}
	return nil
}

// Restart does what kubectl rollout restart does: it stamps the pod template,
// so that the controller replaces every pod.
func (c *Client) Restart(ctx context.Context, w Workload, at time.Time) error {
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`, at.Format(time.RFC3339))
	err := c.apps.Patch(types.StrategicMergePatchType).Namespace(w.Namespace).Resource(w.Kind + "s").Name(w.Name).Body([]byte(patch)).Do(ctx).Error()
	if err != nil {
		return c.Explain(err, "restarting "+w.String())
	}
	return nil
}

// rolloutStatus is what WaitRollout reads of the three kinds' status.
type rolloutStatus struct {
	Metadata struct {
		Generation int64 `json:"generation"`
	} `json:"metadata"`
	Spec struct {
		Replicas *int32 `json:"replicas"`
	} `json:"spec"`
	Status struct {
		ObservedGeneration int64  `json:"observedGeneration"`
		Replicas           int32  `json:"replicas"`
		UpdatedReplicas    int32  `json:"updatedReplicas"`
		AvailableReplicas  int32  `json:"availableReplicas"`
		ReadyReplicas      int32  `json:"readyReplicas"`
		CurrentRevision    string `json:"currentRevision"`
		UpdateRevision     string `json:"updateRevision"`
		Desired            int32  `json:"desiredNumberScheduled"`
		UpdatedScheduled   int32  `json:"updatedNumberScheduled"`
		NumberAvailable    int32  `json:"numberAvailable"`
		Conditions         []struct {
			Type, Reason, Message string
		} `json:"conditions"`
	} `json:"status"`
}

// done says whether the rollout is complete, as kubectl rollout status does.
func (s rolloutStatus) done(kind string) (bool, error) {
	st := s.Status
	if st.ObservedGeneration < s.Metadata.Generation {
		return false, nil
	}
	want := int32(1)
	if s.Spec.Replicas != nil {
		want = *s.Spec.Replicas
	}
	switch kind {
	case "deployment":
		for _, c := range st.Conditions {
			if c.Type == "Progressing" && c.Reason == "ProgressDeadlineExceeded" {
				return false, fmt.Errorf("its progress deadline passed: %s", c.Message)
			}
		}
		return st.UpdatedReplicas == want && st.Replicas == want && st.AvailableReplicas == want, nil
	case "daemonset":
		return st.UpdatedScheduled == st.Desired && st.NumberAvailable == st.Desired, nil
	}
	return st.UpdatedReplicas == want && st.ReadyReplicas == want && st.CurrentRevision == st.UpdateRevision, nil
}

// stuckReasons are container states a rollout does not come out of by waiting.
var stuckReasons = []string{"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName",
	"CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}

// WaitRollout waits until w's new pods are all up, as kubectl rollout status
// does. A rollout that runs past timeout, or whose pods are stuck (an image
// that cannot be pulled, a crash loop), is an error that carries the pods'
// warning events.
func (c *Client) WaitRollout(ctx context.Context, w Workload, since time.Time, timeout time.Duration) error {
	return c.WaitRolloutPast(ctx, w, since, timeout, nil)
}

// rolloutStatus reads w's rollout status.
func (c *Client) rolloutStatus(ctx context.Context, w Workload) (*rolloutStatus, error) {
	raw, err := c.apps.Get().Namespace(w.Namespace).Resource(w.Kind + "s").Name(w.Name).DoRaw(ctx)
	if err != nil {
		return nil, c.Explain(err, w.String())
	}
	var s rolloutStatus
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", w, err)
	}
	return &s, nil
}

// WaitRolloutPast is WaitRollout when the pods named in past are on their
// way out (a roll back): their being stuck is why, not news.
func (c *Client) WaitRolloutPast(ctx context.Context, w Workload, since time.Time, timeout time.Duration, past []string) error {
	deadline := time.Now().Add(timeout)
	for {
		s, err := c.rolloutStatus(ctx, w)
		if err != nil {
			return err
		}
		done, err := s.done(w.Kind)
		if err == nil && !done {
			err = c.stuckPod(ctx, w, past)
		}
		if err == nil && !done && time.Now().After(deadline) {
			err = fmt.Errorf("not complete after %s", timeout)
		}
		if err != nil {
			return fmt.Errorf("the rollout of %s failed: %v%s", w, err, c.warnings(ctx, w, since))
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// WaitObserved waits until w's controller has seen its latest spec.
func (c *Client) WaitObserved(ctx context.Context, w Workload, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		s, err := c.rolloutStatus(ctx, w)
		if err != nil {
			return err
		}
		if s.Status.ObservedGeneration >= s.Metadata.Generation {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: its controller did not see its new spec within %s", w, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stuckPod is an error naming a pod of w whose container waits for a reason
// that waiting does not cure.
func (c *Client) stuckPod(ctx context.Context, w Workload, past []string) error {
	pods, err := c.listPods(ctx, w.Namespace, w.Selector.String())
	if err != nil {
		return nil
	}
	for _, p := range pods.Items {
		if slices.Contains(past, p.Name) {
			continue
		}
		for _, st := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
			if st.State.Waiting != nil && slices.Contains(stuckReasons, st.State.Waiting.Reason) {
				return fmt.Errorf("pod %s: container %s is %s", p.Name, st.Name, st.State.Waiting.Reason)
			}
		}
	}
	return nil
}

// warnings are the warning events of w's pods since the restart, one a line.
func (c *Client) warnings(ctx context.Context, w Workload, since time.Time) string {
	events := &corev1.EventList{}
	err := c.core.Get().Namespace(w.Namespace).Resource("events").
		VersionedParams(&metav1.ListOptions{FieldSelector: "involvedObject.kind=Pod,type=Warning"}, params).Do(ctx).Into(events)
	if err != nil {
		return ""
	}
	pods, err := c.listPods(ctx, w.Namespace, w.Selector.String())
	if err != nil {
		return ""
	}
	ours := map[string]bool{}
	for _, p := range pods.Items {
		ours[p.Name] = true
	}
	// One line per pod and reason (the last message, and how many times):
	// a crashing container repeats its probe failures.
	type key struct{ pod, reason string }
	var order []key
	seen := map[key]int32{}
	message := map[key]string{}
	for _, e := range events.Items {
		last := e.LastTimestamp.Time
		if last.IsZero() {
			last = e.EventTime.Time
		}
		if !ours[e.InvolvedObject.Name] || last.Before(since.Add(-time.Second)) {
			continue
		}
		k := key{e.InvolvedObject.Name, e.Reason}
		if _, ok := seen[k]; !ok {
			order = append(order, k)
		}
		seen[k] += max(e.Count, 1)
		message[k] = textsafe.OneLine(e.Message)
	}
	var lines []string
	for _, k := range order {
		times := ""
		if n := seen[k]; n > 1 {
			times = fmt.Sprintf(" (%d times)", n)
		}
		lines = append(lines, fmt.Sprintf("pod %s: %s%s: %s", k.pod, k.reason, times, message[k]))
	}
	if len(lines) == 0 {
		return ""
	}
	if len(lines) > 5 {
		lines = append(lines[len(lines)-5:], fmt.Sprintf("%d more (kubectl get events -n %s)", len(lines)-5, w.Namespace))
	}
	return "; its pods' warnings: " + strings.Join(lines, "; ")
}

// RunningPods are the names of w's pods that run now.
func (c *Client) RunningPods(ctx context.Context, w Workload) ([]string, error) {
	pods, err := c.listPods(ctx, w.Namespace, w.Selector.String())
	if err != nil {
		return nil, c.Explain(err, "listing the pods of "+w.String())
	}
	var names []string
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			names = append(names, p.Name)
		}
	}
	return names, nil
}
