// Package testutil runs the real capsrec binary for tests, and holds the
// guard that turns a skipped privileged test into a failure where CI promised it runs.
package testutil

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/capsrec/capsrec/internal/procfs"
	"github.com/capsrec/capsrec/kubectl/nodepod"
)

// RequireEnv makes skips of privileged tests fatal: .ci/run and the VM matrix set it.
const RequireEnv = "CAPSREC_REQUIRE_PRIVILEGED"

// Skip skips, or fails where RequireEnv is set: a test that CI promised must not skip.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s is set, but this test would skip: %s", RequireEnv, msg)
	}
	t.Skip(msg)
}

// RequireRoot skips (or fails, under RequireEnv) unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root to load BPF programs")
	}
}

// Slow is how much longer than usual things take: the VM matrix runs under
// software emulation and sets CAPSREC_TEST_SLOW.
func Slow() time.Duration {
	if os.Getenv("CAPSREC_TEST_SLOW") != "" {
		return 10
	}
	return 1
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary is the capsrec binary under test: $CAPSREC_BIN, or one built once from this module.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CAPSREC_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		// One binary in the repository's ignored cache, rebuilt (from the
		// build cache: quickly) by each test binary and renamed into place,
		// so that runs side by side each see a whole one and none leaves a copy.
		dir := filepath.Join(Root(), ".cache", "test-bin")
		if buildErr = os.MkdirAll(dir, 0o755); buildErr != nil {
			return
		}
		tmp, err := os.CreateTemp(dir, "capsrec-*")
		if err != nil {
			buildErr = err
			return
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		cmd := exec.Command("go", "build", "-o", tmp.Name(), ".")
		cmd.Dir = Root()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		binPath = filepath.Join(dir, "capsrec")
		buildErr = os.Rename(tmp.Name(), binPath)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Root is the repository's top folder: $CAPSREC_ROOT, else this source file's
// repository when it is at hand, else the working directory (a test binary
// copied into a qemu guest, with testdata beside it).
func Root() string {
	if r := os.Getenv("CAPSREC_ROOT"); r != "" {
		return r
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
		return root
	}
	return "."
}

// Session is a running `capsrec record`.
type Session struct {
	t      testing.TB
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  [][]byte
	stderr bytes.Buffer
	done   chan struct{}
	// Exit is set once the process has ended.
	Exit error
}

// Record starts `capsrec record ARGS --ready-file F` and returns once the hooks are attached.
func Record(t testing.TB, args ...string) *Session {
	t.Helper()
	return RecordGated(t, nil, args...)
}

// RecordGated is Record whose stdout is not read until gate is closed (nil: at once),
// so that a test can stall capsrec's writes and fill the ring buffer.
func RecordGated(t testing.TB, gate <-chan struct{}, args ...string) *Session {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	return StartReady(t, gate, ready, Binary(t), append([]string{"record", "--ready-file", ready}, args...)...)
}

// StartReady starts bin with args, which must make it write the file ready
// once it records (kubectl-capsrec record POD --ready-file F), and returns then.
func StartReady(t testing.TB, gate <-chan struct{}, ready, bin string, full ...string) *Session {
	t.Helper()
	s := &Session{t: t, cmd: exec.Command(bin, full...), done: make(chan struct{})}
	s.cmd.Stderr = &s.stderr
	// Every fast call-site walk is checked against the kernel's unwinder; Wait
	// fails the test if one ever disagreed.
	s.cmd.Env = append(os.Environ(), "NO_COLOR=1", "CAPSREC_VERIFY_CALL_SITES=1")
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		if gate != nil {
			<-gate
		}
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, append([]byte(nil), sc.Bytes()...))
			s.mu.Unlock()
		}
		s.Exit = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	deadline := time.Now().Add(60 * time.Second * Slow())
	for {
		if _, err := os.Stat(ready); err == nil {
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("capsrec %s exited before it was ready: %v\n%s", strings.Join(full, " "), s.Exit, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("capsrec not ready after %s\n%s", 60*time.Second*Slow(), s.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Lines returns the stdout lines so far that are checks.
func (s *Session) Lines() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var checks [][]byte
	for _, l := range s.lines {
		if !bytes.HasPrefix(l, []byte(`{"process_exec"`)) && !bytes.HasPrefix(l, []byte(`{"capsrec_summary"`)) {
			checks = append(checks, l)
		}
	}
	return checks
}

// AllLines are every line written: checks, and with -o json the containers'
// process_exec events and the closing capsrec_summary.
func (s *Session) AllLines() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.lines...)
}

// WaitFor polls until match accepts some line, and returns it.
func (s *Session) WaitFor(what string, match func([]byte) bool) []byte {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second * Slow())
	for time.Now().Before(deadline) {
		for _, l := range s.Lines() {
			if match(l) {
				return l
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("no line with %s after %s; got %d lines; stderr:\n%s", what, 10*time.Second*Slow(), len(s.Lines()), s.Stderr())
	return nil
}

// Stop sends sig, waits for the exit and fails the test unless it was clean (exit 0).
func (s *Session) Stop(sig syscall.Signal) {
	s.t.Helper()
	_ = s.cmd.Process.Signal(sig)
	s.Wait()
}

// Wait waits for the exit and fails the test unless it was clean.
func (s *Session) Wait() {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(20 * time.Second * Slow()):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.t.Fatalf("capsrec did not exit; stderr:\n%s", s.Stderr())
	}
	if s.Exit != nil {
		s.t.Fatalf("capsrec exited with %v; stderr:\n%s", s.Exit, s.Stderr())
	}
	if strings.Contains(s.Stderr(), "call-site walk disagreed") {
		s.t.Errorf("the fast call-site walk and the kernel's unwinder disagreed:\n%s", s.Stderr())
	}
}

// Kill ends the process with SIGKILL, as a user's kill -9 or an OOM kill does.
func (s *Session) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Done is closed when the process has exited.
func (s *Session) Done() <-chan struct{} { return s.done }

// Stderr is what capsrec wrote to stderr.
func (s *Session) Stderr() string {
	select {
	case <-s.done:
		return s.stderr.String()
	default:
		return "(still running)"
	}
}

// capsrecPrograms are the names of capsrec's programs. The kernel keeps 15
// characters; cilium/ebpf gives the whole name back where BTF has it.
var capsrecPrograms = []string{"tp_cap_capable", "fexit_cap_capable", "fexit_cap_capable_legacy", "kprobe_cap_capable",
	"kretprobe_cap_capable", "sched_process_exec", "sched_process_fork", "sched_process_exit",
	"raw_sched_process_exec", "raw_sched_process_fork", "raw_sched_process_exit"}

// IsCapsrecProgram tells whether a loaded program's name is one of capsrec's, whole or truncated.
func IsCapsrecProgram(name string) bool {
	for _, n := range capsrecPrograms {
		if name == n || (len(name) == 15 && strings.HasPrefix(n, name)) {
			return true
		}
	}
	return false
}

// LeftoverPrograms lists capsrec programs still loaded in the kernel that are
// this test's: held by no process (a leak: a link or pin keeps it), or by the
// test or a process it started (its capsrec still running, a child that
// inherited an fd), or by a node pod's recorder (kubectl capsrec's). Another
// capsrec on the host, a standing recorder on the node, is not the test's: a
// busy machine does not fail it.
func LeftoverPrograms() ([]string, error) {
	holders, err := programHolders()
	if err != nil {
		return nil, err
	}
	var left []string
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return left, nil
		}
		if err != nil {
			return nil, err
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // gone meanwhile
		}
		info, err := p.Info()
		p.Close()
		if err != nil || !IsCapsrecProgram(info.Name) {
			continue
		}
		pids := holders[uint32(id)]
		if len(pids) > 0 && !slices.ContainsFunc(pids, ours) {
			continue // another capsrec's
		}
		left = append(left, fmt.Sprintf("%s (id %d, held by %v)", info.Name, id, pids))
	}
}

// programHolders maps BPF program ids to the processes holding an fd of
// them (the program's own, or a link's), from /proc/PID/fdinfo.
func programHolders() (map[uint32][]int, error) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	holders := map[uint32][]int{}
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name(), "fdinfo")
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			data, err := os.ReadFile(filepath.Join(dir, fd.Name()))
			if err != nil {
				continue
			}
			for line := range strings.SplitSeq(string(data), "\n") {
				if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
					if id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
						holders[uint32(id)] = append(holders[uint32(id)], pid)
					}
				}
			}
		}
	}
	return holders, nil
}

// ours tells whether pid is this test, a process it started, or a node pod's recorder.
func ours(pid int) bool {
	if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil && slices.Contains(strings.Split(string(env), "\x00"), nodepod.Env+"=1") {
		return true
	}
	self := os.Getpid()
	for range 64 { // up the parents
		if pid == self {
			return true
		}
		if pid <= 1 {
			return false
		}
		st, ok := procfs.ReadStat(fmt.Sprintf("/proc/%d", pid))
		if !ok {
			return false
		}
		pid = int(st.PPid)
	}
	return false
}

// AssertNothingLeft fails if any of this test's capsrec programs is still in
// the kernel (LeftoverPrograms).
func AssertNothingLeft(t testing.TB) {
	t.Helper()
	// Links close as the process exits; the kernel frees programs right after.
	deadline := time.Now().Add(5 * time.Second * Slow())
	for {
		left, err := LeftoverPrograms()
		if err != nil {
			t.Fatalf("listing BPF programs: %v", err)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("BPF programs left after capsrec exited: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Golden compares got with the file at path; with update it writes the file first.
func Golden(t testing.TB, path string, got []byte, update bool) {
	t.Helper()
	if update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs; got:\n%s", path, got)
	}
}

// FakeELF writes the smallest ELF executable header for machine at path: what
// is read of a binary before it is copied or packed (its architecture, and
// with interp a PT_INTERP program header: dynamically linked).
func FakeELF(t testing.TB, path string, machine elf.Machine, interp bool) string {
	t.Helper()
	b := make([]byte, 64)
	copy(b, "\x7fELF\x02\x01\x01")
	le := binary.LittleEndian
	le.PutUint16(b[16:], uint16(elf.ET_EXEC))
	le.PutUint16(b[18:], uint16(machine))
	le.PutUint32(b[20:], 1)
	le.PutUint16(b[52:], 64)
	le.PutUint16(b[54:], 56)
	le.PutUint16(b[58:], 64)
	if interp {
		le.PutUint64(b[32:], 64) // e_phoff
		le.PutUint16(b[56:], 1)  // e_phnum
		ph := make([]byte, 56)
		le.PutUint32(ph[0:], uint32(elf.PT_INTERP))
		b = append(b, ph...)
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}
