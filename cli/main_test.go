package cli

import (
	"os"
	"testing"

	"github.com/capsrec/capsrec/internal/cmdgate"
)

// The test binary is also record -- COMMAND's gate, as capsrec's main is.
func TestMain(m *testing.M) {
	if cmdgate.IsGate() {
		cmdgate.Exec()
	}
	os.Exit(m.Run())
}
