// Package filter decides which checks are printed: the parts the kernel can
// decide become BPF configuration, the rest run in user space.
package filter

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/capsrec/capsrec/core"
	"github.com/capsrec/capsrec/internal/caps"
)

// Options are capsrec record's filter flags.
type Options struct {
	Pids     []int
	Comm     string
	Binaries []string // a glob on the whole path when it holds a '/', else on the base name
	Caps     []string // any spelling caps.Parse takes
	Denied   bool
	Granted  bool
	Unique   bool // each binary + capability + verdict once (per container)
}

// Filter is the user-space half.
type Filter struct {
	binaries []binaryPattern
	unique   bool
	seen     map[uniqueKey]struct{}
	// Unremembered counts --unique checks printed without being remembered,
	// past MaxUnique keys.
	Unremembered uint64
}

type uniqueKey struct {
	binary, container string
	cap               int32
	granted           bool
	class             core.Class // with --all a probe must not hide the same binary's need
}

// New validates opts and splits them into the kernel's half (written into cfg)
// and the user-space Filter.
func New(opts Options, cfg *core.KernelFilter) (*Filter, error) {
	if opts.Denied && opts.Granted {
		return nil, errors.New("--denied and --granted exclude each other: give at most one")
	}
	switch {
	case opts.Denied:
		cfg.Verdict = core.VerdictDenied
	case opts.Granted:
		cfg.Verdict = core.VerdictGranted
	}
	for _, p := range opts.Pids {
		if p <= 0 || p > 1<<22 {
			return nil, fmt.Errorf("--pid %d is not a process id", p)
		}
		cfg.Pids = append(cfg.Pids, uint32(p))
	}
	if len(opts.Comm) > 15 {
		return nil, fmt.Errorf("--comm %q is longer than the 15 characters the kernel keeps", opts.Comm)
	}
	cfg.Comm = opts.Comm
	for _, s := range opts.Caps {
		for part := range strings.SplitSeq(s, ",") {
			v, err := caps.Parse(part)
			if err != nil {
				return nil, fmt.Errorf("--cap: %w", err)
			}
			cfg.CapMask |= 1 << uint(v)
		}
	}
	f := &Filter{unique: opts.Unique}
	for _, b := range opts.Binaries {
		re, err := globRegexp(b)
		if err != nil || b == "" {
			return nil, fmt.Errorf("--binary %q is not a path or glob", b)
		}
		f.binaries = append(f.binaries, binaryPattern{re: re, whole: strings.Contains(b, "/")})
	}
	if opts.Unique {
		f.seen = map[uniqueKey]struct{}{}
	}
	return f, nil
}

// Matches applies the filters that select checks (--binary).
func (f *Filter) Matches(c *core.Check) bool {
	if len(f.binaries) == 0 {
		return true
	}
	// By the name it was run by, or by what ran: a symlink or an fd exec
	// must not hide a binary from --binary.
	return f.binaryMatches(c.Process.Binary) || (c.Process.RealBinary != "" && f.binaryMatches(c.Process.RealBinary))
}

// MaxUnique bounds the keys --unique remembers.
const MaxUnique = 1 << 14

// First tells, with --unique, whether c is the first of its binary, capability
// and verdict (and container); without --unique every check is.
func (f *Filter) First(c *core.Check) bool {
	if f.unique {
		k := uniqueKey{binary: c.Process.Binary, cap: c.Cap, granted: c.Granted(), class: c.Class}
		if k.binary == "" {
			k.binary = c.Comm
		}
		if c.Container != nil {
			k.container = c.Container.ID
		}
		if _, dup := f.seen[k]; dup {
			return false
		}
		// Any user can make binary names without end: past the bound a new
		// key prints, unremembered (it may print again), and is counted.
		if len(f.seen) >= MaxUnique {
			f.Unremembered++
			return true
		}
		f.seen[k] = struct{}{}
	}
	return true
}

// binaryPattern matches the whole path when the user wrote a '/', else the base name.
type binaryPattern struct {
	re    *regexp.Regexp
	whole bool
}

func (f *Filter) binaryMatches(binary string) bool {
	for _, p := range f.binaries {
		subject := binary
		if !p.whole {
			subject = path.Base(binary)
		}
		if p.re.MatchString(subject) {
			return true
		}
	}
	return false
}

// globRegexp compiles a shell glob in which, unlike path.Match, '*' also
// crosses '/': "*/bin/ip" matches /usr/sbin/... as a user would expect.
func globRegexp(glob string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("(?s)^") // a name may hold a newline: '*' matches it too
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '[':
			end := strings.IndexByte(glob[i+1:], ']')
			if end < 0 {
				return nil, errors.New("unclosed [")
			}
			class := glob[i+1 : i+1+end]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + class + "]")
			i += end + 1
		default:
			b.WriteString(regexp.QuoteMeta(glob[i : i+1])) // bytes, so UTF-8 stays whole
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// Pods selects containers by namespace, pod and container name: globs
// (path.Match), each list matching when it is empty or one of its globs does.
// record's pod filters and profile's subject filters are both this.
type Pods struct {
	Namespaces, Pods, Containers []string
}

// Validate rejects an empty or malformed glob, naming its flag.
func (f Pods) Validate() error {
	for _, l := range []struct {
		flag  string
		globs []string
	}{{"--namespace", f.Namespaces}, {"--pod", f.Pods}, {"--container", f.Containers}} {
		for _, g := range l.globs {
			if _, err := path.Match(g, ""); err != nil || g == "" {
				return fmt.Errorf("%s %q: bad glob, want a name or a glob", l.flag, g)
			}
		}
	}
	return nil
}

// Any tells whether no name is selected: everything matches.
func (f Pods) Any() bool { return len(f.Namespaces)+len(f.Pods)+len(f.Containers) == 0 }

// Match tells whether a container passes.
func (f Pods) Match(namespace, pod, container string) bool {
	return anyGlob(f.Namespaces, namespace) && anyGlob(f.Pods, pod) && anyGlob(f.Containers, container)
}

// anyGlob tells whether v matches one of the path.Match globs; no globs match everything.
func anyGlob(globs []string, v string) bool {
	if len(globs) == 0 {
		return true
	}
	for _, g := range globs {
		if ok, _ := path.Match(g, v); ok {
			return true
		}
	}
	return false
}
