// Package kubectl is `kubectl capsrec`: record and profile run capsrec on the
// nodes of a cluster, in pods it starts there, and gather what they record.
package kubectl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	corev1 "k8s.io/api/core/v1"

	capsrec "github.com/capsrec/capsrec/cli"
	"github.com/capsrec/capsrec/enrich"
	"github.com/capsrec/capsrec/kubectl/cluster"
)

// PluginName is the binary's name when kubectl runs it as a plugin (krew, or a
// symlink on PATH): `kubectl capsrec record POD`.
const PluginName = "kubectl-capsrec"

// kubeFlags are kubectl's connection flags, as its plugins take them.
var kubeFlags = []cli.Flag{
	&cli.StringFlag{Name: "kubeconfig", Usage: "the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)"},
	&cli.StringFlag{Name: "context", Usage: "the kubeconfig context to use"},
	&cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Usage: "the namespace of the pod or workload (default: the context's)"},
}

// nodePodFlags choose how the recorder runs on a node.
var nodePodFlags = []cli.Flag{
	&cli.StringFlag{Name: "image", EnvVars: []string{"CAPSREC_IMAGE"}, Usage: "an image holding capsrec at /capsrec (make image); default: copy this binary into the pod's own image"},
	binaryForFlag,
	&cli.StringFlag{Name: "copy-image", Usage: "without --image: the image to copy this binary into, which needs sh, cat, chmod, mv and sleep (default: the recorded pod's image, already on its node)"},
	&cli.StringFlag{Name: "image-pull-policy", Value: string(corev1.PullIfNotPresent), Usage: "Always, IfNotPresent or Never"},
	&cli.StringFlag{Name: "node-pod-namespace", Usage: "where the recorder pods run; its pod security must admit hostPID pods with the BPF capabilities (default: the recorded pod's namespace)"},
	&cli.StringFlag{Name: "runtime-endpoint", Usage: "the node's CRI socket (default: read from the kubelet's configuration)"},
	&cli.DurationFlag{Name: "ready-timeout", Value: 2 * time.Minute, Usage: "how long a recorder pod may take to run"},
	&cli.DurationFlag{Name: "pod-deadline", Usage: "the recorder pod ends after this long even if kubectl capsrec is killed", DefaultText: "--duration + --ready-timeout + 5m; 24h without --duration"},
}

// Run runs the kubectl plugin with args (os.Args).
func Run(args []string) error {
	app := &cli.App{
		Name:            "kubectl capsrec",
		Usage:           "record the capability checks of a pod, or profile a workload on every node it runs on, from anywhere kubectl works",
		Version:         capsrec.Version,
		Commands:        []*cli.Command{kubectlRecordCommand(), kubectlProfileCommand()},
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {},
		OnUsageError:    capsrec.UsageError,
	}
	capsrec.UsageErrorsOnOneLine(app.Commands)
	capsrec.FitHelp(app.Commands, kubeFlags)
	args = sinkKubeFlags(args, app.Commands)
	if err := capsrec.UnknownCommand(args, app.Commands, kubeFlags); err != nil {
		return err
	}
	return app.Run(capsrec.FlagsFirst(args, app.Commands))
}

// sinkKubeFlags moves kubectl's flags written before the subcommand
// (kubectl capsrec --context prod record web) to after it, where they are defined.
func sinkKubeFlags(args []string, commands []*cli.Command) []string {
	takesValue := capsrec.FlagValues(kubeFlags)
	var moved []string
	for i := 1; i < len(args); i++ {
		name, _, hasValue := strings.Cut(args[i], "=")
		value, ok := takesValue[name]
		if !ok {
			if i == 1+len(moved) && slices.ContainsFunc(commands, func(c *cli.Command) bool { return c.HasName(args[i]) }) {
				out := append([]string{args[0], args[i]}, moved...)
				return append(out, args[i+1:]...)
			}
			return args
		}
		moved = append(moved, args[i])
		if value && !hasValue && i+1 < len(args) {
			moved = append(moved, args[i+1])
			i++
		}
	}
	return args
}

// pluginSession is what both plugin commands share: the cluster and how node pods run.
type pluginSession struct {
	c          *cli.Context
	client     *cluster.Client
	namespace  string // of the pod or workload
	podNS      string // of the node pods
	ready      time.Duration
	deadline   time.Duration
	pullPolicy corev1.PullPolicy
	binaries   *binaries // copy mode: which capsrec goes to which platform
}

func newPluginSession(ctx context.Context, c *cli.Context, duration time.Duration) (*pluginSession, error) {
	s := &pluginSession{c: c, ready: c.Duration("ready-timeout"), pullPolicy: corev1.PullPolicy(c.String("image-pull-policy"))}
	switch s.pullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		return nil, fmt.Errorf("--image-pull-policy %q: want Always, IfNotPresent or Never", s.pullPolicy)
	}
	if s.ready <= 0 {
		return nil, errors.New("--ready-timeout: want more than 0")
	}
	if s.deadline = c.Duration("pod-deadline"); s.deadline <= 0 {
		s.deadline = 24 * time.Hour
		if duration > 0 {
			s.deadline = duration + s.ready + 5*time.Minute
		}
	}
	var err error
	if s.binaries, err = newBinaries(c.StringSlice("binary-for")); err != nil {
		return nil, err
	}
	s.client, err = cluster.Connect(ctx, cluster.ClientFlags{Kubeconfig: c.String("kubeconfig"), Context: c.String("context"), Namespace: c.String("namespace")})
	if err != nil {
		return nil, err
	}
	s.namespace = s.client.Namespace
	if s.podNS = c.String("node-pod-namespace"); s.podNS == "" {
		s.podNS = s.namespace
	}
	return s, nil
}

// nodePodSpec says how capsrec runs on node: from --image, or copied into
// fallbackImage (an image already on the node): this binary, or the one given
// or found for the node's platform.
func (s *pluginSession) nodePodSpec(ctx context.Context, node, fallbackImage string, args []string) (cluster.NodePodSpec, error) {
	facts, err := s.client.Node(ctx, node)
	if err != nil {
		return cluster.NodePodSpec{}, err
	}
	spec := cluster.NodePodSpec{Namespace: s.podNS, Node: node, PullPolicy: s.pullPolicy, Deadline: s.deadline,
		OldKernel: cluster.KernelBefore(facts.Kernel, 5, 11)}
	ep, from := facts.RuntimeEndpoint, facts.EndpointFrom
	if flag := s.c.String("runtime-endpoint"); flag != "" {
		ep, from = flag, "--runtime-endpoint"
	}
	sock, ok := enrich.SocketPath(ep)
	if !ok || !filepath.IsAbs(sock) {
		return spec, fmt.Errorf("node %s: runtime endpoint %q (from %s) is not a unix socket path (see --runtime-endpoint)", node, ep, from)
	}
	spec.RuntimeEndpoint = "unix://" + sock
	spec.Args = append([]string{"--runtime-endpoint", spec.RuntimeEndpoint}, args...)
	if img := s.c.String("image"); img != "" {
		spec.Image, spec.Binary = img, "/capsrec"
		return spec, nil
	}
	if spec.CopyFrom, err = s.binaries.forPlatform(node, facts.OS+"/"+facts.Arch); err != nil {
		return spec, err
	}
	spec.Copy, spec.Image = true, fallbackImage
	if img := s.c.String("copy-image"); img != "" {
		spec.Image = img
	}
	return spec, nil
}

// startRecorder starts a recorder pod on node running capsrec with args:
// from --image, or copied into fallbackImage. The caller deletes it.
func (s *pluginSession) startRecorder(ctx context.Context, node, fallbackImage string, args []string) (*cluster.NodePod, error) {
	spec, err := s.nodePodSpec(ctx, node, fallbackImage, args)
	if err != nil {
		return nil, err
	}
	return s.startNodePod(ctx, spec)
}

// startNodePod creates the pod and, in copy mode, copies this binary in.
func (s *pluginSession) startNodePod(ctx context.Context, spec cluster.NodePodSpec) (*cluster.NodePod, error) {
	np, err := s.client.StartNodePod(ctx, spec, s.ready)
	if err != nil {
		return nil, err
	}
	if !spec.Copy {
		return np, nil
	}
	f, err := os.Open(spec.CopyFrom)
	if err == nil {
		defer f.Close()
		err = np.CopyBinary(ctx, f)
	}
	if err != nil {
		np.Delete()
		return nil, fmt.Errorf("copying %s to node %s: %w", spec.CopyFrom, spec.Node, err)
	}
	return np, nil
}

// forwardFlags gives the record flags set on the command line back as
// arguments for the capsrec in the node pod.
func forwardFlags(c *cli.Context, flags []cli.Flag) []string {
	var out []string
	for _, f := range flags {
		name := f.Names()[0]
		if !c.IsSet(name) {
			continue
		}
		switch f.(type) {
		case *cli.StringSliceFlag:
			for _, v := range c.StringSlice(name) {
				out = append(out, "--"+name+"="+v)
			}
		case *cli.IntSliceFlag:
			for _, v := range c.IntSlice(name) {
				out = append(out, "--"+name+"="+strconv.Itoa(v))
			}
		case *cli.BoolFlag:
			out = append(out, "--"+name+"="+strconv.FormatBool(c.Bool(name)))
		case *cli.IntFlag:
			out = append(out, "--"+name+"="+strconv.Itoa(c.Int(name)))
		case *cli.DurationFlag:
			out = append(out, "--"+name+"="+c.Duration(name).String())
		default:
			out = append(out, "--"+name+"="+c.String(name))
		}
	}
	return out
}

// flagsExcept is flags without the named ones.
func flagsExcept(flags []cli.Flag, names ...string) []cli.Flag {
	var out []cli.Flag
outer:
	for _, f := range flags {
		for _, n := range names {
			if f.Names()[0] == n {
				continue outer
			}
		}
		out = append(out, f)
	}
	return out
}
