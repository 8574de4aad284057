package prefetch

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func posInf() float64 { return math.Inf(1) }

// gateModel is a synthetic model's routers: per layer, experts × dim
// weights, normal with the scale of a trained router's.
type gateModel struct {
	dim, experts, k int
	routers         [][]float32
}

func newGateModel(layers, dim, experts, k int, seed uint64) *gateModel {
	rng := rand.New(rand.NewPCG(seed, 7))
	g := &gateModel{dim: dim, experts: experts, k: k, routers: make([][]float32, layers)}
	for l := 1; l < layers; l++ { // layer 0 is dense
		w := make([]float32, dim*experts)
		for i := range w {
			w[i] = float32(rng.NormFloat64() / math.Sqrt(float64(dim)))
		}
		g.routers[l] = w
	}
	return g
}

// recallAhead runs tokens through the synthetic model, whose hidden state
// moves by a random residual of relative size drift at each layer, and
// returns GateAhead's recall@m of each next layer's true top-k.
func recallAhead(t *testing.T, g *gateModel, drift float64, m, tokens int) float64 {
	gate, err := NewMatrixGate(g.dim, g.experts, g.routers)
	require.NoError(t, err)
	pred, err := NewGateAhead(gate)
	require.NoError(t, err)
	layers := []int{}
	for l, w := range g.routers {
		if w != nil {
			layers = append(layers, l)
		}
	}
	h, err := NewHistory(layers)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, g.dim)
	logits := make([]float32, g.experts)
	scores := make([]float32, g.experts)
	var hits, total int
	var predicted []int
	for range tokens {
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		for _, l := range layers {
			require.NoError(t, gate.Logits(l, x, logits))
			ids := topM(nil, logits, g.k)
			for _, e := range ids {
				for _, p := range predicted {
					if p == e {
						hits++
					}
				}
			}
			if predicted != nil {
				total += len(ids)
			}
			predicted = nil
			require.NoError(t, h.Observe(l, ids, x))
			if next := h.Next(l); next >= 0 {
				require.NoError(t, pred.Predict(h, l, next, scores))
				predicted = topM(nil, scores, m)
			}
			// The layer's residual update, of relative size drift.
			var rms float64
			for _, v := range x {
				rms += float64(v * v)
			}
			rms = math.Sqrt(rms / float64(len(x)))
			for i := range x {
				x[i] += float32(drift * rms * rng.NormFloat64())
			}
		}
	}
	return float64(hits) / float64(total)
}

// TestGateAheadSynthetic measures GateAhead on a synthetic model's routers
// (64 experts, top-6, as DeepSeek-V2-Lite): when the residual stream moves
// little between layers it recalls almost all of the next top-6; when it
// moves as much as it holds, little more than chance (6/64).
func TestGateAheadSynthetic(t *testing.T) {
	g := newGateModel(6, 256, 64, 6, 1)
	assert.Greater(t, recallAhead(t, g, 0.05, 6, 200), 0.9)
	assert.Greater(t, recallAhead(t, g, 0.05, 8, 200), 0.95)
	assert.Less(t, recallAhead(t, g, 3, 6, 200), 0.3)
}

func TestGateErrors(t *testing.T) {
	g := newGateModel(3, 8, 4, 2, 1)
	_, err := NewMatrixGate(8, 4, [][]float32{nil, make([]float32, 31)})
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = NewMatrixGate(0, 4, nil)
	assert.ErrorIs(t, err, ErrInvalid)
	gate, err := NewMatrixGate(8, 4, g.routers)
	require.NoError(t, err)
	assert.ErrorIs(t, gate.Logits(0, make([]float32, 8), make([]float32, 4)), ErrLayer, "dense layer")
	assert.ErrorIs(t, gate.Logits(3, make([]float32, 8), make([]float32, 4)), ErrLayer)
	assert.ErrorIs(t, gate.Logits(1, make([]float32, 7), make([]float32, 4)), ErrInvalid)
	_, err = NewGateAhead(nil)
	assert.ErrorIs(t, err, ErrInvalid)

	pred, err := NewGateAhead(gate)
	require.NoError(t, err)
	h, err := NewHistory([]int{1, 2})
	require.NoError(t, err)
	require.NoError(t, h.Observe(1, []int{0, 1}, nil))
	assert.ErrorIs(t, pred.Predict(h, 1, 2, make([]float32, 4)), ErrNoHidden)

	// Softmax scores: non-negative, summing to one, in the logits' order.
	x := []float32{1, -2, 3, 0, 1, 1, -1, 2}
	require.NoError(t, h.Observe(1, []int{0, 1}, x))
	scores, logits := make([]float32, 4), make([]float32, 4)
	require.NoError(t, pred.Predict(h, 1, 2, scores))
	require.NoError(t, gate.Logits(2, x, logits))
	var sum float32
	for _, s := range scores {
		sum += s
	}
	assert.InDelta(t, 1, sum, 1e-5)
	assert.Equal(t, topM(nil, logits, 4), topM(nil, scores, 4))
}
