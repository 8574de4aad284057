package rotary

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/stretchr/testify/require"
)

func TestSmoke(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	start := time.Now()
	require.NoError(t, experts.WriteSynthetic(context.Background(), path, "qwen3moe-tiny"))
	t.Log("write", time.Since(start))
	m, err := experts.OpenModel(path)
	require.NoError(t, err)
	defer m.Close()
	for _, l := range m.MoELayers() {
		t.Log(l, m.ExpertBytes(l))
	}
	dev, err := cuda.NewHost()
	require.NoError(t, err)
	defer dev.Close()
	for _, hb := range []int64{-1, 3 * m.ExpertBytes(0) * 8} {
		opts := []Option{WithSlots(6)}
		if hb > 0 {
			opts = append(opts, WithHostBudget(hb))
		}
		p, err := NewPlan(m, opts...)
		require.NoError(t, err)
		t.Log(p)
		r, err := Open(m, dev, opts...)
		require.NoError(t, err)
		s, _ := dev.NewStream()
		set, err := r.Acquire(context.Background(), 0, []int{1, 2, 3, 4}, s)
		require.NoError(t, err)
		require.NoError(t, s.Synchronize(context.Background()))
		for _, v := range set.Experts {
			var off int64
			for _, p := range v.Parts {
				got, err := dev.Bytes(p.Buf)
				require.NoError(t, err)
				e, _ := m.Expert(0, v.Expert)
				want := make([]byte, p.Size)
				_, err = m.File.ReadAt(want, e.Parts[0].Offset*0+partOffset(e, p.Role))
				require.NoError(t, err)
				require.Equal(t, want, got)
				off += p.Size
			}
		}
		require.NoError(t, r.Release(set, nil))
		t.Logf("%+v", r.Stats())
		s.Close()
		require.NoError(t, r.Close())
		t.Logf("%+v", dev.Stats())
	}
}

func partOffset(e experts.Expert, role experts.PartRole) int64 {
	for _, p := range e.Parts {
		if p.Role == role {
			return p.Offset
		}
	}
	return -1
}
