package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/capsrec/capsrec/internal/ctrfixture"
	"github.com/capsrec/capsrec/internal/testutil"
)

// attackCheck is what these tests read of a recorded line.
type attackCheck struct {
	ProcessKprobe *struct {
		Process struct {
			Binary string `json:"binary"`
			Pod    *struct {
				Name      string `json:"name"`
				Container struct {
					Name string `json:"name"`
				} `json:"container"`
			} `json:"pod"`
		} `json:"process"`
		Args []struct {
			Cap *struct {
				Name string `json:"name"`
			} `json:"capability_arg"`
		} `json:"args"`
		Capsrec struct {
			Class      string `json:"class"`
			Rule       string `json:"user_ns_rule"`
			Comm       string `json:"comm"`
			Executable string `json:"executable"`
			CgroupName string `json:"cgroup_name"`
		} `json:"capsrec"`
	} `json:"process_kprobe"`
	ProcessExec *struct {
		Process struct {
			Binary string `json:"binary"`
			Pod    *struct {
				Container struct {
					Name string `json:"name"`
				} `json:"container"`
			} `json:"pod"`
		} `json:"process"`
		Capsrec struct {
			ContainerStart bool `json:"container_start"`
		} `json:"capsrec"`
	} `json:"process_exec"`
}

func attackChecks(t *testing.T, lines [][]byte) []attackCheck {
	t.Helper()
	var out []attackCheck
	for _, l := range lines {
		var a attackCheck
		if err := json.Unmarshal(l, &a); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		out = append(out, a)
	}
	return out
}

func (a attackCheck) capability() string {
	for _, arg := range a.ProcessKprobe.Args {
		if arg.Cap != nil {
			return arg.Cap.Name
		}
	}
	return ""
}

func (a attackCheck) container() string {
	if a.ProcessKprobe == nil || a.ProcessKprobe.Process.Pod == nil {
		return ""
	}
	return a.ProcessKprobe.Process.Pod.Container.Name
}

// addOf is the add list the profile of lines gives container (nil: not in it).
func addOf(t *testing.T, lines [][]byte, container string) []string {
	t.Helper()
	for _, sub := range profileOf(t, lines).Subjects {
		if sub.Container == container {
			return sub.Recommendation.Add
		}
	}
	return nil
}

// TestUserNamespaceGrantsAreNoNeeds: unshare -Urm and a tmpfs mount succeed
// without CAP_SYS_ADMIN, as nobody on the host and in a container with no
// capability at all: the kernel grants every capability in a user namespace
// its caller made. Those checks are class userns (by the rule the kernel
// answered with), never in an add list, and the container's profile (add [])
// is replayed: it runs with drop ALL.
func TestUserNamespaceGrantsAreNoNeeds(t *testing.T) {
	method := firstMethod(t)
	c := ctrfixture.Start(t)
	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", c.Endpoint)
	rec := testutil.Record(t, "-o", "json", "--attach", method)
	pod := c.RunPod("userns", "default", nil)
	script := "unshare -Urm sh -c 'mount -t tmpfs t /tmp && touch /tmp/x'"
	id := c.RunContainer(pod, ctrfixture.ContainerSpec{Name: "nested", Command: []string{"/bin/sh", "-c", "set -e; " + script}})
	if code := c.WaitExit(id, 30*time.Second*testutil.Slow()); code != 0 {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "logs", "userns", "nested.log"))
		t.Fatalf("the nested mount in a container exited %d: %s", code, log)
	}
	host := exec.Command("unshare", "-Urm", "sh", "-c", "mount -t tmpfs t /mnt && touch /mnt/x")
	host.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := host.CombinedOutput(); err != nil {
		t.Fatalf("the nested mount as nobody on the host: %v\n%s", err, out)
	}
	time.Sleep(300 * time.Millisecond)
	rec.Stop(syscall.SIGINT)

	seen := map[string]int{}
	for _, a := range attackChecks(t, rec.Lines()) {
		if a.ProcessKprobe != nil && a.container() == "nested" && os.Getenv("CAPSREC_DEBUG_TEST") != "" {
			t.Logf("%s %s %s %s", a.capability(), a.ProcessKprobe.Process.Binary, a.ProcessKprobe.Capsrec.Class, a.ProcessKprobe.Capsrec.Rule)
		}
		if a.ProcessKprobe == nil || a.capability() != "CAP_SYS_ADMIN" {
			continue
		}
		where := "host"
		if a.container() != "" {
			where = a.container()
		} else if b := filepath.Base(a.ProcessKprobe.Process.Binary); b != "unshare" && b != "mount" && b != "touch" && b != "sh" {
			continue // the host's other processes
		}
		if os.Getenv("CAPSREC_DEBUG_TEST") != "" {
			t.Logf("%s %s %s %s", where, a.ProcessKprobe.Process.Binary, a.ProcessKprobe.Capsrec.Class, a.ProcessKprobe.Capsrec.Executable)
		}
		if cl := a.ProcessKprobe.Capsrec.Class; cl == "override_creds" {
			continue // overlayfs checks again under the mounter's credentials: never a need either
		} else if cl != "userns" {
			t.Errorf("%s: %s's CAP_SYS_ADMIN check has class %q, want userns", where, a.ProcessKprobe.Process.Binary, a.ProcessKprobe.Capsrec.Class)
		}
		if r := a.ProcessKprobe.Capsrec.Rule; r != "capabilities" && r != "owner" {
			t.Errorf("%s: user_ns_rule %q, want the rule that answered (capabilities in the new namespace, or owner)", where, r)
		}
		seen[where]++
	}
	if seen["nested"] == 0 || seen["host"] == 0 {
		t.Fatalf("nested namespace checks seen %v; want some in the container and on the host", seen)
	}
	// Writing the new namespace's uid and gid maps is checked in the node's
	// namespace: those are needs (the replay below proves them); the mount is not.
	add := addOf(t, rec.AllLines(), "nested")
	if add == nil || slices.Contains(add, "SYS_ADMIN") {
		t.Errorf("the container's add = %v, want no SYS_ADMIN", add)
	}
	for _, sub := range profileOf(t, rec.AllLines()).Subjects {
		if b := filepath.Base(sub.Binary); sub.Container == "" && b != "unshare" && b != "mount" {
			continue
		}
		if v := sub.Capabilities["CAP_SYS_ADMIN"].Verdict; v == "needed" {
			t.Errorf("%s%s: CAP_SYS_ADMIN %q", sub.Container, sub.Binary, v)
		}
	}
	// The profile, replayed: drop ALL, add that and CAP_SETFCAP. Mapping the
	// parent's root (-r as root) needs CAP_SETFCAP, which the kernel reads
	// from the effective set without a check (user_namespace.c's
	// parent_could_setfcap): no recording of cap_capable sees it (docs/classes.md).
	id = c.RunContainer(pod, ctrfixture.ContainerSpec{Name: "nested-replay", Command: []string{"/bin/sh", "-c", "set -e; " + script}, Caps: append(slices.Clone(add), "SETFCAP")})
	if code := c.WaitExit(id, 30*time.Second*testutil.Slow()); code != 0 {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "logs", "userns", "nested-replay.log"))
		t.Errorf("the nested mount with drop ALL, add %v exited %d: %s", add, code, log)
	}
	testutil.AssertNothingLeft(t)
}

// TestWorkloadReexecIsNoRuntime: containers whose command re-execs itself
// from a memfd, or from a removed file named "x (deleted)", padded to the
// size of the shim or of runc, run before capsrec starts: to the start-up
// scan they look like a runtime re-exec'ing an unlinked copy of itself. Their
// checks are needs, in their containers, in the profile, and no start is
// claimed for them.
func TestWorkloadReexecIsNoRuntime(t *testing.T) {
	method := firstMethod(t)
	c := ctrfixture.Start(t)
	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", c.Endpoint)
	sizes := map[string]int64{}
	for _, name := range []string{"containerd-shim-runc-v2", "runc"} {
		st, err := os.Stat(mustLookPath(t, name))
		if err != nil {
			t.Fatal(err)
		}
		sizes[name] = st.Size()
	}
	pod := c.RunPod("reexec", "default", nil)
	var names []string
	for _, how := range []string{"memfd", "deleted"} {
		for bin, size := range sizes {
			name := how + "-" + strings.TrimPrefix(bin, "containerd-")
			names = append(names, name)
			c.RunContainer(pod, ctrfixture.ContainerSpec{Name: name, Command: []string{"/bin/capop", "reexec", how, strconv.FormatInt(size, 10),
				"sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.1; done; touch /tmp/f; chown 1234 /tmp/f; sleep 3600"}})
		}
	}
	time.Sleep(time.Second) // every command has re-exec'd itself
	rec := testutil.Record(t, "-o", "json", "--attach", method, "--all", "--cap", "chown")
	for _, name := range names {
		if code := c.Exec(pod.Containers[name], "/bin/touch", "/tmp/go"); code != 0 {
			t.Fatalf("exec in %s exited %d", name, code)
		}
	}
	time.Sleep(time.Second)
	rec.Stop(syscall.SIGINT)

	needs, overlay := map[string]bool{}, 0
	for _, a := range attackChecks(t, rec.Lines()) {
		if a.ProcessExec != nil && a.ProcessExec.Capsrec.ContainerStart && a.ProcessExec.Process.Pod != nil {
			t.Errorf("%s: a start is claimed for a container that started before the session: %s", a.ProcessExec.Process.Pod.Container.Name, a.ProcessExec.Process.Binary)
		}
		if a.ProcessKprobe == nil || a.capability() != "CAP_CHOWN" || !slices.Contains(names, a.container()) {
			continue
		}
		// overlayfs checks the upper file again under the mounter's credentials (override_creds).
		switch cl := a.ProcessKprobe.Capsrec.Class; cl {
		case "need":
			needs[a.container()] = true
		case "override_creds":
			overlay++
		default:
			t.Errorf("%s: the workload's chown has class %q (binary %q), want need", a.container(), cl, a.ProcessKprobe.Process.Binary)
		}
	}
	if overlay == 0 {
		t.Errorf("no chown checked again by overlayfs under its mounter's credentials (override_creds): is overlayfs's text known?")
	}
	for _, name := range names {
		if !needs[name] {
			t.Errorf("%s: no chown recorded as its need", name)
		}
		if add := addOf(t, rec.AllLines(), name); !slices.Contains(add, "CHOWN") {
			t.Errorf("%s: add = %v, want CHOWN", name, add)
		}
	}
	testutil.AssertNothingLeft(t)
}

// TestPodStartingAsSessionStarts starts capsrec while a pod and its container
// are being created, at several offsets, so that the session's start falls
// inside the runtime's setup (shim started, sandbox not yet listed, runc
// create at work). The container (sleep) needs nothing: runc's setup is never
// a need, whenever the session started.
func TestPodStartingAsSessionStarts(t *testing.T) {
	method := firstMethod(t)
	c := ctrfixture.Start(t)
	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", c.Endpoint)
	for i := range 5 {
		name := fmt.Sprintf("race%d", i)
		done := make(chan string, 1)
		go func() {
			p := c.RunPod(name, "default", nil)
			done <- c.RunContainer(p, ctrfixture.ContainerSpec{Name: name, Command: []string{"/bin/sh", "-c", "sleep 1"}})
		}()
		time.Sleep(time.Duration(i) * 60 * time.Millisecond)
		rec := testutil.Record(t, "-o", "json", "--attach", method, "--all")
		id := <-done
		c.WaitExit(id, 30*time.Second*testutil.Slow())
		time.Sleep(200 * time.Millisecond)
		rec.Stop(syscall.SIGINT)
		for _, a := range attackChecks(t, rec.Lines()) {
			if a.ProcessKprobe == nil || a.ProcessKprobe.Capsrec.Class != "need" {
				continue
			}
			if bin := filepath.Base(a.ProcessKprobe.Process.Binary); bin == "runc" || strings.HasPrefix(bin, "containerd-shim") ||
				strings.Contains(a.ProcessKprobe.Capsrec.Executable, "runc") {
				t.Errorf("offset %d: the runtime's %s made a need: %s in %q", i, bin, a.capability(), a.container())
			}
		}
		if add := addOf(t, rec.AllLines(), name); len(add) != 0 {
			t.Errorf("offset %d: %s's add = %v, want []: runtime setup counted as its needs", i, name, add)
		}
	}
	testutil.AssertNothingLeft(t)
}

// TestCgroupNamedAfterContainer: nobody, given a delegated cgroup v2 subtree
// (as systemd gives user@UID.service), makes a cgroup named after a running
// container's id and runs dmesg in it. The check is not that container's: it
// is a host process's, shown with --host, and the pod's profile is untouched.
func TestCgroupNamedAfterContainer(t *testing.T) {
	method := firstMethod(t)
	dmesgRestrict(t)
	root := cgroup2Mount(t)
	c := ctrfixture.Start(t)
	t.Setenv("CONTAINER_RUNTIME_ENDPOINT", c.Endpoint)
	pod := c.RunPod("victim", "default", nil)
	id := c.RunContainer(pod, ctrfixture.ContainerSpec{Name: "victim", Command: []string{"/bin/sleep", "3600"}})

	deleg := filepath.Join(root, fmt.Sprintf("capsrec-test-deleg-%d", os.Getpid()))
	if err := os.Mkdir(deleg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Remove(filepath.Join(deleg, id))
		os.Remove(deleg)
	})
	for _, f := range []string{"", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"} {
		if err := os.Chown(filepath.Join(deleg, f), 65534, 65534); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	all := testutil.Record(t, "-o", "json", "--attach", method, "--cap", "syslog")
	host := testutil.Record(t, "-o", "json", "--attach", method, "--cap", "syslog", "--host")
	// nobody waits to be moved into its subtree, then makes the container's
	// name there, moves itself in and runs dmesg.
	cmd := exec.Command("sh", "-c", `read go; mkdir "$1/$2" && echo $$ > "$1/$2/cgroup.procs" && exec dmesg`, "sh", deleg, id)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(deleg, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(stdin, "go")
	_ = cmd.Wait() // dmesg is refused: CAP_SYSLOG, with dmesg_restrict
	time.Sleep(300 * time.Millisecond)
	all.Stop(syscall.SIGINT)
	host.Stop(syscall.SIGINT)

	find := func(s *testutil.Session) (attackCheck, bool) {
		for _, a := range attackChecks(t, s.Lines()) {
			if a.ProcessKprobe != nil && a.ProcessKprobe.Capsrec.CgroupName == id && a.capability() == "CAP_SYSLOG" {
				return a, true
			}
		}
		return attackCheck{}, false
	}
	a, ok := find(all)
	if !ok {
		t.Fatalf("no CAP_SYSLOG check in the cgroup named %s; stderr: %s", id, all.Stderr())
	}
	if ctr := a.container(); ctr != "" {
		t.Errorf("dmesg in a cgroup named after the container is joined to container %q", ctr)
	}
	if _, ok := find(host); !ok {
		t.Errorf("--host does not show the host process in the cgroup named after a container")
	}
	if add := addOf(t, all.AllLines(), "victim"); len(add) != 0 {
		t.Errorf("the victim's add = %v, want []", add)
	}
	testutil.AssertNothingLeft(t)
}

// cgroup2Mount is where cgroup v2 is mounted (pure or hybrid).
func cgroup2Mount(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var root string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 9 && slices.Contains(f, "-") {
			i := slices.Index(f, "-")
			if i+1 < len(f) && f[i+1] == "cgroup2" {
				root = f[4]
			}
		}
	}
	if root == "" {
		testutil.Skip(t, "no cgroup2 mount")
	}
	return root
}

// TestCapsetRaceDecidedByTheKernel: a thread raises its inheritable set
// (which CAP_SETPCAP gates) while another flips the buffer the call reads.
// Which set the kernel copied decides each call; each raise that took is a
// need, each call that did not raise a probe, whatever the buffer said when
// capsrec looked. The default view shows exactly the raises that took.
func TestCapsetRaceDecidedByTheKernel(t *testing.T) {
	method := firstMethod(t)
	if method != "tracepoint" {
		// Nothing to test, not a skip: fexit and kprobe never see capset's
		// check, cap_capable is inlined there (docs/classes.md).
		t.Logf("%s: capset's CAP_SETPCAP check is seen on the tracepoint only", method)
		return
	}
	// Enough for the race to go both ways many times; every line is kept in
	// this process, whose peak RSS the children's rusage carries (TestHostileFiles).
	const calls = 3000
	out := filepath.Join(t.TempDir(), "raised")
	h := startHelper(t, "capsrec-capsetrace", 0, "capsetrace:"+strconv.Itoa(calls)+":"+out)
	// Every capset that took commits new credentials: a context record per
	// check, so the rings are large enough for all of them.
	shown := testutil.Record(t, "-o", "json", "--attach", method, "--cap", "setpcap", "--pid", strconv.Itoa(h.pid()), "--ring-buffer", "65536")
	all := testutil.Record(t, "-o", "json", "--attach", method, "--cap", "setpcap", "--pid", strconv.Itoa(h.pid()), "--all", "--ring-buffer", "65536")
	h.run(t)
	time.Sleep(300 * time.Millisecond)
	shown.Stop(syscall.SIGINT)
	all.Stop(syscall.SIGINT)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	raised, _ := strconv.Atoi(string(b))
	count := func(s *testutil.Session) map[string]int {
		n := map[string]int{}
		for _, a := range attackChecks(t, s.Lines()) {
			if a.ProcessKprobe != nil && a.capability() == "CAP_SETPCAP" {
				n[a.ProcessKprobe.Capsrec.Class]++
			}
		}
		return n
	}
	for _, s := range []*testutil.Session{shown, all} {
		if !strings.Contains(s.Stderr(), " 0 lost") || strings.Contains(s.Stderr(), "not written") || strings.Contains(s.Stderr(), "not read") {
			t.Fatalf("the recording lost or did not write checks, so the counts cannot be exact: %s", s.Stderr())
		}
	}
	got, every := count(shown), count(all)
	t.Logf("%d of %d raises took; default view %v, --all %v", raised, calls, got, every)
	if raised == 0 || raised == calls {
		t.Fatalf("%d of %d raises took: the race was not run", raised, calls)
	}
	if got["need"] != raised || len(got) != 1 {
		t.Errorf("the default view shows %v; want exactly the %d raises that took, as needs", got, raised)
	}
	// Probes: each call that did not raise, each lowering after one that did, and the first drop.
	if every["need"] != raised || every["probe"] != calls+1 {
		t.Errorf("--all shows %v; want %d needs and %d probes", every, raised, calls+1)
	}
}

// TestIOURingPersonalityIsANeed: a process registers an io_uring personality,
// drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its effective set, then
// opens a file only they allow through io_uring under that personality. The
// check is made under the process's own earlier credentials, which io_uring
// puts back: a need, in the profile; replayed, the open works with the
// capability the profile names and fails without it.
func TestIOURingPersonalityIsANeed(t *testing.T) {
	method := firstMethod(t)
	if b, err := os.ReadFile("/proc/sys/kernel/io_uring_disabled"); err == nil && strings.TrimSpace(string(b)) != "0" {
		testutil.Skip(t, "io_uring is disabled here (kernel.io_uring_disabled=%s)", strings.TrimSpace(string(b)))
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "uring")
	if out, err := exec.Command("cc", "-O1", "-o", bin, "testdata/uring.c", "-luring").CombinedOutput(); err != nil {
		t.Fatalf("building testdata/uring.c (liburing-dev): %v\n%s", err, out)
	}
	file := filepath.Join(dir, "secret")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(file, 1234, 1234); err != nil {
		t.Fatal(err)
	}
	rec := testutil.Record(t, "-o", "json", "--attach", method, "--cap", "dac_override,dac_read_search", "--binary", "uring")
	if out, err := exec.Command(bin, file).CombinedOutput(); err != nil {
		t.Fatalf("uring: %v\n%s", err, out)
	}
	time.Sleep(300 * time.Millisecond)
	rec.Stop(syscall.SIGINT)
	var classes []string
	for _, a := range attackChecks(t, rec.Lines()) {
		if a.ProcessKprobe != nil {
			classes = append(classes, a.ProcessKprobe.Capsrec.Class)
		}
	}
	if len(classes) == 0 || slices.ContainsFunc(classes, func(c string) bool { return c != "need" }) {
		t.Fatalf("io_uring's open under the process's own credentials: classes %v, want needs", classes)
	}
	var add []string
	for _, sub := range profileOf(t, rec.AllLines()).Subjects {
		if filepath.Base(sub.Binary) == "uring" {
			add = sub.Recommendation.Add
		}
	}
	if len(add) == 0 {
		t.Fatalf("uring's add = %v, want DAC_OVERRIDE", add)
	}
	// Replayed: the bounding set holds exactly the add list, then nothing.
	for _, c := range []struct {
		caps string
		ok   bool
	}{{"-all,+" + strings.ToLower(strings.Join(add, ",+")), true}, {"-all", false}} {
		err := exec.Command("setpriv", "--bounding-set="+c.caps, "--inh-caps=-all", bin, file).Run()
		if (err == nil) != c.ok {
			t.Errorf("uring with the bounding set %s: %v, want success %v", c.caps, err, c.ok)
		}
	}
}
