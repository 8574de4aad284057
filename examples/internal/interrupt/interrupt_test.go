//go:build unix

package interrupt

import (
	"context"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSignalCancelsWithItsExitCode(t *testing.T) {
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		ctx, stop := Context(context.Background())
		assert.Zero(t, ExitCode(ctx))
		require.NoError(t, syscall.Kill(syscall.Getpid(), tc.sig))
		<-ctx.Done()
		assert.Equal(t, tc.code, ExitCode(ctx))
		require.NotNil(t, Cause(ctx))
		assert.Equal(t, tc.sig, Cause(ctx).Signal)
		assert.ErrorContains(t, context.Cause(ctx), "interrupted by SIG")
		stop()
	}
}

func TestStopIsNoSignal(t *testing.T) {
	ctx, stop := Context(context.Background())
	stop()
	<-ctx.Done()
	assert.Zero(t, ExitCode(ctx))
	assert.Nil(t, Cause(ctx))
}
