package device

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/cuda/cudatest"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/internal/shared"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/sim"
)

// TestResolveDeepSeekTrace replays a real routing, DeepSeek-V2-Lite's
// (64 experts, top 6), through the resolve kernel on the emulated device and
// through the residency core, with 8 dynamic slots under LRU and LFU: the
// same misses and victims at every step of three layers (the whole trace
// with ROTARY_FULL_TRACES set, else its first 1500 tokens). The core is what
// rotary/sim replays against the trace's independent LRU and LFU figures.
func TestResolveDeepSeekTrace(t *testing.T) {
	path := shared.TracePath(t, "deepseek-v2-lite-chat", "puffin_prefill_csv")
	tr, err := profile.OpenTrace(bg, path)
	require.NoError(t, err)
	tokens := tr.Tokens()
	if os.Getenv("ROTARY_FULL_TRACES") == "" {
		tokens = min(tokens, 1500)
	}
	w, err := synth.ShapeWriter(sim.ShapeOf(tr, 64, 32, 0))
	require.NoError(t, err)
	m, err := synth.OpenShape(w, t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	layers := m.MoELayers()[:3]

	for _, policy := range []rotary.Policy{rotary.LRU, rotary.LFU} {
		t.Run(policy.Name(), func(t *testing.T) {
			dev, err := cuda.NewHost()
			require.NoError(t, err)
			t.Cleanup(func() { dev.Close() })
			s, err := dev.NewStream()
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			rt, err := rotary.Open(bg, m, dev, rotary.WithSlots(8), rotary.WithPolicy(policy), rotary.WithDeviceResidency())
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, rt.Close()) })
			r, err := New(bg, dev, rt)
			cudatest.Skip(t, err)
			t.Cleanup(func() { require.NoError(t, r.Close()) })

			k := tr.Model().ExpertsUsed
			ids, err := dev.Alloc(4 * int64(k))
			require.NoError(t, err)
			slotIds, err := dev.Alloc(4 * int64(k))
			require.NoError(t, err)
			t.Cleanup(func() { dev.Free(ids); dev.Free(slotIds) })
			var routed []int32
			for _, l := range layers {
				res, counts, err := r.Tables(bg, s, l)
				require.NoError(t, err)
				tab := twin(t, res, counts)
				var misses uint64
				for tok := range tokens {
					routed = tr.AppendExperts(routed[:0], tok, l)
					require.NoError(t, s.CopyHtoD(ids, 0, cuda.Bytes(routed)))
					require.NoError(t, r.Resolve(s, l, ids, len(routed), slotIds))
					got, err := r.Misses(bg, s, l)
					require.NoError(t, err)
					_, want, ok := tab.Resolve(union(routed), nil, nil)
					require.True(t, ok)
					require.Len(t, got, len(want), "layer %d token %d", l, tok)
					for j := range want {
						require.Equal(t, want[j], got[j], "layer %d token %d", l, tok)
					}
					misses += uint64(len(want))
				}
				t.Logf("layer %d: %d tokens, %d misses of %d requests", l, tokens, misses, tokens*k)
			}
		})
	}
}
