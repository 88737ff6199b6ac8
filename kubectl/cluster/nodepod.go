package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/utils/ptr"

	"github.com/capsrec/capsrec/internal/textsafe"
	"github.com/capsrec/capsrec/kubectl/nodepod"
)

// Labels every node pod carries: `kubectl get pods -A -l app.kubernetes.io/name=capsrec` finds them.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelComponent = "app.kubernetes.io/component"
	AppName        = "capsrec"
	component      = "node-recorder"
	containerName  = "recorder"
	// copyDir is an emptyDir in copy mode: the local binary is written there.
	copyDir = "/.capsrec"
)

// NodePodSpec is what a recorder pod on one node runs.
type NodePodSpec struct {
	Namespace string // of the Job and its pod
	Node      string
	// Image holds capsrec at Binary. In copy mode (Copy set), Image is any
	// image with sh, cat, chmod, mv and sleep, and the local binary is copied in.
	Image, Binary string
	Copy          bool
	// CopyFrom is the local capsrec copied in, for the node's platform (not in the Job).
	CopyFrom   string
	PullPolicy corev1.PullPolicy
	// RuntimeEndpoint is the node's CRI socket (unix:///...): its folder is
	// mounted at the same path.
	RuntimeEndpoint string
	Args            []string // capsrec's arguments: record ...
	// OldKernel is a node before Linux 5.11, where BPF maps count against RLIMIT_MEMLOCK.
	OldKernel bool
	// Deadline bounds the Job, so that it ends even when the plugin is killed
	// before it attaches; once attached, the plugin's end closes stdin.
	Deadline time.Duration
}

// securityContext is the fewest privileges that record, as deploy/'s
// DaemonSet has them: BPF and PERFMON load and attach the programs, SYSLOG
// reads kallsyms, SYS_PTRACE the /proc of other processes; before Linux 5.11
// SYS_RESOURCE lifts RLIMIT_MEMLOCK. The runtime's default seccomp profile
// refuses bpf() and perf_event_open().
func (s NodePodSpec) securityContext() *corev1.SecurityContext {
	caps := []corev1.Capability{"BPF", "PERFMON", "SYSLOG", "SYS_PTRACE"}
	if s.OldKernel {
		caps = append(caps, "SYS_RESOURCE")
	}
	return &corev1.SecurityContext{
		RunAsUser:      ptr.To[int64](0),
		Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: caps},
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined},
	}
}

// passedEnv are the knobs of ours that reach the node's capsrec: the tests
// check every call-site walk there too.
var passedEnv = []string{"CAPSREC_VERIFY_CALL_SITES", "CAPSREC_DEBUG_WALK"}

func (s NodePodSpec) env() []corev1.EnvVar {
	env := []corev1.EnvVar{{Name: nodepod.Env, Value: "1"}, {Name: "NODE_NAME", Value: s.Node}}
	for _, k := range passedEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, corev1.EnvVar{Name: k, Value: v})
		}
	}
	return env
}

// NodePod is a started recorder Job and its pod.
type NodePod struct {
	c    *Client
	spec NodePodSpec
	Job  string
	Pod  string
}

func (s NodePodSpec) job() *batchv1.Job {
	hostPath := func(name, p string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: p, Type: ptr.To(corev1.HostPathDirectory)}}}
	}
	sock := strings.TrimPrefix(s.RuntimeEndpoint, "unix://")
	volumes := []corev1.Volume{hostPath("runtime", path.Dir(sock)), hostPath("cgroup", "/sys/fs/cgroup")}
	mounts := []corev1.VolumeMount{
		{Name: "runtime", MountPath: path.Dir(sock)},
		// The host's hierarchy, not the container's view: cgroup paths in /proc are the host's.
		{Name: "cgroup", MountPath: "/sys/fs/cgroup"},
	}
	command := append([]string{s.Binary}, s.Args...)
	if s.Copy {
		volumes = append(volumes, corev1.Volume{Name: "bin", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "bin", MountPath: copyDir})
		// Wait for the copy, at most as long as the recorder waits for its start line.
		wait := `i=0; until [ -x ` + copyDir + `/capsrec ]; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.2; done; exec ` + copyDir + `/capsrec "$@"`
		command = append([]string{"sh", "-c", wait, "capsrec"}, s.Args...)
	}
	labels := map[string]string{LabelName: AppName, LabelComponent: component}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "capsrec-", Namespace: s.Namespace, Labels: labels},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](0),
			ActiveDeadlineSeconds:   ptr.To(int64(s.Deadline.Seconds())),
			TTLSecondsAfterFinished: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeName:                      s.Node,
					RestartPolicy:                 corev1.RestartPolicyNever,
					HostPID:                       true, // the node's processes, for /proc and the process cache
					HostNetwork:                   true, // runs on nodes whose pod network is down too
					TerminationGracePeriodSeconds: ptr.To[int64](5),
					Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					AutomountServiceAccountToken:  ptr.To(false),
					Volumes:                       volumes,
					Containers: []corev1.Container{{
						Name:            containerName,
						Image:           s.Image,
						ImagePullPolicy: s.PullPolicy,
						Command:         command,
						Env:             s.env(),
						Stdin:           true,
						StdinOnce:       true,
						SecurityContext: s.securityContext(),
						VolumeMounts:    mounts,
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
						},
					}},
				},
			},
		},
	}
}

// StartNodePod creates the Job and waits until its pod runs. On error nothing is left.
func (c *Client) StartNodePod(ctx context.Context, s NodePodSpec, ready time.Duration) (_ *NodePod, err error) {
	job := &batchv1.Job{}
	if err := c.batch.Post().Namespace(s.Namespace).Resource("jobs").Body(s.job()).Do(ctx).Into(job); err != nil {
		return nil, c.Explain(err, fmt.Sprintf("creating the recorder job on node %s in namespace %s", s.Node, s.Namespace))
	}
	np := &NodePod{c: c, spec: s, Job: job.Name}
	defer func() {
		if err != nil {
			np.Delete()
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, ready)
	defer cancel()
	if err := np.waitRunning(wctx, job); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, fmt.Errorf("the recorder pod on node %s did not run within %s%s (see --ready-timeout)", s.Node, ready, np.lastState(ctx))
		}
		return nil, err
	}
	return np, nil
}

func (np *NodePod) waitRunning(ctx context.Context, job *batchv1.Job) error {
	sel := "batch.kubernetes.io/controller-uid=" + string(job.UID)
	for {
		pods, err := np.c.listPods(ctx, np.spec.Namespace, sel)
		if err != nil {
			return np.c.Explain(err, "waiting for the recorder pod")
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			np.Pod = p.Name
			if err := podFailed(p, np.spec); err != nil {
				return err
			}
			if p.Status.Phase == corev1.PodRunning {
				return nil
			}
		}
		if len(pods.Items) == 0 {
			if err := np.jobFailed(ctx); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// podFailed tells the reasons a recorder pod will never run.
func podFailed(p *corev1.Pod, s NodePodSpec) error {
	for _, st := range p.Status.ContainerStatuses {
		if w := st.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName":
				return fmt.Errorf("node %s cannot pull image %s (%s: %s): push it to a registry the node reaches, import it on the node (ctr -n k8s.io images import), or pass another --image", s.Node, s.Image, w.Reason, textsafe.OneLine(w.Message))
			case "CreateContainerError", "CreateContainerConfigError", "RunContainerError":
				return fmt.Errorf("node %s cannot start the recorder container (%s: %s)", s.Node, w.Reason, textsafe.OneLine(w.Message))
			}
		}
		if t := st.State.Terminated; t != nil {
			return fmt.Errorf("the recorder on node %s exited at start (%s, code %d): %s", s.Node, t.Reason, t.ExitCode, textsafe.OneLine(t.Message))
		}
	}
	if p.Status.Phase == corev1.PodFailed {
		return fmt.Errorf("the recorder pod on node %s failed: %s %s", s.Node, p.Status.Reason, textsafe.OneLine(p.Status.Message))
	}
	return nil
}

// jobFailed reads why the Job has no pod: the API refused it (admission, pod security).
func (np *NodePod) jobFailed(ctx context.Context) error {
	evs := &corev1.EventList{}
	err := np.c.core.Get().Namespace(np.spec.Namespace).Resource("events").VersionedParams(&metav1.ListOptions{
		FieldSelector: fields.AndSelectors(fields.OneTermEqualSelector("involvedObject.name", np.Job), fields.OneTermEqualSelector("involvedObject.kind", "Job")).String(),
	}, params).Do(ctx).Into(evs)
	if err != nil {
		return nil
	}
	for _, e := range evs.Items {
		if e.Reason == "FailedCreate" {
			return fmt.Errorf("the recorder pod on node %s was refused: %s (--node-pod-namespace must admit a hostPID pod with the BPF capabilities and as many pods)", np.spec.Node, textsafe.OneLine(e.Message))
		}
	}
	return nil
}

// lastState says where a pod that never ran got stuck.
func (np *NodePod) lastState(ctx context.Context) string {
	if np.Pod == "" {
		return ": no pod was created"
	}
	p := &corev1.Pod{}
	if err := np.c.core.Get().Namespace(np.spec.Namespace).Resource("pods").Name(np.Pod).Do(ctx).Into(p); err != nil {
		return ""
	}
	for _, st := range p.Status.ContainerStatuses {
		if w := st.State.Waiting; w != nil {
			return fmt.Sprintf(": it waits in %s %s", w.Reason, textsafe.OneLine(w.Message))
		}
	}
	for _, cond := range p.Status.Conditions {
		if cond.Status != corev1.ConditionTrue && cond.Message != "" {
			return fmt.Sprintf(": %s %s", cond.Reason, textsafe.OneLine(cond.Message))
		}
	}
	return fmt.Sprintf(": it is %s", p.Status.Phase)
}

// Delete removes the Job and its pod now; the Job's TTL and deadline are for
// when this process cannot.
func (np *NodePod) Delete() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bg := metav1.DeletePropagationBackground
	_ = np.c.batch.Delete().Namespace(np.spec.Namespace).Resource("jobs").Name(np.Job).Body(&metav1.DeleteOptions{PropagationPolicy: &bg}).Do(ctx).Error()
	if np.Pod != "" {
		_ = np.c.core.Delete().Namespace(np.spec.Namespace).Resource("pods").Name(np.Pod).Body(&metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}).Do(ctx).Error()
	}
}

// CopyBinary writes the local binary into the pod (copy mode).
func (np *NodePod) CopyBinary(ctx context.Context, bin io.Reader) error {
	script := `cat > ` + copyDir + `/capsrec.part && chmod 755 ` + copyDir + `/capsrec.part && mv ` + copyDir + `/capsrec.part ` + copyDir + `/capsrec`
	var stderr strings.Builder
	err := np.stream(ctx, "exec", &corev1.PodExecOptions{Container: containerName, Command: []string{"sh", "-c", script}, Stdin: true, Stderr: true},
		remotecommand.StreamOptions{Stdin: bin, Stderr: &stderr})
	if err != nil {
		return fmt.Errorf("copying capsrec into the recorder pod on node %s (image %s needs sh, cat, chmod, mv and sleep; or pass --image): %w %s", np.spec.Node, np.spec.Image, err, textsafe.OneLine(stderr.String()))
	}
	return nil
}

// Attach starts the recorder and streams its stdout and stderr until it ends.
// Closing stdin (the caller's pipe) stops it as Ctrl-C stops a local record.
func (np *NodePod) Attach(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	return np.stream(ctx, "attach", &corev1.PodAttachOptions{Container: containerName, Stdin: true, Stdout: true, Stderr: true},
		remotecommand.StreamOptions{Stdin: nodepod.Start(stdin), Stdout: stdout, Stderr: stderr})
}

func (np *NodePod) stream(ctx context.Context, sub string, opts runtime.Object, so remotecommand.StreamOptions) error {
	req := np.c.core.Post().Resource("pods").Namespace(np.spec.Namespace).Name(np.Pod).SubResource(sub).VersionedParams(opts, params)
	spdy, err := remotecommand.NewSPDYExecutor(np.c.Config, "POST", req.URL())
	if err != nil {
		return err
	}
	ws, err := remotecommand.NewWebSocketExecutor(np.c.Config, "GET", req.URL().String())
	if err != nil {
		return err
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return err
	}
	return np.c.Explain(ex.StreamWithContext(ctx, so), sub+" to pod "+np.Pod)
}
