package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/quant"
	"github.com/rotary-moe/rotary/rotary/internal/cputime"
	"github.com/rotary-moe/rotary/rotary/model"
)

// randomWeight quantizes Gaussian values into a rows×cols weight of type t
// (types the reference quantizer lacks get blocks of random bytes whose
// scales are made finite: timing does not depend on the values).
func randomWeight(r *rand.Rand, t experts.Type, rows, cols int) model.Weight {
	rb, err := t.RowBytes(uint64(cols))
	if err != nil {
		panic(err)
	}
	data := make([]byte, int(rb)*rows)
	if quant.CanQuantize(t) {
		vals := make([]float32, rows*cols)
		for i := range vals {
			vals[i] = float32(r.NormFloat64())
		}
		if err := quant.Quantize(t, vals, data); err != nil {
			panic(err)
		}
		return model.Weight{Data: data, Type: t, Rows: rows, Cols: cols}
	}
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	// Offsets of the F16 scales in each block of the K-quants.
	var scales []int
	switch t {
	case experts.TypeQ4_K, experts.TypeQ5_K, experts.TypeQ2_K:
		scales = []int{0, 2}
		if t == experts.TypeQ2_K {
			scales = []int{80, 82}
		}
	case experts.TypeQ6_K:
		scales = []int{208}
	case experts.TypeQ3_K:
		scales = []int{108}
	}
	bb := t.BlockBytes()
	for b := 0; b < len(data); b += bb {
		for _, off := range scales {
			data[b+off], data[b+off+1] = 0x00, 0x20 // 2^-7
		}
	}
	return model.Weight{Data: data, Type: t, Rows: rows, Cols: cols}
}

// BenchmarkMatVec measures matrix-vector products (one token, as in
// decoding) over weights in their stored formats; the MB/s column is weight
// bytes read per second: the figure that bounds decode speed on a CPU.
// MB/cpu-s divides by the CPU time the process used instead of wall time:
// the per-core figure, meaningful even on a machine shared with other work.
//
//	go test ./rotary/model/cpu -run '^$' -bench MatVec
func BenchmarkMatVec(b *testing.B) {
	const rows, cols = 2048, 2048 // e.g. a Qwen3.5-35B-A3B projection of the 2048-wide hidden state
	r := rand.New(rand.NewPCG(1, 2))
	for _, t := range []experts.Type{experts.TypeF32, experts.TypeF16, experts.TypeQ8_0, experts.TypeMXFP4,
		experts.TypeQ4_K, experts.TypeQ5_K, experts.TypeQ6_K} {
		var w model.Weight // made on first use, so that a -bench filter skips the work
		for _, threads := range []int{1, 0} {
			backend := New(threads)
			b.Run(fmt.Sprintf("%v/threads=%d", t, backend.Threads()), func(b *testing.B) {
				if w.Data == nil {
					w = randomWeight(r, t, rows, cols)
				}
				x := backend.NewTensor(1, cols).(*tensor)
				for i := range x.data {
					x.data[i] = float32(r.NormFloat64())
				}
				dst := backend.NewTensor(1, rows)
				b.SetBytes(int64(len(w.Data)))
				cpu0 := cputime.Process()
				for b.Loop() {
					if err := backend.MatMul(dst, x, w); err != nil {
						b.Fatal(err)
					}
				}
				if cpu := cputime.Process() - cpu0; cpu > 0 {
					b.ReportMetric(float64(len(w.Data))*float64(b.N)/cpu.Seconds()/1e6, "MB/cpu-s")
				}
			})
			backend.Close()
		}
	}
}
