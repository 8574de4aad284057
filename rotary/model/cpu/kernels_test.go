package cpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/quant"
	"github.com/rotary-moe/rotary/rotary/model"
)

func randVec(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

// assertClose checks every value against a float64 reference with a
// tolerance relative to the largest reference magnitude.
func assertClose(t *testing.T, want []float64, got []float32, rel float64, msg string) {
	t.Helper()
	require.Len(t, got, len(want), msg)
	var scale float64
	for _, w := range want {
		scale = max(scale, math.Abs(w))
	}
	for i := range want {
		if d := math.Abs(float64(got[i]) - want[i]); d > rel*scale {
			t.Fatalf("%s: value %d = %g, want %g (|diff| %.3g > %.3g)", msg, i, got[i], want[i], d, rel*scale)
		}
	}
}

func TestActivations(t *testing.T) {
	for _, x := range []float32{-30, -5, -1, -0.1, 0, 0.3, 2, 19.9, 20.1, 40} {
		s := 1 / (1 + math.Exp(-float64(x)))
		assert.InDelta(t, s, Sigmoid(x), 1e-7)
		assert.InDelta(t, float64(x)*s, SiLU(x), 1e-6*max(1, math.Abs(float64(x))))
		// 1+e^x is rounded to float32 first, as in ggml: an absolute error
		// of at most half an ulp of 1 for very negative x.
		sp := math.Log1p(math.Exp(float64(x)))
		assert.InDelta(t, sp, Softplus(x), 1e-7+1e-6*sp, "softplus(%g)", x)
	}
	assert.Equal(t, float32(40), Softplus(40), "above the threshold softplus is the identity")

	dst := make([]float32, 3)
	SwiGLU(dst, []float32{1, -2, 0}, []float32{2, 3, 5})
	assert.InDeltaSlice(t, []float32{2 * SiLU(1), 3 * SiLU(-2), 0}, dst, 0)
}

func TestSoftmax(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := randVec(r, 37, 3)
	x[5] = 80 // large values must not overflow
	want := make([]float64, len(x))
	var sum float64
	for i, v := range x {
		want[i] = math.Exp(float64(v) - 80)
		sum += want[i]
	}
	for i := range want {
		want[i] /= sum
	}
	Softmax(x, x)
	assertClose(t, want, x, 1e-6, "softmax")
}

func TestRMSNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x, w := randVec(r, 64, 2), randVec(r, 64, 1)
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	inv := 1 / math.Sqrt(ss/64+1e-6)
	want := make([]float64, 64)
	for i := range want {
		want[i] = float64(x[i]) * inv * float64(w[i])
	}
	dst := make([]float32, 64)
	RMSNorm(dst, x, w, 1e-6)
	assertClose(t, want, dst, 1e-6, "rms norm")
	RMSNorm(x, x, w, 1e-6) // in place
	assert.Equal(t, dst, x)
}

func TestL2Normalize(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	x := randVec(r, 128, 3)
	L2Normalize(x, 1e-6)
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	assert.InDelta(t, 1, ss, 1e-5)

	zero := make([]float32, 8)
	L2Normalize(zero, 1e-6)
	assert.Equal(t, make([]float32, 8), zero, "eps keeps a zero vector finite")
}

func TestRope(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const headDim, dims, base, pos = 64, 16, 1e7, 37
	rope := Rope{Dims: dims, Base: base}
	cos, sin := make([]float32, dims/2), make([]float32, dims/2)
	rope.Angles(pos, cos, sin)
	x := randVec(r, headDim, 1)
	orig := slices.Clone(x)
	rope.Rotate(x, cos, sin)

	want := make([]float64, headDim)
	for i := range want {
		want[i] = float64(orig[i])
	}
	for i := range dims / 2 {
		theta := pos * math.Pow(base, -2*float64(i)/dims)
		x0, x1 := float64(orig[i]), float64(orig[i+dims/2])
		want[i] = x0*math.Cos(theta) - x1*math.Sin(theta)
		want[i+dims/2] = x0*math.Sin(theta) + x1*math.Cos(theta)
	}
	assertClose(t, want, x, 1e-5, "rope")
	assert.Equal(t, orig[dims:], x[dims:], "values past Dims are not rotated")

	rope.Angles(0, cos, sin)
	y := slices.Clone(orig)
	rope.Rotate(y, cos, sin)
	assert.Equal(t, orig, y, "position 0 is the identity")
}

func TestRoute(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for trial := range 200 {
		n, k := 4+r.IntN(60), 1+r.IntN(4)
		logits := randVec(r, n, 2)
		if trial%5 == 0 {
			logits[1] = logits[3] // a tie: the lower id comes first
		}
		probs := slices.Clone(logits)
		Softmax(probs, probs)
		order := make([]int, n)
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, b int) int {
			switch {
			case probs[a] > probs[b]:
				return -1
			case probs[a] < probs[b]:
				return 1
			}
			return 0
		})
		ids, weights := make([]int32, k), make([]float32, k)
		Route(logits, ids, weights, true)
		var sum float64
		for i := range k {
			require.EqualValues(t, order[i], ids[i], "trial %d rank %d", trial, i)
			sum += float64(probs[order[i]])
		}
		for i := range k {
			assert.InEpsilon(t, float64(probs[order[i]])/sum, weights[i], 1e-6)
		}
		assert.Equal(t, probs, logits, "logits are replaced by the probabilities")
	}

	ids, weights := make([]int32, 2), make([]float32, 2)
	Route([]float32{0, 3, 1}, ids, weights, false)
	assert.Equal(t, []int32{1, 2}, ids)
	p := []float32{0, 3, 1}
	Softmax(p, p)
	assert.Equal(t, []float32{p[1], p[2]}, weights, "without normalisation the weights are the probabilities")
}

func TestAttend(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	const kvHeads, d, n = 2, 32, 9
	kv := KV{Keys: make([]float32, 16*kvHeads*d), Values: make([]float32, 16*kvHeads*d), KVHeads: kvHeads, HeadDim: d}
	for p := range n {
		kv.Store(p, randVec(r, kvHeads*d, 1), randVec(r, kvHeads*d, 1))
	}
	q := randVec(r, d, 1)
	scale := float32(1 / math.Sqrt(d))
	for h := range kvHeads {
		scores := make([]float64, n)
		var m float64 = math.Inf(-1)
		for j := range n {
			var s float64
			for i := range d {
				s += float64(q[i]) * float64(kv.Keys[j*kvHeads*d+h*d+i])
			}
			scores[j] = s * float64(scale)
			m = max(m, scores[j])
		}
		var sum float64
		for j := range scores {
			scores[j] = math.Exp(scores[j] - m)
			sum += scores[j]
		}
		want := make([]float64, d)
		for j := range n {
			for i := range d {
				want[i] += scores[j] / sum * float64(kv.Values[j*kvHeads*d+h*d+i])
			}
		}
		out := make([]float32, d)
		kv.Attend(out, q, h, n, scale, make([]float32, n))
		assertClose(t, want, out, 1e-5, "attention")
	}
}

func TestConvSiLUStreams(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	const T, C, K = 6, 5, 4
	x, kernel := randVec(r, T*C, 1), randVec(r, C*K, 0.5)
	initial := randVec(r, (K-1)*C, 1)

	// Reference: pad the sequence with the initial state.
	seq := append(slices.Clone(initial), x...)
	want := make([]float64, T*C)
	for tt := range T {
		for c := range C {
			var s float64
			for k := range K {
				s += float64(seq[(tt+k)*C+c]) * float64(kernel[c*K+k])
			}
			want[tt*C+c] = s / (1 + math.Exp(-s))
		}
	}

	batch, state := make([]float32, T*C), slices.Clone(initial)
	ConvSiLU(batch, x, state, kernel, T, C, K, 0, C)
	assertClose(t, want, batch, 1e-6, "conv batch")
	assert.Equal(t, x[(T-K+1)*C:], state, "state keeps the last K-1 inputs")

	// One token at a time, channels split in two ranges, gives the same bits.
	state2 := slices.Clone(initial)
	for tt := range T {
		out := make([]float32, C)
		ConvSiLU(out, x[tt*C:(tt+1)*C], state2, kernel, 1, C, K, 0, 2)
		ConvSiLU(out, x[tt*C:(tt+1)*C], state2, kernel, 1, C, K, 2, C)
		assert.Equal(t, batch[tt*C:(tt+1)*C], out, "token %d", tt)
	}
	assert.Equal(t, state, state2)
}

// ConvSiLU's window over a channel's inputs is one buffer per call, not a
// slice that reallocates every few channels: Qwen3.5's 8192 channels once
// cost 2,729 allocations per call.
func TestConvSiLUAllocatesOnePerCall(t *testing.T) {
	const T, C, K = 1, 8192, 4
	dst, x, state, kernel := make([]float32, T*C), make([]float32, T*C), make([]float32, (K-1)*C), make([]float32, C*K)
	allocs := testing.AllocsPerRun(10, func() { ConvSiLU(dst, x, state, kernel, T, C, K, 0, C) })
	assert.LessOrEqual(t, allocs, 1.0)
}

func TestDeltaRule(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	const S = 16
	m := make([][]float64, S) // M[i][j]
	state := make([]float32, S*S)
	for i := range m {
		m[i] = make([]float64, S)
		for j := range m[i] {
			v := r.NormFloat64() * 0.1
			state[j*S+i] = float32(v)
			m[i][j] = float64(float32(v))
		}
	}
	scale := float32(1 / math.Sqrt(S))
	for step := range 5 {
		q, k, v := randVec(r, S, 1), randVec(r, S, 1), randVec(r, S, 1)
		L2Normalize(q, 1e-6)
		L2Normalize(k, 1e-6)
		decay, beta := float32(math.Exp(-0.3*float64(step))), float32(0.2+0.1*float64(step))
		for i := range m {
			for j := range m[i] {
				m[i][j] *= float64(decay)
			}
		}
		want := make([]float64, S)
		for j := range S {
			var mk float64
			for i := range S {
				mk += m[i][j] * float64(k[i])
			}
			dj := float64(beta) * (float64(v[j]) - mk)
			for i := range S {
				m[i][j] += float64(k[i]) * dj
			}
		}
		for j := range S {
			for i := range S {
				want[j] += m[i][j] * float64(q[i])
			}
			want[j] *= float64(scale)
		}
		out := make([]float32, S)
		DeltaRule(out, state, q, k, v, decay, beta, scale)
		assertClose(t, want, out, 1e-5, "delta rule output")
	}
}

func TestMatMulAgainstDequantized(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	b := New(2)
	defer b.Close()
	const rows, cols, T = 37, 256, 3
	for _, typ := range []experts.Type{experts.TypeF32, experts.TypeF16, experts.TypeQ8_0, experts.TypeQ4_0, experts.TypeMXFP4, experts.TypeQ4_K, experts.TypeQ6_K} {
		w := randomWeight(r, typ, rows, cols)
		w.Name = "w"
		deq := make([]float32, rows*cols)
		require.NoError(t, quant.Dequantize(typ, w.Data, deq))
		x := b.NewTensor(T, cols).(*tensor)
		copy(x.data, randVec(r, T*cols, 1))
		dst := b.NewTensor(T, rows).(*tensor)
		require.NoError(t, b.MatMul(dst, x, w))
		want := make([]float64, T*rows)
		for tt := range T {
			for i := range rows {
				for c := range cols {
					want[tt*rows+i] += float64(deq[i*cols+c]) * float64(x.data[tt*cols+c])
				}
			}
		}
		// Activations are rounded to 8 bits for quantized weights.
		tol := map[experts.Type]float64{experts.TypeF32: 1e-6, experts.TypeF16: 2e-3}[typ]
		if tol == 0 {
			tol = 2e-2
		}
		assertClose(t, want, dst.data, tol, typ.String())
	}
}

func TestMatMulRejectsBadWeights(t *testing.T) {
	b := New(1)
	defer b.Close()
	x, dst := b.NewTensor(1, 64), b.NewTensor(1, 4)
	err := b.MatMul(dst, x, model.Weight{Name: "blk.0.odd", Type: experts.TypeIQ2_XXS, Rows: 4, Cols: 256, Data: make([]byte, 4*66)})
	assert.ErrorIs(t, err, experts.ErrUnsupportedType)
	assert.Contains(t, err.Error(), "blk.0.odd")
	err = b.MatMul(dst, x, model.Weight{Name: "blk.0.short", Type: experts.TypeF32, Rows: 4, Cols: 64, Data: make([]byte, 100)})
	assert.ErrorContains(t, err, "blk.0.short")
	err = b.MatMul(dst, x, model.Weight{Name: "blk.0.wide", Type: experts.TypeF32, Rows: 4, Cols: 32, Data: make([]byte, 4*4*32)})
	assert.ErrorContains(t, err, "blk.0.wide")
	err = b.MatMul(b.NewTensor(2, 4), x, model.Weight{Name: "blk.0.ok", Type: experts.TypeF32, Rows: 4, Cols: 64, Data: make([]byte, 4*4*64)})
	assert.Error(t, err, "destination shape")
}

func TestMoE(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	b := New(2)
	defer b.Close()
	const T, D, F, K = 3, 32, 16, 2
	f32 := func(rows, cols int) (model.Weight, []float32) {
		w := randomWeight(r, experts.TypeF32, rows, cols)
		vals := make([]float32, rows*cols)
		require.NoError(t, quant.Dequantize(experts.TypeF32, w.Data, vals))
		return w, vals
	}
	ids := []int{1, 4, 6}
	ew := make([]model.ExpertWeights, len(ids))
	vals := make([][3][]float32, len(ids))
	for i := range ids {
		ew[i].Gate, vals[i][0] = f32(F, D)
		ew[i].Up, vals[i][1] = f32(F, D)
		ew[i].Down, vals[i][2] = f32(D, F)
	}
	routing := model.Routing{K: K, IDs: []int32{4, 1, 6, 4, 1, 6}, Weights: []float32{0.7, 0.3, 0.5, 0.5, 0.9, 0.1}}
	x := b.NewTensor(T, D).(*tensor)
	copy(x.data, randVec(r, T*D, 1))
	dst := b.NewTensor(T, D).(*tensor)
	require.NoError(t, b.Experts(dst, x, routing, ids, ew))

	slot := map[int32]int{1: 0, 4: 1, 6: 2}
	want := make([]float64, T*D)
	for tt := range T {
		for k := range K {
			e := vals[slot[routing.IDs[tt*K+k]]]
			h := make([]float64, F)
			for f := range F {
				var g, u float64
				for c := range D {
					g += float64(e[0][f*D+c]) * float64(x.data[tt*D+c])
					u += float64(e[1][f*D+c]) * float64(x.data[tt*D+c])
				}
				h[f] = g / (1 + math.Exp(-g)) * u
			}
			for d := range D {
				var o float64
				for f := range F {
					o += float64(e[2][d*F+f]) * h[f]
				}
				want[tt*D+d] += float64(routing.Weights[tt*K+k]) * o
			}
		}
	}
	assertClose(t, want, dst.data, 1e-5, "moe")

	// The backend's reused buffers carry nothing over: a smaller call after
	// this one gives the bits of a fresh backend.
	one := model.Routing{K: K, IDs: []int32{6, 1}, Weights: []float32{0.6, 0.4}}
	x1 := b.Slice(x, 1, 2)
	got := b.NewTensor(1, D).(*tensor)
	require.NoError(t, b.Experts(got, x1, one, []int{1, 6}, []model.ExpertWeights{ew[0], ew[2]}))
	fresh := New(1)
	defer fresh.Close()
	want1 := fresh.NewTensor(1, D).(*tensor)
	require.NoError(t, fresh.Experts(want1, x1, one, []int{1, 6}, []model.ExpertWeights{ew[0], ew[2]}))
	assert.Equal(t, want1.data, got.data)

	routing.IDs[0] = 5
	assert.ErrorContains(t, b.Experts(dst, x, routing, ids, ew), "expert 5")
	routing.IDs[0] = 4
	odd := ew[1]
	odd.Up.Type = experts.TypeIQ2_XXS
	err := b.Experts(dst, x, routing, ids, []model.ExpertWeights{ew[0], odd, ew[2]})
	assert.ErrorIs(t, err, experts.ErrUnsupportedType)
	assert.ErrorContains(t, err, "cpu: expert 4 up")
}

// A decode step's MoE allocates only the pool's closures, however many
// experts it runs: the activations, per-expert bookkeeping and outputs live
// in buffers the backend reuses.
func TestMoEReusesBuffers(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	b := New(2)
	defer b.Close()
	const D, F = 64, 32
	ids := []int{1, 3, 5, 7, 9, 11, 13, 15}
	ew := make([]model.ExpertWeights, len(ids))
	for i := range ew {
		ew[i] = model.ExpertWeights{Gate: randomWeight(r, experts.TypeQ8_0, F, D), Up: randomWeight(r, experts.TypeQ4_0, F, D),
			Down: randomWeight(r, experts.TypeQ8_0, D, F)}
	}
	routing := model.Routing{K: len(ids), IDs: []int32{9, 1, 15, 3, 5, 13, 7, 11}, Weights: randVec(r, len(ids), 1)}
	x, dst := b.NewTensor(1, D), b.NewTensor(1, D)
	copy(x.(*tensor).data, randVec(r, D, 1))
	allocs := testing.AllocsPerRun(10, func() {
		if err := b.Experts(dst, x, routing, ids, ew); err != nil {
			t.Fatal(err)
		}
	})
	assert.LessOrEqual(t, allocs, 3.0)
}
