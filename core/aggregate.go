package core

// AggKey is what the kernel counts checks by (capsrec.h's struct agg_key)
// when it aggregates them (profile --live).
type AggKey struct {
	CgroupID      uint64
	ExeIno        uint64
	ExeDev        uint32
	Cap           int32
	Granted       bool
	Audit         uint8 // 0 unknown (the tracepoint), 1 audited, 2 not
	OverrideCreds bool
	Class         Class // as the kernel decided it: never ClassUserNS
	CredUserNS    uint32
	NSAnswer      uint8
}

// Aggregate is one key's count, summed over CPUs, and its last check's boot time.
type Aggregate struct {
	Key       AggKey
	Count     uint64
	LastKtime uint64
}

// AggKey computes the kernel's aggregation key of a check.
func (c *Check) AggKey() AggKey {
	class := c.Class
	if class == ClassUserNS { // decided in user space: the kernel counted it a need
		class = ClassNeed
	}
	k := AggKey{CgroupID: c.CgroupID, ExeIno: c.ExeIno, ExeDev: c.ExeDev, Cap: c.Cap, OverrideCreds: c.OverrideCreds,
		Granted: c.Granted(), Class: class, CredUserNS: c.CredUserNS, NSAnswer: c.NSAnswer}
	if c.AuditKnown {
		k.Audit = 2
		if c.Audit {
			k.Audit = 1
		}
	}
	return k
}
