package moe_test

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/stretchr/testify/require"
)

// The device functions of kquants.cuh run through the test kernels of
// testdata/kquants_test.cu on every device of cudatest (the emulator under
// three thread schedules, and a GPU when one opens), and are checked against
// the experts package:
//   - rt_dequant32_T equals experts.Dequantize bit for bit;
//   - rt_dot_T equals Σ w·x over the block in float64, with w the dequantized
//     weights and x = q·d the values the rt_q8x32 activation blocks encode,
//     within kqDotTol·M where M = Σ (|d·sc·code| + |dmin·m|)·|x| (= Σ|w·x| for
//     formats without mins: the bound covers the cancellation between scale
//     and min terms);
//   - rt_dot_T agrees with experts.VecDot, which quantizes activations to
//     ggml's Q8_K instead, within Σ|w|·|x₃₂ - x_K| (the two quantizations'
//     differences) plus kqDotTol·M for each side's rounding.
//
// Blocks lie end to end from an aligned buffer, so Q3_K and Q6_K blocks at
// addresses 2 mod 4 are among them; running the tests with
// ROTARY_EMU_CXXFLAGS="-fsanitize=alignment,undefined -fno-sanitize-recover=all"
// checks every load against the alignment kquants.cuh states.

// kqDotTol bounds rt_dot_T's float32 rounding relative to M: a chunk's integer
// sum is exact, then each chunk adds about four roundings (scale, product,
// accumulation, final scale, the min subtraction) over eight chunks, and the
// reference's dequantized weights carry two roundings each; 2e-6 ≈ 34 units of
// float32 rounding.
const kqDotTol = 2e-6

// kqType describes one format for the tests: where its f16 scales, its
// sub-block scales and its codes lie in a block.
type kqType struct {
	typ    experts.Type
	name   string // the suffix of the device functions
	f16    []int  // offsets of the f16 super-block scales (d, then dmin)
	scales [2]int // byte range of the sub-block scales
	codes  [2]int // byte range of the codes (zero codes leave -dmin·m)
	mins   bool   // value = d·sc·code - dmin·m
}

var kqTypes = []kqType{
	{experts.TypeQ2_K, "q2_K", []int{80, 82}, [2]int{0, 16}, [2]int{16, 80}, true},
	{experts.TypeQ3_K, "q3_K", []int{108}, [2]int{96, 108}, [2]int{0, 96}, false},
	{experts.TypeQ4_K, "q4_K", []int{0, 2}, [2]int{4, 16}, [2]int{16, 144}, true},
	{experts.TypeQ5_K, "q5_K", []int{0, 2}, [2]int{4, 16}, [2]int{16, 176}, true},
	{experts.TypeQ6_K, "q6_K", []int{208}, [2]int{192, 208}, [2]int{0, 192}, false},
	{experts.TypeIQ4_XS, "iq4_xs", []int{0}, [2]int{2, 8}, [2]int{8, 136}, false},
}

const (
	kqQK         = 256 // values per weight block
	kqActBytes   = 40  // sizeof(rt_q8x32)
	kqRandBlocks = 160 // random blocks per type, besides the quantized ones
)

// kqProgramSource is the test program: the prelude, the package's shared
// definitions, kquants.cuh and the test kernels.
func kqProgramSource(t testing.TB) string {
	src := cuda.Prelude
	for _, f := range []string{"quant_common.cuh", "kquants.cuh", filepath.Join("testdata", "kquants_test.cu")} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		src += "\n" + string(b)
	}
	return src
}

// kqF16 returns a random finite binary16 value, drawn to cover the extremes:
// the largest and smallest magnitudes, subnormals, zero and both signs.
func kqF16(rng *rand.Rand) uint16 {
	var h uint16
	switch rng.IntN(8) {
	case 0:
		h = 0x7bff // 65504
	case 1:
		h = uint16(1 + rng.IntN(0x3ff)) // subnormal
	case 2:
		h = 0
	default:
		h = uint16(rng.IntN(0x7c00)) // any finite magnitude
	}
	return h | uint16(rng.IntN(2))<<15
}

// kqFill sets b to one byte value, or random bytes for -1.
func kqFill(rng *rand.Rand, b []byte, v int) {
	for i := range b {
		if v < 0 {
			b[i] = byte(rng.Uint32())
		} else {
			b[i] = byte(v)
		}
	}
}

// kqBlocks returns blocks of type k: ggml's quantization of Gaussian rows of
// realistic magnitudes (where experts can quantize the type), then random
// blocks whose scales, codes and f16 fields are each random or extreme (all
// zero, all ones, the signed extremes 0x7f and 0x80).
func kqBlocks(t testing.TB, rng *rand.Rand, k kqType) []byte {
	bb := k.typ.BlockBytes()
	var out []byte
	if k.typ.CanQuantize() {
		const n = 48
		x := make([]float32, n*kqQK)
		for i := range x {
			sigma := math.Pow(10, float64(i/kqQK%5)-3) // 1e-3 .. 10 by block
			x[i] = float32(rng.NormFloat64() * sigma)
		}
		q := make([]byte, n*bb)
		require.NoError(t, experts.Quantize(k.typ, x, q))
		out = append(out, q...)
	}
	fills := []int{-1, -1, 0, 0xff, 0x7f, 0x80}
	for range kqRandBlocks {
		b := make([]byte, bb)
		kqFill(rng, b, -1)
		kqFill(rng, b[k.scales[0]:k.scales[1]], fills[rng.IntN(len(fills))])
		kqFill(rng, b[k.codes[0]:k.codes[1]], fills[rng.IntN(len(fills))])
		for _, off := range k.f16 {
			binary.LittleEndian.PutUint16(b[off:], kqF16(rng))
		}
		out = append(out, b...)
	}
	return out
}

// kqActivations is a set of activation vectors of n values each, as floats
// and as the rt_q8x32 blocks the contract of quant_common.cuh defines.
type kqActivations struct {
	x  [][]float32
	q8 [][]byte
}

// kqQuantize encodes x as rt_q8x32 blocks: d = max|x|/127, q = round(x/d)
// (half away from zero), sum = d·Σq, each in float32.
func kqQuantize(x []float32) []byte {
	out := make([]byte, len(x)/32*kqActBytes)
	for b := range len(x) / 32 {
		blk := out[b*kqActBytes:]
		var amax float32
		for _, v := range x[32*b : 32*b+32] {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		var sum int32
		for i, v := range x[32*b : 32*b+32] {
			var q int32
			if d != 0 {
				q = int32(math.Round(float64(v / d)))
			}
			blk[8+i] = byte(int8(q))
			sum += q
		}
		binary.LittleEndian.PutUint32(blk[0:], math.Float32bits(d))
		binary.LittleEndian.PutUint32(blk[4:], math.Float32bits(d*float32(sum)))
	}
	return out
}

// kqActivationSet draws vectors of n values: Gaussian, heavy-tailed (a few
// values far above the rest), all zero, a constant magnitude with random
// signs (every q ±127), and tiny and huge magnitudes.
func kqActivationSet(rng *rand.Rand, n int) kqActivations {
	gen := []func() float32{
		func() float32 { return float32(rng.NormFloat64()) },
		func() float32 { return float32(rng.NormFloat64() * math.Exp(3*rng.NormFloat64())) },
		func() float32 { return 0 },
		func() float32 { return float32(3.5 * float64(1-2*rng.IntN(2))) },
		func() float32 { return float32(rng.NormFloat64() * 1e-30) },
		func() float32 { return float32(rng.NormFloat64() * 1e20) },
	}
	var a kqActivations
	for _, g := range gen {
		x := make([]float32, n)
		for i := range x {
			x[i] = g()
		}
		a.x = append(a.x, x)
		a.q8 = append(a.q8, kqQuantize(x))
	}
	return a
}

// kqActValue is value i of rt_q8x32 blocks act: q·d in float64 (exact).
func kqActValue(act []byte, i int) float64 {
	blk := act[i/32*kqActBytes:]
	d := math.Float32frombits(binary.LittleEndian.Uint32(blk))
	return float64(int8(blk[8+i%32])) * float64(d)
}

func kqDequant(t testing.TB, typ experts.Type, blocks []byte) []float32 {
	out := make([]float32, len(blocks)/typ.BlockBytes()*kqQK)
	require.NoError(t, experts.Dequantize(typ, blocks, out))
	return out
}

// kqMinTerms returns, per value of blocks, |dmin·m| for formats with mins
// (a value of a block whose codes are zeroed is -dmin·m), else zeros.
func kqMinTerms(t testing.TB, k kqType, blocks []byte) []float32 {
	bb := k.typ.BlockBytes()
	zeroed := make([]byte, len(blocks))
	if k.mins {
		copy(zeroed, blocks)
		for b := 0; b < len(blocks); b += bb {
			clear(zeroed[b+k.codes[0] : b+k.codes[1]])
		}
		return kqDequant(t, k.typ, zeroed)
	}
	return make([]float32, len(blocks)/bb*kqQK)
}

func TestKQuantsDequant32(t *testing.T) { kqRun(t, kqCheckDequant) }

func TestKQuantsDot(t *testing.T) { kqRun(t, kqCheckDot) }

// kqCheckDequant compares rt_dequant32_T with experts.Dequantize, bit for bit.
func kqCheckDequant(t *testing.T, d *kqDevice, k kqType, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	blocks := kqBlocks(t, rng, k)
	want := kqDequant(t, k.typ, blocks)
	got := d.dequant(t, k, blocks)
	require.Len(t, got, len(want))
	bad := 0
	for j := range want {
		if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
			if bad < 5 {
				t.Errorf("block %d value %d: got %g (%#08x), experts.Dequantize %g (%#08x)",
					j/kqQK, j%kqQK, got[j], math.Float32bits(got[j]), want[j], math.Float32bits(want[j]))
			}
			bad++
		}
	}
	require.Zero(t, bad, "values differing from experts.Dequantize")
}

// kqCheckDot compares rt_dot_T with the float64 reference and experts.VecDot.
func kqCheckDot(t *testing.T, d *kqDevice, k kqType, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 2))
	blocks := kqBlocks(t, rng, k)
	bb := k.typ.BlockBytes()
	nblocks := len(blocks) / bb
	acts := kqActivationSet(rng, kqQK)
	nb := len(acts.q8) // every block meets every activation vector

	// Row r of the weights is block r repeated nb times; block (r, c)
	// meets activation vector c.
	w := make([]byte, 0, nblocks*nb*bb)
	var x []byte
	for r := range nblocks {
		for range nb {
			w = append(w, blocks[r*bb:(r+1)*bb]...)
		}
	}
	for _, q := range acts.q8 {
		x = append(x, q...)
	}
	got := d.dot(t, k, w, x, nblocks, nb)
	require.Len(t, got, nblocks*nb)

	wf := kqDequant(t, k.typ, blocks)
	minTerms := kqMinTerms(t, k, blocks)
	actK := make([]byte, experts.TypeQ8_K.BlockBytes())
	xK := make([]float32, kqQK)
	var worst, worstWX, worstK float64
	for r := range nblocks {
		for c := range nb {
			var ref, mag, absWX, diffK float64
			for j := range kqQK {
				wj, mj := float64(wf[r*kqQK+j]), float64(minTerms[r*kqQK+j])
				xj := kqActValue(acts.q8[c], j)
				ref += wj * xj
				mag += (math.Abs(wj-mj) + math.Abs(mj)) * math.Abs(xj)
				absWX += math.Abs(wj * xj)
			}
			g := float64(got[r*nb+c])
			require.LessOrEqual(t, math.Abs(g-ref), kqDotTol*mag,
				"block %d activations %d: rt_dot %g, float64 reference %g", r, c, g, ref)
			if mag > 0 {
				worst = max(worst, math.Abs(g-ref)/mag)
			}
			if absWX > 0 {
				worstWX = max(worstWX, math.Abs(g-ref)/absWX)
			}

			// experts.VecDot with ggml's Q8_K activations.
			require.NoError(t, experts.QuantizeActivations(experts.TypeQ8_K, acts.x[c], actK))
			require.NoError(t, experts.Dequantize(experts.TypeQ8_K, actK, xK))
			var magK float64
			for j := range kqQK {
				wj, mj := float64(wf[r*kqQK+j]), float64(minTerms[r*kqQK+j])
				diffK += math.Abs(wj) * math.Abs(kqActValue(acts.q8[c], j)-float64(xK[j]))
				magK += (math.Abs(wj-mj) + math.Abs(mj)) * math.Abs(float64(xK[j]))
			}
			vd := float64(experts.VecDot(k.typ, kqQK, blocks[r*bb:(r+1)*bb], actK))
			bound := diffK + kqDotTol*(mag+magK)
			require.LessOrEqual(t, math.Abs(g-vd), bound,
				"block %d activations %d: rt_dot %g, experts.VecDot %g", r, c, g, vd)
			if bound > 0 {
				worstK = max(worstK, math.Abs(g-vd)/bound)
			}
		}
	}
	t.Logf("%d blocks × %d activation vectors: worst |rt_dot - ref|/M = %.2g (tolerance %g), /Σ|w·x| = %.2g; worst |rt_dot - VecDot|/bound = %.2g",
		nblocks, nb, worst, kqDotTol, worstWX, worstK)
}
