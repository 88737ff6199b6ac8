// Package cluster runs capsrec on the nodes of a Kubernetes cluster through
// its API: it finds where pods run, starts a short-lived privileged recorder
// pod on those nodes and streams its output back. It schedules nothing itself
// beyond those pods, which it deletes on every exit path.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/capsrec/capsrec/internal/textsafe"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ClientFlags are kubectl's connection flags.
type ClientFlags struct {
	Kubeconfig, Context, Namespace string
}

// scheme knows the few kinds the plugin reads and writes. Not client-go's
// kubernetes clientset: it links every API group into the binary, which every
// capsrec command then pays for at start (RSS and size, about doubled).
var (
	scheme = runtime.NewScheme()
	codecs = serializer.NewCodecFactory(scheme)
	params = runtime.NewParameterCodec(scheme)
)

func init() {
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, batchv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
}

// Client is a connection to one cluster, with the namespace kubectl would use.
type Client struct {
	core, batch, apps rest.Interface
	Config            *rest.Config
	Namespace         string
	Server            string
}

// noKubeconfig says why no cluster is configured: client-go skips the files of
// $KUBECONFIG that do not exist, so name them.
func noKubeconfig() error {
	var missing []string
	for _, path := range filepath.SplitList(os.Getenv("KUBECONFIG")) {
		if _, err := os.Stat(path); path != "" && err != nil {
			missing = append(missing, path)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no kubeconfig: KUBECONFIG names %s, which does not exist (or cannot be read)", textsafe.Visible(strings.Join(missing, ", ")))
	}
	return errors.New("no kubeconfig: set KUBECONFIG or pass --kubeconfig (as for kubectl)")
}

// Connect reads the kubeconfig as kubectl does (client-go's loading rules:
// --kubeconfig, else $KUBECONFIG, else ~/.kube/config; --context; in-cluster)
// and checks that the API server answers.
func Connect(ctx context.Context, f ClientFlags) (*Client, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: f.Context}
	overrides.Context.Namespace = f.Namespace
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	// client-go falls back to localhost:8080 with no configuration at all: say so instead.
	if raw, err := cc.RawConfig(); err == nil && len(raw.Clusters) == 0 && os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return nil, noKubeconfig()
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, noKubeconfig()
		}
		return nil, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig's namespace: %w", err)
	}
	cfg.UserAgent = "kubectl-capsrec"
	c := &Client{Config: cfg, Namespace: ns, Server: cfg.Host}
	for _, g := range []struct {
		client  *rest.Interface
		gv      schema.GroupVersion
		apiPath string
	}{
		{&c.core, corev1.SchemeGroupVersion, "/api"},
		{&c.batch, batchv1.SchemeGroupVersion, "/apis"},
		{&c.apps, schema.GroupVersion{Group: "apps", Version: "v1"}, "/apis"},
	} {
		gc := rest.CopyConfig(cfg)
		gc.GroupVersion, gc.APIPath, gc.NegotiatedSerializer = &g.gv, g.apiPath, codecs.WithoutConversion()
		if *g.client, err = rest.RESTClientFor(gc); err != nil {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
	}
	if err := c.core.Get().AbsPath("/version").Do(ctx).Error(); err != nil {
		return nil, c.Explain(err, "asking the API server for its version")
	}
	return c, nil
}

// Explain turns an API error into one line that names what failed and what to do.
func (c *Client) Explain(err error, doing string) error {
	var nerr net.Error
	var uerr *url.Error
	switch {
	case err == nil:
		return nil
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: forbidden (%s): kubectl capsrec needs to get pods and nodes, create, get and delete jobs, and attach to and exec into pods in the namespace of its node pods (see docs/kubectl.md)", doing, statusMessage(err))
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: the API server at %s refused the kubeconfig's credentials (%s)", doing, c.Server, statusMessage(err))
	case errors.As(err, &uerr), errors.As(err, &nerr), errors.Is(err, context.DeadlineExceeded):
		// The cause stays in the chain: a caller's own deadline is told from the server's silence.
		return explained{fmt.Sprintf("%s: cannot reach the API server at %s: %v (check --context and --kubeconfig)", doing, c.Server, rootCause(err)), err}
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// explained is an error said in other words, its cause kept for errors.Is.
type explained struct {
	msg   string
	cause error
}

func (e explained) Error() string { return e.msg }
func (e explained) Unwrap() error { return e.cause }

func statusMessage(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) {
		return se.Status().Message
	}
	return err.Error()
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}
