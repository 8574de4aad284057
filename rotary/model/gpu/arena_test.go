package gpu

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/cuda"
)

// The arena hands out aligned, disjoint buffers; a step that outgrows it
// gets more chunks, and the next step one chunk of the total, at the same
// address from then on.
func TestArena(t *testing.T) {
	dev, err := cuda.NewHost()
	require.NoError(t, err)
	defer dev.Close()
	a := arena{dev: dev}

	zero, err := a.take(0)
	require.NoError(t, err)
	assert.True(t, zero.IsZero(), "no bytes, no buffer")
	_, err = a.take(-1)
	assert.Error(t, err)

	step := func() []cuda.Buffer {
		var bufs []cuda.Buffer
		for _, n := range []int64{1, 300, minArena, 5 * minArena} {
			b, err := a.take(n)
			require.NoError(t, err)
			assert.Zero(t, b.Addr()%arenaAlign, "aligned")
			assert.GreaterOrEqual(t, b.Size(), n)
			for _, o := range bufs {
				assert.True(t, b.Addr() >= o.Addr()+uint64(o.Size()) || o.Addr() >= b.Addr()+uint64(b.Size()), "disjoint")
			}
			bufs = append(bufs, b)
		}
		return bufs
	}
	step()
	assert.Greater(t, len(a.chunks), 1, "the first step grew the arena")
	require.NoError(t, a.reset())
	require.Len(t, a.chunks, 1, "one chunk of the last step's total")
	second := step()
	require.Len(t, a.chunks, 1, "the same step fits")
	require.NoError(t, a.reset())
	assert.Equal(t, second, step(), "the same addresses step after step")
	require.NoError(t, a.free())
	assert.Zero(t, dev.Stats().DeviceBuffers)
}
