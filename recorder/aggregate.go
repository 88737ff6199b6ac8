package recorder

import (
	"github.com/capsrec/capsrec/bpf"
	"github.com/capsrec/capsrec/core"
)

// Aggregates reads the kernel's aggregation map (profile --live): every key
// counted so far, with its count.
func Aggregates(s *bpf.Session) ([]core.Aggregate, error) {
	entries, err := s.AggregateEntries()
	if err != nil {
		return nil, err
	}
	out := make([]core.Aggregate, len(entries))
	for i, e := range entries {
		k := e.Key
		out[i] = core.Aggregate{Count: e.Count, LastKtime: e.LastKtime, Key: core.AggKey{
			CgroupID: k.CgroupId, ExeIno: k.ExeIno, ExeDev: k.ExeDev, Cap: k.Cap,
			Granted: k.Granted != 0, Audit: k.Audit, OverrideCreds: k.OverrideCreds != 0,
			Class: core.Class(k.Class), CredUserNS: k.CredUserNs, NSAnswer: k.NsAnswer,
		}}
	}
	return out, nil
}
