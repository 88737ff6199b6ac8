package profile

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/capsrec/capsrec/internal/boundedfile"
	"github.com/capsrec/capsrec/tetragon"
)

// ReadOptions tune reading JSON lines.
type ReadOptions struct {
	// SkipInvalid counts malformed lines instead of stopping at the first.
	SkipInvalid bool
	// Workers parse in parallel; 0 uses every CPU.
	Workers int
	// Filter keeps only matching subjects.
	Filter Filter
	// Since, when set, keeps only the checks made from then on.
	Since time.Time
}

// ReadFiles profiles JSON lines from capsrec or Tetragon (`tetra getevents -o json`)
// in files, plain or gzip; "-" is stdin. Several files (one per node) merge.
func ReadFiles(paths []string, stdin io.Reader, opts ReadOptions) (*Profile, error) {
	p := New()
	for _, path := range paths {
		if err := readPath(path, stdin, opts, p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func readPath(path string, stdin io.Reader, opts ReadOptions, p *Profile) error {
	if path == "-" {
		return Read("-", stdin, opts, p)
	}
	f, err := boundedfile.Open(path, 0)
	if errors.Is(err, boundedfile.ErrNotRegular) {
		return fmt.Errorf("%w; to read a stream, pipe it: ... | capsrec profile -", err)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return Read(path, f, opts, p)
}

// Bounds on what one input may hold, so that memory stays bounded whatever it
// is: a JSON line (capsrec's events are about 3 KiB), and a whole indented
// document (indented JSON is read at once: a few thousand events; more come as
// JSON lines).
const (
	MaxLine   = 1 << 20
	MaxPretty = 8 << 20
)

// Read adds the events of r, named name in errors, to p.
func Read(name string, r io.Reader, opts ReadOptions, p *Profile) error {
	br := bufio.NewReaderSize(r, 1<<20)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	// A byte order mark (editors on Windows write one) is not JSON: skip it.
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte{0xef, 0xbb, 0xbf}) {
		_, _ = br.Discard(3)
	}
	if pretty, err := isPretty(br); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	} else if pretty {
		return readPretty(name, br, opts, p)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}

	type batch struct {
		first int // line number of the first line
		data  []byte
	}
	batches := make(chan batch, workers*2)
	type lineErr struct {
		line int
		err  error
	}
	results := make([]*Profile, workers)
	firstErr := make([]*lineErr, workers) // per worker, the lowest line that failed
	var minFailed atomic.Int64            // the lowest line that failed so far; MaxInt64: none
	minFailed.Store(math.MaxInt64)
	var wg sync.WaitGroup
	for w := range workers {
		results[w] = New()
		wg.Add(1)
		go func() {
			defer wg.Done()
			wp := results[w]
			for b := range batches {
				if int64(b.first) > minFailed.Load() {
					continue // drain: lines past a failed one do not matter
				}
				n := b.first
				for line := range bytes.SplitSeq(b.data, []byte{'\n'}) {
					if len(bytes.TrimSpace(line)) > 0 {
						if err := wp.take(line, opts); err != nil {
							if firstErr[w] == nil || n < firstErr[w].line {
								firstErr[w] = &lineErr{n, err}
							}
							for old := minFailed.Load(); int64(n) < old && !minFailed.CompareAndSwap(old, int64(n)); old = minFailed.Load() {
							}
							break
						}
					}
					n++
				}
			}
		}()
	}

	// Blocks of whole lines go to the workers; the reader only looks for the last newline.
	var readErr error
	line := 1
	const blockSize = 1 << 20
	var carry []byte
	skipping := false                       // in a line too long, with --skip-invalid: drop to its end
	for minFailed.Load() == math.MaxInt64 { // a failed line ends the read
		block := make([]byte, len(carry), max(blockSize, len(carry)+blockSize/2))
		copy(block, carry)
		n, err := io.ReadFull(br, block[len(block):cap(block)])
		block = block[:len(block)+n]
		eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !eof {
			readErr = fmt.Errorf("%s: %w", name, err)
			break
		}
		if skipping {
			nl := bytes.IndexByte(block, '\n')
			if nl < 0 {
				carry = nil
				if eof {
					break
				}
				continue
			}
			block, skipping = block[nl+1:], false
			line++
		}
		cut := len(block)
		if !eof {
			cut = bytes.LastIndexByte(block, '\n') + 1
			if cut == 0 { // one line longer than the block: read on, up to MaxLine
				if len(block) > MaxLine {
					if !opts.SkipInvalid {
						readErr = fmt.Errorf("%s:%d: a line longer than %d bytes", name, line, MaxLine)
						break
					}
					p.Skipped++
					skipping, carry = true, nil
					continue
				}
				carry = block
				continue
			}
		}
		if cut > 0 {
			batches <- batch{first: line, data: bytes.TrimSuffix(block[:cut], []byte{'\n'})}
			line += bytes.Count(block[:cut], []byte{'\n'})
		}
		carry = block[cut:]
		if eof {
			break
		}
	}
	close(batches)
	wg.Wait()
	var first *lineErr
	for _, e := range firstErr {
		if e != nil && (first == nil || e.line < first.line) {
			first = e
		}
	}
	if first != nil {
		return fmt.Errorf("%s:%d: %v", name, first.line, first.err)
	}
	if readErr != nil {
		return readErr
	}
	for _, wp := range results {
		p.Merge(wp)
	}
	return nil
}

// isPretty tells indented JSON (jq's, or Tetragon's documentation's) from
// JSON lines: it opens with a lone "{" on its first line, or with "[".
func isPretty(br *bufio.Reader) (bool, error) {
	head, err := br.Peek(4096)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return false, err
	}
	t := bytes.TrimLeft(head, " \t\r\n")
	if len(t) > 0 && t[0] == '[' {
		return true, nil
	}
	first, _, _ := bytes.Cut(t, []byte{'\n'})
	return string(bytes.TrimSpace(first)) == "{", nil
}

// readPretty reads a stream of indented JSON values, or one array of them.
func readPretty(name string, r io.Reader, opts ReadOptions, p *Profile) error {
	data, err := io.ReadAll(io.LimitReader(r, MaxPretty+1))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > MaxPretty {
		return fmt.Errorf("%s: indented JSON larger than %d MiB; give JSON lines (one event a line), as capsrec record -o json writes", name, MaxPretty>>20)
	}
	lineAt := func(start int) int { return 1 + bytes.Count(data[:start], []byte{'\n'}) }
	err = tetragon.Values(data, func(event []byte, start int) error {
		if err := p.take(event, opts); err != nil {
			return fmt.Errorf("%s:%d: %v", name, lineAt(start), err)
		}
		return nil
	})
	if ve := (*tetragon.ValueError)(nil); errors.As(err, &ve) {
		return fmt.Errorf("%s:%d: %v", name, lineAt(ve.Start), ve.Err)
	}
	return err
}

// take parses one event into p; an error is one the caller must report (not
// another hook's event, not a line --skip-invalid passes over).
func (p *Profile) take(event []byte, opts ReadOptions) error {
	o, err := parseEvent(event)
	switch {
	case err == nil:
		if o.session != nil || keep(opts.Filter, o) && !o.Time.Before(opts.Since) {
			p.Add(o)
		}
	case errors.Is(err, errNotCheck):
		p.Ignored++
	case opts.SkipInvalid:
		p.Skipped++
	default:
		return err
	}
	return nil
}
