package bpf

import (
	"testing"

	"github.com/capsrec/capsrec/core"
)

// TestSharedEnums checks core's enums (tools/enumgen's reading of capsrec.h)
// against bpf2go's reading of the same header, which the programs were built with.
func TestSharedEnums(t *testing.T) {
	for _, c := range []struct {
		name       string
		core, bpf2 uint64
	}{
		{"METHOD_TRACEPOINT", core.MethodIDTracepoint, uint64(capsrecAttachMethodMETHOD_TRACEPOINT)},
		{"METHOD_FEXIT", core.MethodIDFexit, uint64(capsrecAttachMethodMETHOD_FEXIT)},
		{"METHOD_KPROBE", core.MethodIDKprobe, uint64(capsrecAttachMethodMETHOD_KPROBE)},
		{"CLASS_NEED", uint64(core.ClassNeed), uint64(capsrecCheckClassCLASS_NEED)},
		{"CLASS_PROBE", uint64(core.ClassProbe), uint64(capsrecCheckClassCLASS_PROBE)},
		{"CLASS_RUNTIME", uint64(core.ClassRuntime), uint64(capsrecCheckClassCLASS_RUNTIME)},
		{"CLASS_OVERRIDE_CREDS", uint64(core.ClassOverrideCreds), uint64(capsrecCheckClassCLASS_OVERRIDE_CREDS)},
		{"CLASS_USERNS", uint64(core.ClassUserNS), uint64(capsrecCheckClassCLASS_USERNS)},
		{"CLASS_COUNT", uint64(core.ClassCount), uint64(capsrecCheckClassCLASS_COUNT)},
		{"SITE_UNKNOWN", core.SiteUnknown, uint64(capsrecSiteKindSITE_UNKNOWN)},
		{"SITE_GLUE", core.SiteGlue, uint64(capsrecSiteKindSITE_GLUE)},
		{"SITE_PLUMBING", core.SitePlumbing, uint64(capsrecSiteKindSITE_PLUMBING)},
		{"SITE_CAPSET", core.SiteCapset, uint64(capsrecSiteKindSITE_CAPSET)},
		{"SITE_PROBE", core.SiteProbe, uint64(capsrecSiteKindSITE_PROBE)},
		{"MARK_INDEX", core.MarkIndex, uint64(capsrecRuntimeMarkBitsMARK_INDEX)},
		{"MARK_CLONE", core.MarkClone, uint64(capsrecRuntimeMarkBitsMARK_CLONE)},
		{"MARK_SERVER", core.MarkServer, uint64(capsrecRuntimeMarkBitsMARK_SERVER)},
		{"VERDICT_ALL", uint64(core.VerdictAll), uint64(capsrecVerdictFilterVERDICT_ALL)},
		{"VERDICT_GRANTED", uint64(core.VerdictGranted), uint64(capsrecVerdictFilterVERDICT_GRANTED)},
		{"VERDICT_DENIED", uint64(core.VerdictDenied), uint64(capsrecVerdictFilterVERDICT_DENIED)},
		{"CGROUPS_ALL", uint64(core.CgroupsAll), uint64(capsrecCgroupFilterModeCGROUPS_ALL)},
		{"CGROUPS_ONLY", uint64(core.CgroupsOnly), uint64(capsrecCgroupFilterModeCGROUPS_ONLY)},
		{"CGROUPS_EXCLUDE", uint64(core.CgroupsExclude), uint64(capsrecCgroupFilterModeCGROUPS_EXCLUDE)},
		{"ANSWER_CAPS", core.AnswerCaps, uint64(capsrecNsAnswerANSWER_CAPS)},
		{"ANSWER_OWNER", core.AnswerOwner, uint64(capsrecNsAnswerANSWER_OWNER)},
		{"ANSWER_LEVEL", core.AnswerLevel, uint64(capsrecNsAnswerANSWER_LEVEL)},
		{"ANSWER_UNKNOWN", core.AnswerUnknown, uint64(capsrecNsAnswerANSWER_UNKNOWN)},
		{"NS_USER", core.NSUser, uint64(capsrecNsIndexNS_USER)},
		{"NS_COUNT", core.NSCount, uint64(capsrecNsIndexNS_COUNT)},
	} {
		if c.core != c.bpf2 {
			t.Errorf("%s: core has %d, bpf2go %d: run make generate", c.name, c.core, c.bpf2)
		}
	}
}
