package cuda

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every call on a stream or an event is counted by kind, failed ones too.
func TestCalls(t *testing.T) {
	ctx := context.Background()
	d, err := NewHost()
	require.NoError(t, err)
	defer d.Close()
	s, err := d.NewStream()
	require.NoError(t, err)
	e, err := d.NewEvent(0)
	require.NoError(t, err)
	b, err := d.Alloc(64)
	require.NoError(t, err)

	before := d.Calls()
	require.NoError(t, s.CopyHtoD(b, 0, make([]byte, 64)))
	require.NoError(t, s.Memset(b, 0, 64, 0))
	require.NoError(t, s.CopyDtoH(make([]byte, 64), b, 0))
	assert.Error(t, s.CopyDtoD(b, 0, b, 32, 64), "out of range: refused, still counted")
	require.NoError(t, s.Record(e))
	require.NoError(t, s.Wait(e))
	_, err = e.Query()
	require.NoError(t, err)
	require.NoError(t, e.Synchronize(ctx))
	require.NoError(t, s.Synchronize(ctx))
	require.NoError(t, d.Synchronize(ctx))

	got := d.Calls().Sub(before)
	want := Calls{Copies: 4, Events: 2, Queries: 1, Syncs: 3}
	// The device's Synchronize synchronizes each stream, which counts too.
	assert.Equal(t, want.Copies, got.Copies)
	assert.Equal(t, want.Events, got.Events)
	assert.Equal(t, want.Queries, got.Queries)
	assert.GreaterOrEqual(t, got.Syncs, want.Syncs)
	assert.Zero(t, got.Launches)
	assert.Equal(t, got.Copies+got.Events+got.Queries+got.Syncs, got.Total())
}
