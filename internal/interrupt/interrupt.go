// Package interrupt gives the context every command stops on.
package interrupt

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// Context is a context that Ctrl-C or SIGTERM ends: every command stops
// cleanly on either.
func Context() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
