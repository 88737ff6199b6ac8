package cluster

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Admits: the scheduling rules that do not depend on other pods.
func TestAdmits(t *testing.T) {
	node := func(labels map[string]string, taints ...corev1.Taint) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: labels}, Spec: corev1.NodeSpec{Taints: taints}}
	}
	arm := node(map[string]string{"kubernetes.io/arch": "arm64", "zone": "a"})
	tainted := node(nil, corev1.Taint{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule})
	prefer := node(nil, corev1.Taint{Key: "soft", Effect: corev1.TaintEffectPreferNoSchedule})
	affinity := func(op corev1.NodeSelectorOperator, values ...string) *corev1.Affinity {
		return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: op, Values: values}}}}}}}
	}
	for _, c := range []struct {
		name string
		spec corev1.PodSpec
		n    *corev1.Node
		ds   bool
		want bool
	}{
		{"no rules", corev1.PodSpec{}, arm, false, true},
		{"nodeSelector matches", corev1.PodSpec{NodeSelector: map[string]string{"kubernetes.io/arch": "arm64"}}, arm, false, true},
		{"nodeSelector does not", corev1.PodSpec{NodeSelector: map[string]string{"kubernetes.io/arch": "amd64"}}, arm, false, false},
		{"affinity In", corev1.PodSpec{Affinity: affinity(corev1.NodeSelectorOpIn, "a", "b")}, arm, false, true},
		{"affinity NotIn", corev1.PodSpec{Affinity: affinity(corev1.NodeSelectorOpNotIn, "a")}, arm, false, false},
		{"affinity DoesNotExist", corev1.PodSpec{Affinity: affinity(corev1.NodeSelectorOpDoesNotExist)}, arm, false, false},
		{"a NoSchedule taint not tolerated", corev1.PodSpec{}, tainted, false, false},
		{"tolerated", corev1.PodSpec{Tolerations: []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu"}}}, tainted, false, true},
		{"tolerated by Exists", corev1.PodSpec{Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}}, tainted, false, true},
		{"PreferNoSchedule admits", corev1.PodSpec{}, prefer, false, true},
		{"nodeName elsewhere", corev1.PodSpec{NodeName: "n2"}, arm, false, false},
	} {
		if got := Admits(&c.spec, c.n, c.ds); got != c.want {
			t.Errorf("%s: Admits = %v, want %v", c.name, got, c.want)
		}
	}
	cordoned := node(nil)
	cordoned.Spec.Unschedulable = true
	if Admits(&corev1.PodSpec{}, cordoned, false) || !Admits(&corev1.PodSpec{}, cordoned, true) {
		t.Error("a cordoned node admits a DaemonSet's pods alone")
	}
}
