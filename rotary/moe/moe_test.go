package moe_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/cuda/cudatest"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary/moe"
	"github.com/stretchr/testify/require"
)

// testPlane is a plane of random experts and their dequantized weights.
type testPlane struct {
	plane          moe.Plane
	bytes          []byte
	gate, up, down [][]float64 // per slot
}

func align16(n int64) int64 { return (n + 15) &^ 15 }

// newTestPlane builds nslots experts of gate/up type gt and down type dt.
func newTestPlane(t *testing.T, r *rand.Rand, gt, dt experts.Type, nslots, ff, embd int) *testPlane {
	gb, err := gt.RowBytes(uint64(embd))
	require.NoError(t, err)
	db, err := dt.RowBytes(uint64(ff))
	require.NoError(t, err)
	gateSize, downSize := align16(int64(gb)*int64(ff)), align16(int64(db)*int64(embd))
	p := &testPlane{plane: moe.Plane{
		SlotBytes: 2*gateSize + downSize,
		Gate:      moe.Part{Off: 0, Type: gt},
		Up:        moe.Part{Off: gateSize, Type: gt},
		Down:      moe.Part{Off: 2 * gateSize, Type: dt},
		FF:        ff, Embd: embd,
	}}
	p.bytes = make([]byte, int64(nslots)*p.plane.SlotBytes)
	for s := range nslots {
		slot := p.bytes[int64(s)*p.plane.SlotBytes:]
		g, u, d := randomWeights(t, r, gt, ff, embd), randomWeights(t, r, gt, ff, embd), randomWeights(t, r, dt, embd, ff)
		copy(slot[p.plane.Gate.Off:], g)
		copy(slot[p.plane.Up.Off:], u)
		copy(slot[p.plane.Down.Off:], d)
		p.gate = append(p.gate, dequantize(t, gt, g, ff, embd))
		p.up = append(p.up, dequantize(t, gt, u, ff, embd))
		p.down = append(p.down, dequantize(t, dt, d, embd, ff))
	}
	return p
}

func silu(g float64) float64 { return g / (1 + math.Exp(-g)) }

// moeReference is the routed FFN in float64, with a magnitude per output
// that bounds how far rounding can move it: Σ_j |w_j|·Σ_i |down_ri|·hmag_i,
// where hmag_i = |h_i| + |u_i|·Σ|gate_i·x| + |SiLU(g_i)|·Σ|up_i·x| bounds
// the hidden value's own rounding (SiLU's slope stays below 1.1).
func (p *testPlane) moeReference(x []float32, slots []int32, weights []float32, tokens, k int) (want, mag []float64) {
	ff, embd := p.plane.FF, p.plane.Embd
	want, mag = make([]float64, tokens*embd), make([]float64, tokens*embd)
	h, hmag := make([]float64, ff), make([]float64, ff)
	for t := range tokens {
		xt := x[t*embd : (t+1)*embd]
		for j := range k {
			s, w := slots[t*k+j], float64(weights[t*k+j])
			for i := range ff {
				var g, u, gm, um float64
				for c, v := range xt {
					g += p.gate[s][i*embd+c] * float64(v)
					u += p.up[s][i*embd+c] * float64(v)
					gm += math.Abs(p.gate[s][i*embd+c] * float64(v))
					um += math.Abs(p.up[s][i*embd+c] * float64(v))
				}
				h[i] = silu(g) * u
				hmag[i] = math.Abs(h[i]) + 1.1*math.Abs(u)*gm + math.Abs(silu(g))*um
			}
			for r := range embd {
				var y, m float64
				for i := range ff {
					y += p.down[s][r*ff+i] * h[i]
					m += math.Abs(p.down[s][r*ff+i]) * hmag[i]
				}
				want[t*embd+r] += w * y
				mag[t*embd+r] += math.Abs(w) * m
			}
		}
	}
	return want, mag
}

// routing draws k slots per token (distinct within a token, repeated
// across tokens, in no order) and weights.
func routing(r *rand.Rand, nslots, tokens, k int) ([]int32, []float32) {
	slots, weights := make([]int32, tokens*k), make([]float32, tokens*k)
	for t := range tokens {
		perm := r.Perm(nslots)
		for j := range k {
			slots[t*k+j] = int32(perm[j])
			weights[t*k+j] = float32(r.Float64())
		}
	}
	return slots, weights
}

// runMoE runs MoE on the device and returns dst.
func runMoE(t *testing.T, c cudatest.Case, k *moe.Kernels, p *testPlane, x []float32, slots []int32, weights []float32, tokens, topK int, opts ...moe.CallOption) []float32 {
	plane := p.plane
	plane.Buf = upload(t, c, p.bytes)
	dst := c.Alloc(t, int64(4*tokens*plane.Embd))
	scratch := c.Alloc(t, max(moe.MoEScratch(tokens, topK, plane), 1))
	require.NoError(t, k.MoE(c.Stream, dst, cudatest.Upload(t, c, x), tokens, topK,
		cudatest.Upload(t, c, slots), cudatest.Upload(t, c, weights), plane, scratch, opts...))
	return cudatest.Download[float32](t, c, dst, tokens*plane.Embd)
}

// moeCase is one routing shape.
type moeCase struct{ tokens, k, nslots int }

// moeCases: decode with one expert, with eight and with ten (more experts
// than a down block has warps), DecodeTokens tokens, and prefill batches
// whose groups span one and several 64-pair tiles.
var moeCases = []moeCase{{1, 1, 3}, {1, 8, 9}, {2, 10, 11}, {moe.DecodeTokens, 2, 5}, {12, 8, 9}, {70, 2, 3}}

func moeTolerance(gt, dt experts.Type, tokens int) float64 {
	return max(tolerance(gt, tokens), tolerance(dt, tokens))
}

// TestMoE runs every type as gate, up and down of a plane (FF and Embd
// the fewest columns the type takes), on every routing shape.
func TestMoE(t *testing.T) {
	cudatest.Run(t, func(t *testing.T, c cudatest.Case) {
		for _, typ := range allTypes {
			t.Run(typ.String(), func(t *testing.T) {
				testMoE(t, c, typ, typ, minCols(typ), minCols(typ))
			})
		}
	})
}

// TestMoEMixed runs planes whose down projection has another type than
// gate and up, as Q4_K_M files do (Q4_K with Q6_K, ...).
func TestMoEMixed(t *testing.T) {
	cudatest.Run(t, func(t *testing.T, c cudatest.Case) {
		for _, pair := range [][2]experts.Type{
			{experts.TypeQ4_K, experts.TypeQ6_K}, {experts.TypeQ4_0, experts.TypeF16}, {experts.TypeBF16, experts.TypeQ8_0},
			{experts.TypeMXFP4, experts.TypeQ5_K},
		} {
			t.Run(pair[0].String()+"+"+pair[1].String(), func(t *testing.T) {
				ff := max(minCols(pair[1]), 64)
				testMoE(t, c, pair[0], pair[1], ff, max(minCols(pair[0]), 64))
			})
		}
	})
}

func testMoE(t *testing.T, c cudatest.Case, gt, dt experts.Type, ff, embd int) {
	k := kernelsFor(t, c, gt, dt)
	r := rand.New(rand.NewPCG(uint64(gt), uint64(dt)))
	for _, mc := range moeCases {
		t.Run(fmt.Sprintf("T%d/k%d/S%d", mc.tokens, mc.k, mc.nslots), func(t *testing.T) {
			p := newTestPlane(t, r, gt, dt, mc.nslots, ff, embd)
			slots, weights := routing(r, mc.nslots, mc.tokens, mc.k)
			if mc.tokens > 64 {
				// one slot takes more than a tile's 64 pairs
				for i := range mc.tokens {
					slots[i*mc.k] = 0
					if mc.k > 1 && slots[i*mc.k+1] == 0 {
						slots[i*mc.k+1] = 1
					}
				}
			}
			x := randomFloats(r, mc.tokens*embd)
			got := runMoE(t, c, k, p, x, slots, weights, mc.tokens, mc.k)
			want, mag := p.moeReference(x, slots, weights, mc.tokens, mc.k)
			check(t, got, want, mag, moeTolerance(gt, dt, mc.tokens))
		})
	}
}

// TestMoESharedExpert runs a dense FFN as a plane of one slot, added to
// what dst holds (Accumulate), as the shared expert is added to the routed
// ones.
func TestMoESharedExpert(t *testing.T) {
	cudatest.Run(t, func(t *testing.T, c cudatest.Case) {
		typ := experts.TypeQ8_0
		k := kernelsFor(t, c, typ)
		r := rand.New(rand.NewPCG(5, 5))
		for _, tokens := range []int{1, moe.DecodeTokens + 3} {
			p := newTestPlane(t, r, typ, typ, 1, 64, 64)
			slots, weights := make([]int32, tokens), make([]float32, tokens)
			for i := range weights {
				weights[i] = 1
			}
			x := randomFloats(r, tokens*64)
			prior := randomFloats(r, tokens*64)
			plane := p.plane
			plane.Buf = upload(t, c, p.bytes)
			dst := cudatest.Upload(t, c, prior)
			scratch := c.Alloc(t, moe.MoEScratch(tokens, 1, plane))
			require.NoError(t, k.MoE(c.Stream, dst, cudatest.Upload(t, c, x), tokens, 1,
				cudatest.Upload(t, c, slots), cudatest.Upload(t, c, weights), plane, scratch, moe.Accumulate()))
			got := cudatest.Download[float32](t, c, dst, tokens*64)
			want, mag := p.moeReference(x, slots, weights, tokens, 1)
			for i := range want {
				want[i] += float64(prior[i])
				mag[i] += math.Abs(float64(prior[i]))
			}
			check(t, got, want, mag, tolerance(typ, tokens))
		}
	})
}

// TestMoEBadSlot checks that a token routed outside the plane gets NaN
// and the others their values, on both paths.
func TestMoEBadSlot(t *testing.T) {
	cudatest.Run(t, func(t *testing.T, c cudatest.Case) {
		typ := experts.TypeQ4_0
		k := kernelsFor(t, c, typ)
		r := rand.New(rand.NewPCG(9, 9))
		for _, tokens := range []int{2, moe.DecodeTokens + 2} {
			p := newTestPlane(t, r, typ, typ, 3, 32, 32)
			slots, weights := routing(r, 3, tokens, 2)
			x := randomFloats(r, tokens*32)
			want, mag := p.moeReference(x, slots, weights, tokens, 2)
			slots[1] = 3  // token 0: one past the last slot
			slots[2] = -1 // token 1
			got := runMoE(t, c, k, p, x, slots, weights, tokens, 2)
			for i := range 32 {
				require.True(t, math.IsNaN(float64(got[i])), "token 0")
				require.True(t, math.IsNaN(float64(got[32+i])), "token 1")
			}
			check(t, got[64:], want[64:], mag[64:], tolerance(typ, tokens))
		}
	})
}

// TestMoEErrors checks what MoE refuses before it queues anything.
func TestMoEErrors(t *testing.T) {
	dev, err := cuda.NewHost()
	require.NoError(t, err)
	defer dev.Close()
	k, err := moe.Load(context.Background(), dev, moe.WithTypes(experts.TypeQ8_0))
	cudatest.Skip(t, err)
	defer k.Close()
	s, err := dev.NewStream()
	require.NoError(t, err)
	buf, err := dev.Alloc(1 << 16)
	require.NoError(t, err)
	rb := int64(experts.TypeQ8_0.BlockBytes() * 2) // 64 columns
	good := moe.Plane{Buf: buf, SlotBytes: 3 * 64 * rb, Gate: moe.Part{Type: experts.TypeQ8_0},
		Up: moe.Part{Off: 64 * rb, Type: experts.TypeQ8_0}, Down: moe.Part{Off: 128 * rb, Type: experts.TypeQ8_0}, FF: 64, Embd: 64}
	require.NoError(t, good.Check())
	bad := func(f func(p *moe.Plane)) moe.Plane {
		p := good
		f(&p)
		return p
	}
	for _, tc := range []struct {
		name   string
		p      moe.Plane
		tokens int
		want   error
	}{
		{"gate and up differ", bad(func(p *moe.Plane) { p.Up.Type = experts.TypeQ4_0 }), 1, moe.ErrUnsupported},
		{"unsupported down", bad(func(p *moe.Plane) { p.Down.Type = experts.TypeTQ1_0 }), 1, moe.ErrUnsupported},
		{"not loaded", bad(func(p *moe.Plane) { p.Down.Type = experts.TypeQ4_0 }), 1, moe.ErrUnsupported},
		{"partial block", bad(func(p *moe.Plane) { p.FF = 48 }), 1, moe.ErrShape},
		{"part past the slot", bad(func(p *moe.Plane) { p.Down.Off += 2 }), 1, moe.ErrShape},
		{"no slot", bad(func(p *moe.Plane) { p.SlotBytes = 1 << 20 }), 1, moe.ErrShape},
		{"no tokens", good, 0, moe.ErrShape},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := k.MoE(s, buf, buf, tc.tokens, 2, buf, buf, tc.p, buf)
			require.ErrorIs(t, err, tc.want)
		})
	}
	small, err := buf.Slice(0, 16)
	require.NoError(t, err)
	require.ErrorIs(t, k.MoE(s, buf, buf, 1, 2, buf, buf, good, small), moe.ErrScratch)
	oneSlot, err := buf.Slice(0, 4) // two experts need 8 bytes of slot ids
	require.NoError(t, err)
	require.ErrorIs(t, k.MoE(s, buf, buf, 1, 2, oneSlot, buf, good, buf), moe.ErrShape)
}
