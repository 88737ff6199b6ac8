package profile

import (
	"bytes"
	"compress/gzip"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/testutil"
	"github.com/capsrec/capsrec/tetragon"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testutil.Golden(t, filepath.Join("testdata", name), got, *update)
}

type fixture struct {
	pod, container, binary string
	cap, ret               int32
	method                 core.Method
	audit, override        bool
	syscall                int32
}

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// writeCapsrecJSON writes checks the way capsrec record -o json does, with the real writer.
func writeCapsrecJSON(t *testing.T, node string, fx []fixture) []byte {
	var buf bytes.Buffer
	w := tetragon.NewWriter(&buf, node, [core.NSCount]uint32{})
	for i, f := range fx {
		c := &core.Check{
			Time:    t0.Add(time.Duration(i) * time.Second),
			Process: &core.Process{Tgid: uint32(100 + i), ExecID: "eA==", Binary: f.binary},
			Cap:     f.cap, Ret: f.ret, Method: f.method, Syscall: f.syscall, OverrideCreds: f.override,
		}
		if f.method != core.MethodTracepoint {
			c.AuditKnown, c.Audit = true, f.audit
		}
		switch {
		case f.binary == "/usr/sbin/runc":
			c.Class = core.ClassRuntime
		case f.override:
			c.Class = core.ClassOverrideCreds
		case f.method != core.MethodTracepoint && !f.audit:
			c.Class = core.ClassProbe
		}
		if f.pod != "" {
			c.Container = &core.Container{ID: "abc", Runtime: "containerd", Name: f.container, ImageName: "registry/web:1",
				Pod: &core.Pod{Namespace: "prod", Name: f.pod}}
		}
		if err := w.Write(c); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Flush()
	return buf.Bytes()
}

const (
	chown, dacOverride, setpcap, netBind, sysAdmin, syslog = 0, 1, 8, 10, 21, 34
	fexit, tracepoint                                      = core.MethodFexit, core.MethodTracepoint
)

// node1 and node2 hold pods of one Deployment (web) on two nodes, and host binaries.
var node1 = []fixture{
	{"web-7d4b9c8f6d-x2x9z", "app", "/usr/bin/app", chown, 0, fexit, true, false, 92},
	{"web-7d4b9c8f6d-x2x9z", "app", "/usr/bin/app", chown, 0, fexit, true, false, 92},
	{"web-7d4b9c8f6d-x2x9z", "app", "/usr/bin/app", sysAdmin, 0, fexit, false, false, 9},    // a noaudit probe
	{"web-7d4b9c8f6d-x2x9z", "app", "/usr/bin/app", dacOverride, 0, fexit, true, true, 257}, // overlayfs copy-up
	{"web-7d4b9c8f6d-x2x9z", "app", "/usr/bin/dmesg", syslog, -1, fexit, true, false, 103},  // tried, refused
	{"web-7d4b9c8f6d-x2x9z", "app", "/usr/sbin/runc", setpcap, 0, fexit, true, false, 157},  // runc init setting up
	{"", "", "/usr/sbin/nginx", netBind, 0, tracepoint, false, false, 49},                   // host, on the tracepoint
}

var node2 = []fixture{
	{"web-7d4b9c8f6d-q8w2k", "app", "/usr/bin/app", chown, 0, fexit, true, false, 260},
	{"web-7d4b9c8f6d-q8w2k", "sidecar", "/bin/proxy", netBind, 0, fexit, true, false, 49},
}

func readBytes(t *testing.T, files map[string][]byte, opts ReadOptions) *Profile {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	p, err := ReadFiles(paths, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func gz(data []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(data)
	_ = zw.Close()
	return buf.Bytes()
}

func TestProfileOfTwoNodes(t *testing.T) {
	p := readBytes(t, map[string][]byte{
		"node1.json":    writeCapsrecJSON(t, "node1", node1),
		"node2.json.gz": gz(writeCapsrecJSON(t, "node2", node2)),
	}, ReadOptions{Workers: 2})
	subjects := p.Subjects()
	if len(subjects) != 3 {
		t.Fatalf("%d subjects, want app and sidecar of prod/web and host nginx", len(subjects))
	}
	app := subjects[0]
	if app.Subject.Workload != "web" || app.Subject.Container != "app" || len(app.Pods) != 2 || app.Checks != 7 {
		t.Errorf("app = %+v", app)
	}
	r := app.Recommend()
	if strings.Join(r.Add, ",") != "CHOWN" || strings.Join(r.Drop, ",") != "ALL" || strings.Join(r.Denied, ",") != "SYSLOG" || r.NoCallSite || r.NonRoot {
		t.Errorf("app recommendation = %+v", r)
	}
	if v := app.Caps[sysAdmin].Verdict(); v != ProbeOnly {
		t.Errorf("noaudit SYS_ADMIN: %s", v)
	}
	if v := app.Caps[dacOverride].Verdict(); v != OverrideOnly {
		t.Errorf("override_creds DAC_OVERRIDE: %s", v)
	}
	if v := app.Caps[setpcap].Verdict(); v != RuntimeOnly {
		t.Errorf("runc's SETPCAP: %s", v)
	}
	nginx := subjects[2]
	if nginx.Subject.Binary != "/usr/sbin/nginx" || nginx.Caps[netBind].Verdict() != Needed || nginx.Recommend().NoCallSite {
		t.Errorf("nginx = %+v", nginx)
	}
	for _, format := range Formats.Names() {
		var buf bytes.Buffer
		if err := Write(&buf, p, format, Style{}); err != nil {
			t.Fatal(err)
		}
		golden(t, "two-nodes."+format, buf.Bytes())
	}
	var colored bytes.Buffer
	_ = WriteTable(&colored, p, Style{Colored: true})
	golden(t, "two-nodes.table-color", colored.Bytes())
}

// Each YAML document is a securityContext Kubernetes accepts.
func TestYAMLParsesAsSecurityContext(t *testing.T) {
	p := readBytes(t, map[string][]byte{"n.json": writeCapsrecJSON(t, "n", append(node1, node2...))}, ReadOptions{})
	var buf bytes.Buffer
	if err := Write(&buf, p, "yaml", Style{}); err != nil {
		t.Fatal(err)
	}
	docs := docSeparator.Split(buf.String(), -1)
	if len(docs) != 2 {
		t.Fatalf("%d documents, want one per container", len(docs))
	}
	for _, doc := range docs {
		var sc corev1.SecurityContext
		if err := yaml.UnmarshalStrict([]byte(doc), &sc); err != nil {
			t.Fatalf("%v in:\n%s", err, doc)
		}
		if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			t.Errorf("securityContext %+v", sc)
		}
	}
}

func TestTetragonEventProfiles(t *testing.T) {
	p, err := ReadFiles([]string{"../testdata/tetragon-cap_capable-event.json"}, nil, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := p.Subjects()
	if len(s) != 1 {
		t.Fatalf("%d subjects", len(s))
	}
	sub := s[0].Subject
	if sub.Namespace != "default" || sub.Pod != "" || s[0].Pods[0] != "xwing" || sub.Workload != "xwing" || sub.Container != "spaceship" || sub.Image != "docker.io/tgraf/netperf:latest" {
		t.Errorf("subject = %+v", sub)
	}
	r := s[0].Recommend()
	if len(r.Add) != 0 || strings.Join(r.Denied, ",") != "SYSLOG" {
		t.Errorf("recommendation = %+v", r)
	}
}

func TestBadLinesAndOtherHooks(t *testing.T) {
	good := writeCapsrecJSON(t, "n", node2[:1])
	exec := []byte(`{"process_exec":{"process":{"binary":"/bin/sh"}},"time":"2026-11-27T12:00:00Z"}` + "\n")
	data := append(append(append([]byte{}, good...), exec...), []byte("{\"process_kprobe\": oops}\n")...)
	dir := t.TempDir()
	path := filepath.Join(dir, "events.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFiles([]string{path}, nil, ReadOptions{})
	if err == nil || !strings.HasPrefix(err.Error(), path+":3: ") {
		t.Errorf("error = %v, want %s:3: ...", err, path)
	}
	p, err := ReadFiles([]string{path}, nil, ReadOptions{SkipInvalid: true})
	if err != nil || p.Skipped != 1 || p.Ignored != 1 || p.Len() != 1 {
		t.Errorf("--skip-invalid: %v, skipped %d, ignored %d, subjects %d", err, p.Skipped, p.Ignored, p.Len())
	}
	if _, err := ReadFiles([]string{filepath.Join(dir, "missing.json")}, nil, ReadOptions{}); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
}

func TestWorkloadNames(t *testing.T) {
	cases := map[string]string{
		"web-7d4b9c8f6d-x2x9z":  "web",
		"node-exporter-x2x9z":   "node-exporter",
		"db-0":                  "db",
		"xwing":                 "xwing",
		"backup-28001234-abcde": "backup-28001234-abcde", // vowels: not a generated suffix
	}
	for pod, want := range cases {
		if got, rule := Workload(pod); got != want || rule == "" {
			t.Errorf("Workload(%q) = %q (%s), want %q", pod, got, rule, want)
		}
	}
}

func TestFilter(t *testing.T) {
	p := readBytes(t, map[string][]byte{"n.json": writeCapsrecJSON(t, "n", append(node1, node2...))},
		ReadOptions{Filter: Filter{Containers: []string{"side*"}}})
	if p.Len() != 1 || p.Subjects()[0].Subject.Container != "sidecar" {
		t.Errorf("filtered profile has %d subjects", p.Len())
	}
}

// checkYAML checks the manifest text against p: what CheckManifest found, and its findings as text.
func checkYAML(t *testing.T, p *Profile, text string) (ManifestCheck, []string, error) {
	t.Helper()
	manifest := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(manifest, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	check, err := CheckManifest(manifest, p)
	var got []string
	for _, f := range check.Findings {
		got = append(got, f.String())
	}
	return check, got, err
}

func checkProfile(t *testing.T) *Profile {
	return readBytes(t, map[string][]byte{"n.json": writeCapsrecJSON(t, "n", append(node1, node2...))}, ReadOptions{})
}

// Manifests as Helm, kustomize and kubectl write them: many documents, of
// kinds that are no workload too, Lists, CronJobs.
func TestCheckManifestOfManyKinds(t *testing.T) {
	check, got, err := checkYAML(t, checkProfile(t), `apiVersion: v1
kind: Service
metadata: {name: web, namespace: prod}
---
apiVersion: v1
kind: List
items:
- kind: ConfigMap
  metadata: {name: web-config}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web, namespace: prod}
  spec:
    template:
      spec:
        containers:
        - name: app
          securityContext:
            capabilities: {drop: [ALL], add: [CHOWN]}
        - name: sidecar
          securityContext:
            capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: backup, namespace: prod}
spec:
  schedule: "@daily"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: app
            securityContext:
              capabilities: {drop: [ALL]}
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"prod/web container app: was denied capabilities the manifest does not grant: SYSLOG",
		"prod/backup container app: never seen in the profile",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || check.Workloads != 2 || check.IgnoredText() != "1 ConfigMap, 1 Service" {
		t.Errorf("findings:\n%s\nwant:\n%s\n%d workloads, ignored %q", strings.Join(got, "\n"), strings.Join(want, "\n"), check.Workloads, check.IgnoredText())
	}
	// A CronJob's pods belong to Jobs named after it and the minute they ran.
	sp := &SubjectProfile{Subject: Subject{Namespace: "prod", Workload: "backup-29012345", Container: "app"}}
	if !sp.matches("CronJob", "prod", "backup", "app") || sp.matches("CronJob", "prod", "back", "app") {
		t.Error("a CronJob's Job is not matched by its name")
	}
}

func TestCheckManifest(t *testing.T) {
	p := checkProfile(t)
	_, got, err := checkYAML(t, p, `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: prod}
spec:
  template:
    spec:
      containers:
      - name: app
        securityContext:
          capabilities: {drop: [ALL], add: [CHOWN, NET_ADMIN]}
      - name: sidecar
      - name: never
`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"prod/web container app: grants capabilities it never needed: NET_ADMIN",
		"prod/web container app: was denied capabilities the manifest does not grant: SYSLOG",
		"prod/web container sidecar: grants capabilities it never needed: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP",
		"prod/web container never: never seen in the profile",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, _, err := checkYAML(t, p, "kind: Service\nmetadata: {name: web}\n"); err == nil || !strings.Contains(err.Error(), "not a workload") {
		t.Errorf("a Service: %v", err)
	}
	// A comment-only document is passed over; names that are no capability are findings.
	_, got, err = checkYAML(t, p, `# generated by a tool
---
# nothing here either
---
kind: Pod
metadata: {name: web-7d4b9c8f6d-x2x9z, namespace: prod}
spec:
  containers:
  - name: app
    securityContext:
      capabilities: {drop: [ALL], add: [CHOWN, SYS_ADMINN, NET-ADMIN]}
`)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"SYS_ADMINN", "NET-ADMIN"} {
		if !strings.Contains(strings.Join(got, "\n"), `document 3 names an unknown capability "`+name+`"`) {
			t.Errorf("no finding for %s: %q", name, got)
		}
	}
	// A capability the workload was refused while recorded is not "never needed".
	_, got, err = checkYAML(t, p, `kind: Deployment
metadata: {name: web, namespace: prod}
spec:
  template:
    spec:
      containers:
      - name: app
        securityContext:
          capabilities: {drop: [ALL], add: [CHOWN, SYSLOG]}
`)
	if err != nil {
		t.Fatal(err)
	}
	if want := "prod/web container app: grants capabilities the workload tried and was refused while recorded (recorded without them: whether it needs them is not known): SYSLOG"; !slices.Contains(got, want) {
		t.Errorf("findings %q, want %q", got, want)
	}
}

// Events without a call site (Tetragon's) keep the audit rules, and the
// profile says so; needs asked by a non-root user carry the note that add
// alone does not raise a non-root process's effective set.
func TestNotesNoCallSiteAndNonRoot(t *testing.T) {
	p := New()
	p.Add(Observation{Subject: Subject{Namespace: "prod", Pod: "web-0", Container: "app"}, Binary: "/app", Cap: chown, Granted: true,
		EUID: 1000, EUIDKnown: true}) // a Tetragon event: no class, no audit
	sp := p.Subjects()[0]
	if v := sp.Caps[chown].Verdict(); v != NeededNoCallSite {
		t.Errorf("verdict %q", v)
	}
	r := sp.Recommend()
	if !r.NoCallSite || r.NonRoot {
		t.Errorf("recommendation %+v: want the no-call-site note only (the need's class is unknown)", r)
	}
	p = New()
	p.Add(Observation{Subject: Subject{Namespace: "prod", Pod: "web-0", Container: "app"}, Binary: "/app", Cap: chown, Granted: true,
		Class: core.ClassNeed, ClassKnown: true, EUID: 1000, EUIDKnown: true})
	r = p.Subjects()[0].Recommend()
	if !r.NonRoot || r.NoCallSite {
		t.Errorf("recommendation %+v: want the non-root note", r)
	}
	// A non-root refusal beside a root need says nothing of the need.
	q := New()
	q.Add(Observation{Subject: Subject{Pod: "web-0", Container: "app"}, Binary: "/app", Cap: chown, Granted: true, Class: core.ClassNeed, ClassKnown: true, EUID: 0, EUIDKnown: true})
	q.Add(Observation{Subject: Subject{Pod: "web-0", Container: "app"}, Binary: "/dmesg", Cap: 34, Granted: false, Class: core.ClassNeed, ClassKnown: true, EUID: 65534, EUIDKnown: true})
	if r := q.Subjects()[0].Recommend(); r.NonRoot {
		t.Errorf("the non-root note fires for a root need beside a non-root refusal: %+v", r)
	}
	var buf bytes.Buffer
	if err := Write(&buf, p, "yaml", Style{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "# note: "+NonRootNote) {
		t.Errorf("yaml lacks the non-root note:\n%s", buf.String())
	}
}

// Host binaries past MaxHostBinaries (any user can make names without end) are
// profiled together, counted and said; merging keeps the bound.
func TestHostBinariesBounded(t *testing.T) {
	p, q := New(), New()
	for i := range MaxHostBinaries + 10 {
		o := Observation{Cap: 0, Granted: true, Class: core.ClassNeed, ClassKnown: true, Subject: Subject{Binary: "/tmp/b" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String()}}
		p.Add(o)
		q.Add(o)
	}
	if p.Folded != 10 || len(p.Subjects()) != MaxHostBinaries+1 {
		t.Fatalf("folded %d, %d subjects; want 10 and %d", p.Folded, len(p.Subjects()), MaxHostBinaries+1)
	}
	p.Merge(q)
	if p.Folded != 20 || len(p.Subjects()) != MaxHostBinaries+1 {
		t.Errorf("after a merge: folded %d, %d subjects; want 20 and %d", p.Folded, len(p.Subjects()), MaxHostBinaries+1)
	}
	var out bytes.Buffer
	if err := WriteTable(&out, p, Style{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "20 checks of host binaries past the first 1024 are profiled together as (other binaries)") {
		t.Errorf("the table does not say what was folded:\n%s", out.String()[max(0, out.Len()-400):])
	}
}

// A UTF-8 byte order mark before JSON lines is skipped.
func TestByteOrderMark(t *testing.T) {
	data := writeCapsrecJSON(t, "n", []fixture{{binary: "/bin/chown", cap: 0, method: core.MethodTracepoint}})
	p := New()
	if err := Read("bom.json", bytes.NewReader(append([]byte{0xef, 0xbb, 0xbf}, data...)), ReadOptions{}, p); err != nil {
		t.Fatal(err)
	}
	if len(p.Subjects()) != 1 {
		t.Errorf("%d subjects, want 1", len(p.Subjects()))
	}
}

// Merging keeps what each side saw: a container one node saw only start (an
// exec, no check) and another saw checking stays started.
func TestMergeKeepsCoverage(t *testing.T) {
	subject := Subject{Namespace: "prod", Pod: "web-7d4b9c8f6d-q8w2k", Container: "app"}
	p, q := New(), New()
	p.Add(Observation{Exec: true, Start: true, Subject: subject, Time: t0})
	q.Add(Observation{Cap: 0, Granted: true, Class: core.ClassNeed, ClassKnown: true, Subject: subject, Time: t0.Add(time.Second)})
	p.Merge(q)
	subjects := p.Subjects()
	if len(subjects) != 1 {
		t.Fatalf("%d subjects, want 1", len(subjects))
	}
	if c := subjects[0].Coverage(); !c.StartObserved || c.Pods != 1 || subjects[0].Checks != 1 {
		t.Errorf("coverage %+v, %d checks; want the start kept and the check counted", c, subjects[0].Checks)
	}
}
