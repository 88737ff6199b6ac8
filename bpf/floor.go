package bpf

import (
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// OpenNoop attaches a program that does nothing to the capability tracepoint:
// the floor of what any hook there costs, for benchmarks.
func OpenNoop() (*Session, error) { return openFloor(capsrecProgNoopCapCapable) }

// OpenRecordFloor attaches a program that only reserves, stamps and submits one
// check record per check, without waking the reader: the floor of any design
// that sends a record per check, for benchmarks. Drain s.Events().
func OpenRecordFloor() (*Session, error) { return openFloor(capsrecProgFloorCapCapable) }

func openFloor(prog string) (*Session, error) {
	spec, err := loadCapsrec()
	if err != nil {
		return nil, fmt.Errorf("reading the embedded BPF object: %w", err)
	}
	for name := range spec.Programs {
		if name != prog {
			delete(spec.Programs, name)
		}
	}
	if err := spec.Variables[capsrecVarCfg].Set(capsrecConfig{SelfTgid: uint32(os.Getpid())}); err != nil {
		return nil, fmt.Errorf("setting the programs' configuration: %w", err)
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", prog, err)
	}
	s := &Session{Method: MethodTracepoint, coll: coll}
	if err := s.assign(); err != nil {
		s.Close()
		return nil, err
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: coll.Programs[prog]})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("attaching %s: %w", prog, err)
	}
	s.links = append(s.links, l)
	return s, nil
}
