package rotary

import (
	"context"
	"testing"
	"time"

	"github.com/rotary-moe/rotary/experts"
	"github.com/stretchr/testify/require"
)

func TestOpenShapePreset(t *testing.T) {
	start := time.Now()
	w, err := experts.SyntheticWriter("qwen35moe-35b-a3b")
	require.NoError(t, err)
	m, err := OpenShape(context.Background(), w, t.TempDir())
	require.NoError(t, err)
	defer m.Close()
	t.Log(time.Since(start), m.File.Size(), m.File.DataOffset(), m.TotalExpertBytes(), m.NonExpertBytes(), len(m.MoELayers()), m.ExpertBytes(0))
	p, err := NewPlan(m, WithVRAM(16<<30))
	require.NoError(t, err)
	t.Log(p)
}
