// Package kubeplugin runs capsrec on the nodes of a Kubernetes cluster through
// its API: it finds where pods run, starts a short-lived privileged recorder
// pod on those nodes and streams its output back. It schedules nothing itself
// beyond those pods, which it deletes on every exit path.
package kubeplugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ClientFlags are kubectl's connection flags.
type ClientFlags struct {
	Kubeconfig, Context, Namespace string
}

// Client is a connection to one cluster, with the namespace kubectl would use.
type Client struct {
	CS        kubernetes.Interface
	Config    *rest.Config
	Namespace string
	Server    string
}

// Connect reads the kubeconfig as kubectl does (KUBECONFIG, ~/.kube/config,
// in-cluster) and checks that the API server answers.
func Connect(ctx context.Context, f ClientFlags) (*Client, error) {
	cf := genericclioptions.NewConfigFlags(true)
	cf.KubeConfig, cf.Context, cf.Namespace = &f.Kubeconfig, &f.Context, &f.Namespace
	// client-go falls back to localhost:8080 with no configuration at all: say so instead.
	if raw, err := cf.ToRawKubeConfigLoader().RawConfig(); err == nil && len(raw.Clusters) == 0 && os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return nil, errors.New("no kubeconfig: set KUBECONFIG or pass --kubeconfig (as for kubectl)")
	}
	cfg, err := cf.ToRESTConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errors.New("no kubeconfig: set KUBECONFIG or pass --kubeconfig (as for kubectl)")
		}
		return nil, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	ns, _, err := cf.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig's namespace: %w", err)
	}
	cfg.UserAgent = "kubectl-capsrec"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	c := &Client{CS: cs, Config: cfg, Namespace: ns, Server: cfg.Host}
	if _, err := cs.Discovery().ServerVersion(); err != nil {
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
		return fmt.Errorf("%s: forbidden (%s): kubectl capsrec needs to get pods and nodes, create, get and delete jobs, and attach to and exec into pods in the namespace of its node pods (see README, \"kubectl capsrec\")", doing, statusMessage(err))
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: the API server at %s refused the kubeconfig's credentials (%s)", doing, c.Server, statusMessage(err))
	case errors.As(err, &uerr), errors.As(err, &nerr), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: cannot reach the API server at %s: %v (check --context and --kubeconfig)", doing, c.Server, rootCause(err))
	}
	return fmt.Errorf("%s: %w", doing, err)
}

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

// shortID is a pod name's random tail, for progress lines.
func shortID(name string) string {
	if i := strings.LastIndexByte(name, '-'); i >= 0 {
		return name[i+1:]
	}
	return name
}
