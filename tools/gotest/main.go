// Command gotest runs go test with -json and reports as go test does, plus
// what go test hides for passing packages: every skipped test and why, so
// that a test that did not run is never silent (make test).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

// event is test2json's.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

type key struct{ pkg, test string }

func main() {
	code, err := run(os.Args[1:], os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gotest:", err)
		code = 1
	}
	os.Exit(code)
}

func run(args []string, w io.Writer) (int, error) {
	cmd := exec.Command("go", append([]string{"test", "-json"}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 1, err
	}
	if err := cmd.Start(); err != nil {
		return 1, err
	}
	failed, skips := report(out, w)
	err = cmd.Wait()
	if len(skips) > 0 {
		fmt.Fprintf(w, "\n%d tests skipped:\n", len(skips))
		for _, s := range skips {
			fmt.Fprintln(w, "  "+s)
		}
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), nil
	case err != nil:
		return 1, err
	case failed:
		return 1, nil
	}
	return 0, nil
}

// report prints each package's result as it ends, a failed test's output in
// full, and returns the skipped tests with their reasons.
func report(r io.Reader, w io.Writer) (failed bool, skips []string) {
	output := map[key][]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			fmt.Fprintln(w, sc.Text()) // not test2json's: pass it on
			continue
		}
		k := key{ev.Package, ev.Test}
		switch ev.Action {
		case "output":
			output[k] = append(output[k], ev.Output)
		case "skip":
			if ev.Test != "" {
				skips = append(skips, fmt.Sprintf("%s %s: %s", ev.Package, ev.Test, skipReason(output[k])))
			} else {
				fmt.Fprintf(w, "?   \t%s\t[no test files]\n", ev.Package)
			}
			delete(output, k)
		case "pass":
			delete(output, k)
			if ev.Test == "" {
				fmt.Fprintf(w, "ok  \t%s\t%.3fs\n", ev.Package, ev.Elapsed)
			}
		case "fail":
			failed = true
			// A package's output ends with go test's own FAIL lines: printed once, here.
			for _, line := range output[k] {
				if ev.Test != "" || !strings.HasPrefix(line, "FAIL") {
					fmt.Fprint(w, line)
				}
			}
			if ev.Test == "" {
				fmt.Fprintf(w, "FAIL\t%s\t%.3fs\n", ev.Package, ev.Elapsed)
			}
			delete(output, k)
		}
	}
	sort.Strings(skips)
	return failed, skips
}

// skipReason is what the test logged before it skipped (t.Skip's message is
// its last line), without go test's own markers.
func skipReason(lines []string) string {
	var reason []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
			continue
		}
		reason = append(reason, t)
	}
	if len(reason) == 0 {
		return "(no reason given)"
	}
	return strings.Join(reason, " ")
}
