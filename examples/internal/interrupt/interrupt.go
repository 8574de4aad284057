package interrupt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// signals are the signals Context stops on.
var signals = []os.Signal{os.Interrupt, syscall.SIGTERM}

// Error is the cause of a context that a signal cancelled.
type Error struct{ Signal os.Signal }

func (e *Error) Error() string {
	switch e.Signal {
	case os.Interrupt:
		return "interrupted by SIGINT"
	case syscall.SIGTERM:
		return "interrupted by SIGTERM"
	}
	return fmt.Sprintf("interrupted by %v", e.Signal)
}

// Context returns a context cancelled at the first SIGINT or SIGTERM, with an
// *Error as its cause (context.Cause). After that signal, the signals act
// as they did before, so a second one ends the program at once. stop
// releases the signals and cancels the context.
func Context(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, signals...)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			signal.Stop(ch)
			cancel(&Error{Signal: s})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(context.Canceled)
	}
}

// Cause returns the signal's *Error if one cancelled ctx, or nil.
func Cause(ctx context.Context) *Error {
	var e *Error
	if errors.As(context.Cause(ctx), &e) {
		return e
	}
	return nil
}

// ExitCode is the exit status of a program that a signal stopped, as a
// shell reports it: 128 plus the signal's number (130 for SIGINT, 143 for
// SIGTERM); 0 if no signal cancelled ctx.
func ExitCode(ctx context.Context) int {
	e := Cause(ctx)
	if e == nil {
		return 0
	}
	if s, ok := e.Signal.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 130
}
