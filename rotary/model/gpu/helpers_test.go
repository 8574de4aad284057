package gpu

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/cuda/cudatest"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary/model"
	"github.com/rotary-moe/rotary/rotary/model/cpu"
)

// env is one device of cudatest.Run (the emulator under each schedule, and
// a GPU where one opens) with the package's kernels, and the CPU backend the
// kernels are compared with.
type env struct {
	t   *testing.T
	c   cudatest.Case
	ks  *Kernels
	s   cuda.Stream
	cpu *cpu.Backend
}

// forDevices runs f on every device of cudatest.Run, skipping where the
// emulator cannot run (no cgo or no C++ compiler) unless
// ROTARY_REQUIRE_EMULATOR=1.
func forDevices(t *testing.T, f func(t *testing.T, e *env)) {
	cudatest.Run(t, func(t *testing.T, c cudatest.Case) {
		ks, err := Load(context.Background(), c.Device)
		cudatest.Skip(t, err)
		t.Cleanup(func() { require.NoError(t, ks.Close()) })
		b := cpu.New(1)
		t.Cleanup(func() { require.NoError(t, b.Close()) })
		f(t, &env{t: t, c: c, ks: ks, s: c.Stream, cpu: b})
	})
}

// floatBytes copies vals into fresh bytes.
func floatBytes(vals []float32) []byte {
	b := make([]byte, 4*len(vals))
	copy(cuda.View[float32](b), vals)
	return b
}

// upload copies vals (rows×cols) to a new device matrix.
func (e *env) upload(vals []float32, rows, cols int) Matrix {
	e.t.Helper()
	require.Len(e.t, vals, rows*cols)
	return Matrix{Buf: cudatest.Upload(e.t, e.c, vals), Rows: rows, Cols: cols}
}

// zeros is a new device matrix of zeros.
func (e *env) zeros(rows, cols int) Matrix {
	e.t.Helper()
	return Matrix{Buf: e.c.Alloc(e.t, 4*int64(rows*cols)), Rows: rows, Cols: cols}
}

// download waits for the stream and returns m's values.
func (e *env) download(m Matrix) []float32 {
	e.t.Helper()
	return cudatest.Download[float32](e.t, e.c, m.Buf, m.Len())
}

// weight is vals as an F32 weight of the CPU backend.
func weight(vals []float32, rows, cols int) model.Weight {
	return model.Weight{Data: floatBytes(vals), Type: experts.TypeF32, Rows: rows, Cols: cols, Name: "w"}
}

// tensor is a CPU backend tensor holding vals: the backend has no write, so
// the values are embedded as the rows of a table.
func (e *env) tensor(vals []float32, rows, cols int) model.Tensor {
	e.t.Helper()
	tokens := make([]int32, rows)
	for i := range tokens {
		tokens[i] = int32(i)
	}
	x := e.cpu.NewTensor(rows, cols)
	require.NoError(e.t, e.cpu.Embed(x, weight(vals, rows, cols), tokens))
	return x
}

// read returns a CPU tensor's values.
func (e *env) read(x model.Tensor) []float32 {
	out := make([]float32, x.Rows()*x.Cols())
	e.cpu.Read(out, x)
	return out
}

// random returns n values uniform in [-scale, scale).
func random(r *rand.Rand, n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = (2*r.Float32() - 1) * scale
	}
	return v
}

// assertClose checks |got - want| <= abs + rel·|want| value by value (NaN
// only where NaN is wanted) and reports the worst offender.
func assertClose(t *testing.T, want, got []float32, rel, abs float64, what string) {
	t.Helper()
	require.Len(t, got, len(want), what)
	worst, at := 0.0, -1
	for i := range want {
		w, g := float64(want[i]), float64(got[i])
		if math.IsNaN(w) || math.IsNaN(g) {
			if math.IsNaN(w) != math.IsNaN(g) {
				t.Fatalf("%s[%d]: want %v, got %v", what, i, w, g)
			}
			continue
		}
		if math.IsInf(w, 0) || math.IsInf(g, 0) {
			if w != g {
				t.Fatalf("%s[%d]: want %v, got %v", what, i, w, g)
			}
			continue
		}
		if excess := math.Abs(g-w) / (abs + rel*math.Abs(w)); excess > worst {
			worst, at = excess, i
		}
	}
	if worst > 1 {
		t.Fatalf("%s[%d]: want %v, got %v (%.1f× the tolerance %g + %g·|want|)", what, at, want[at], got[at], worst, abs, rel)
	}
}

// name formats a subtest name from its parameters.
func name(format string, args ...any) string { return fmt.Sprintf(format, args...) }
