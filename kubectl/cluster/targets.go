package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// RunningPod finds a pod that runs, and checks the container asked for.
func (c *Client) RunningPod(ctx context.Context, ns, name, container string) (*corev1.Pod, error) {
	p := &corev1.Pod{}
	err := c.core.Get().Namespace(ns).Resource("pods").Name(name).Do(ctx).Into(p)
	if err != nil {
		return nil, c.Explain(err, fmt.Sprintf("pod %s/%s", ns, name))
	}
	if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName == "" {
		return nil, fmt.Errorf("pod %s/%s is %s, not Running: there is nothing to record yet", ns, name, p.Status.Phase)
	}
	if container != "" && !slices.ContainsFunc(p.Spec.Containers, func(c corev1.Container) bool { return c.Name == container }) {
		var names []string
		for _, ct := range p.Spec.Containers {
			names = append(names, ct.Name)
		}
		return nil, fmt.Errorf("pod %s/%s has no container %q (it has %s)", ns, name, container, strings.Join(names, ", "))
	}
	return p, nil
}

// Workload is what `profile` records: pods of one namespace matching a selector.
type Workload struct {
	Kind, Name, Namespace string // Kind is "" for a bare -l selector
	Selector              labels.Selector
	// Template is the workload's pod template; nil for a bare -l selector.
	Template *corev1.PodTemplateSpec
}

func (w Workload) String() string {
	if w.Kind == "" {
		return fmt.Sprintf("pods matching %s in namespace %s", w.Selector, w.Namespace)
	}
	return fmt.Sprintf("%s/%s in namespace %s", w.Kind, w.Name, w.Namespace)
}

// ResolveWorkload reads deploy/NAME, ds/NAME, sts/NAME or rs/NAME (kubectl's
// short or long kind names), or takes selector as is.
func (c *Client) ResolveWorkload(ctx context.Context, ns, ref, selector string) (Workload, error) {
	w := Workload{Namespace: ns}
	if ref == "" {
		sel, err := labels.Parse(selector)
		if err != nil {
			return w, fmt.Errorf("-l %q: %w", selector, err)
		}
		if sel.Empty() {
			return w, fmt.Errorf("-l %q selects every pod: name a workload or a narrower selector", selector)
		}
		w.Selector = sel
		return w, nil
	}
	kind, name, ok := strings.Cut(ref, "/")
	if !ok || name == "" {
		return w, fmt.Errorf("%q: want KIND/NAME (deploy/web, ds/agent, sts/db, rs/web-5d8f) or -l SELECTOR", ref)
	}
	w.Kind = kindNames[strings.ToLower(kind)]
	if w.Kind == "" {
		return w, fmt.Errorf("%q: kind %q is not deploy, ds, sts or rs", ref, kind)
	}
	// The four kinds keep their selector at spec.selector: one read for all.
	raw, err := c.apps.Get().Namespace(ns).Resource(w.Kind + "s").Name(name).DoRaw(ctx)
	var obj struct {
		Spec struct {
			Selector *metav1.LabelSelector  `json:"selector"`
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err == nil {
		err = json.Unmarshal(raw, &obj)
	}
	ls := obj.Spec.Selector
	w.Name, w.Template = name, &obj.Spec.Template
	if err != nil {
		return w, c.Explain(err, fmt.Sprintf("%s %s/%s", w.Kind, ns, name))
	}
	if w.Selector, err = metav1.LabelSelectorAsSelector(ls); err != nil || w.Selector.Empty() {
		return w, fmt.Errorf("%s %s/%s: its selector %v selects no pods reliably", w.Kind, ns, name, ls)
	}
	return w, nil
}

// kindNames are kubectl's spellings of the workload kinds profile takes.
var kindNames = map[string]string{
	"deploy": "deployment", "deployment": "deployment", "deployments": "deployment", "deployment.apps": "deployment",
	"ds": "daemonset", "daemonset": "daemonset", "daemonsets": "daemonset", "daemonset.apps": "daemonset",
	"sts": "statefulset", "statefulset": "statefulset", "statefulsets": "statefulset", "statefulset.apps": "statefulset",
	"rs": "replicaset", "replicaset": "replicaset", "replicasets": "replicaset", "replicaset.apps": "replicaset",
}

// NodePods are a workload's running pods on one node, and the image of the
// first one's first container: already on the node, to copy capsrec into.
type NodePods struct {
	Pods  []string
	Image string
}

// NodesOf lists the nodes that run the workload's pods now, with their running pods.
func (c *Client) NodesOf(ctx context.Context, w Workload) (map[string]*NodePods, error) {
	pods, err := c.listPods(ctx, w.Namespace, w.Selector.String())
	if err != nil {
		return nil, c.Explain(err, "listing the pods of "+w.String())
	}
	nodes := map[string]*NodePods{}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName == "" {
			continue
		}
		n := nodes[p.Spec.NodeName]
		if n == nil {
			n = &NodePods{Image: p.Spec.Containers[0].Image}
			nodes[p.Spec.NodeName] = n
		}
		n.Pods = append(n.Pods, p.Name)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%s: no pod runs (%d found): there is nothing to record; --wait records pods that start", w, len(pods.Items))
	}
	return nodes, nil
}

// NodeFacts are what the node pod needs to know of its node.
type NodeFacts struct {
	OS, Arch        string
	Kernel          string // uname -r
	RuntimeEndpoint string // as read: unix:///PATH or PATH
	EndpointFrom    string // where RuntimeEndpoint was read
}

// defaultRuntimeEndpoint is kubelet's default since 1.27.
const defaultRuntimeEndpoint = "unix:///run/containerd/containerd.sock"

// Node reads a node's OS and architecture, and its CRI socket from the
// kubelet's configuration (nodes/proxy configz), the kubeadm annotation, or
// the default, in that order.
func (c *Client) Node(ctx context.Context, name string) (NodeFacts, error) {
	n := &corev1.Node{}
	if err := c.core.Get().Resource("nodes").Name(name).Do(ctx).Into(n); err != nil {
		return NodeFacts{}, c.Explain(err, "node "+name)
	}
	f := NodeFacts{OS: n.Status.NodeInfo.OperatingSystem, Arch: n.Status.NodeInfo.Architecture, Kernel: n.Status.NodeInfo.KernelVersion, RuntimeEndpoint: defaultRuntimeEndpoint, EndpointFrom: "the default"}
	if ep := kubeletEndpoint(ctx, c, name); ep != "" {
		f.RuntimeEndpoint, f.EndpointFrom = ep, "the kubelet's configuration"
	} else if ep := n.Annotations["kubeadm.alpha.kubernetes.io/cri-socket"]; ep != "" {
		f.RuntimeEndpoint, f.EndpointFrom = ep, "the kubeadm annotation"
	}
	return f, nil
}

func kubeletEndpoint(ctx context.Context, c *Client, node string) string {
	raw, err := c.core.Get().Resource("nodes").Name(node).SubResource("proxy", "configz").DoRaw(ctx)
	if err != nil {
		return ""
	}
	var cz struct {
		KubeletConfig struct {
			ContainerRuntimeEndpoint string `json:"containerRuntimeEndpoint"`
		} `json:"kubeletconfig"`
	}
	if json.Unmarshal(raw, &cz) != nil {
		return ""
	}
	return cz.KubeletConfig.ContainerRuntimeEndpoint
}

// KernelBefore tells whether a kernel release (5.10.0-33-amd64) is older than major.minor.
func KernelBefore(release string, major, minor int) bool {
	var ma, mi int
	if n, _ := fmt.Sscanf(release, "%d.%d", &ma, &mi); n != 2 {
		return false
	}
	return ma < major || ma == major && mi < minor
}

func (c *Client) listPods(ctx context.Context, ns, selector string) (*corev1.PodList, error) {
	pods := &corev1.PodList{}
	err := c.core.Get().Namespace(ns).Resource("pods").VersionedParams(&metav1.ListOptions{LabelSelector: selector}, params).Do(ctx).Into(pods)
	return pods, err
}
