//go:build !cgo || !linux

package cuda

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOpenWithoutCgo(t *testing.T) {
	_, err := Open(context.Background(), 0)
	assert.ErrorIs(t, err, ErrNoDriver)
	assert.ErrorContains(t, err, "without cgo")
	_, err = loadNVRTC()
	assert.ErrorIs(t, err, ErrNoNVRTC)

	h, err := NewHost()
	require.NoError(t, err)
	defer h.Close()
	_, err = h.Load(context.Background(), emuTestProgram)
	assert.ErrorIs(t, err, ErrNoEmulator)
	assert.ErrorContains(t, err, "without cgo")
	// A program with Go twins loads; its other kernels cannot run.
	m, err := h.Load(context.Background(), &Program{Name: "p", Source: testKernelsSource, Host: map[string]HostKernel{"vadd": testProgram.Host["vadd"]}})
	require.NoError(t, err)
	_, err = m.Kernel("vadd")
	require.NoError(t, err)
	_, err = m.Kernel("axpy")
	assert.ErrorIs(t, err, ErrNoEmulator)
}
