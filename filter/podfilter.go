package filter

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/capsrec/capsrec/core"
)

// PodFilter is record's --pod, --namespace, --container, --selector and --host.
type PodFilter struct {
	Pods
	Selector labels.Selector
	Host     bool // only processes in no container
}

// NewPodFilter validates the flags.
func NewPodFilter(pods, namespaces, containers []string, selector string, host bool) (*PodFilter, error) {
	f := &PodFilter{Pods: Pods{Pods: pods, Namespaces: namespaces, Containers: containers}, Host: host}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if selector != "" {
		sel, err := labels.Parse(selector)
		if err != nil {
			return nil, fmt.Errorf("--selector: %w", err)
		}
		f.Selector = sel
	}
	if host && f.selectsPods() {
		return nil, errors.New("--host selects processes in no container: it excludes --pod, --namespace, --container and --selector")
	}
	return f, nil
}

func (f *PodFilter) selectsPods() bool {
	return !f.Any() || f.Selector != nil
}

// Active tells whether any pod flag was given.
func (f *PodFilter) Active() bool { return f.Host || f.selectsPods() }

// KernelMode is how the kernel's cgroup filter serves this filter.
func (f *PodFilter) KernelMode() core.CgroupFilter {
	switch {
	case f.Host:
		return core.CgroupsExclude
	case f.selectsPods():
		return core.CgroupsOnly
	}
	return core.CgroupsAll
}

// Matches tells whether a check in ctr (nil: the host) passes.
func (f *PodFilter) Matches(ctr *core.Container) bool {
	if f.Host {
		return ctr == nil || ctr.Undescribed // a name alone makes no container
	}
	if !f.selectsPods() {
		return true
	}
	if ctr == nil || ctr.Pod == nil {
		return false
	}
	p := ctr.Pod
	return f.Match(p.Namespace, p.Name, ctr.Name) &&
		(f.Selector == nil || f.Selector.Matches(labels.Set(p.Labels)))
}

// Kernel reports whether the kernel must keep a container's cgroup in its set:
// the pods selected, or for --host every container.
func (f *PodFilter) Kernel(ctr *core.Container) bool {
	if f.Host {
		return true
	}
	return f.Matches(ctr)
}
