package moe_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary/moe"
	"github.com/stretchr/testify/require"
)

// The benchmarks measure the decode kernels on a GPU (the emulator says
// nothing about speed): SetBytes is the weight bytes one call reads, so the
// MB/s column is the achieved weight bandwidth, to hold against the card's
// memory bandwidth. Launches are timed back to back on one stream.

// gpu opens GPU 0 or skips the benchmark.
func gpu(b *testing.B) (cuda.Device, cuda.Stream) {
	dev, err := cuda.Open(context.Background(), 0)
	if errors.Is(err, cuda.ErrNoDriver) || errors.Is(err, cuda.ErrNoDevice) {
		b.Skip(err)
	}
	require.NoError(b, err)
	b.Cleanup(func() { dev.Close() })
	s, err := dev.NewStream()
	require.NoError(b, err)
	return dev, s
}

// devBytes uploads raw bytes to a new device buffer.
func devBytes(b *testing.B, dev cuda.Device, s cuda.Stream, raw []byte) cuda.Buffer {
	buf, err := dev.Alloc(int64(max(len(raw), 1)))
	require.NoError(b, err)
	require.NoError(b, s.CopyHtoD(buf, 0, raw))
	require.NoError(b, s.Synchronize(context.Background()))
	return buf
}

// randomBlocks is rows×cols random weights of type t, every byte below 0x40
// so that every f16 scale is finite (and below 2): speed does not depend on
// the values.
func randomBlocks(r *rand.Rand, t experts.Type, rows, cols int) []byte {
	rb, _ := t.RowBytes(uint64(cols))
	w := make([]byte, int(rb)*rows)
	for i := range w {
		w[i] = byte(r.Uint32() & 0x3f)
	}
	return w
}

// BenchmarkMatMulDecode is one token through a 4096×2048 matrix (the size
// of an attention projection of the Qwen3 MoE models).
func BenchmarkMatMulDecode(b *testing.B) {
	dev, s := gpu(b)
	k, err := moe.Load(context.Background(), dev)
	require.NoError(b, err)
	r := rand.New(rand.NewPCG(1, 1))
	const rows, cols = 4096, 2048
	for _, typ := range allTypes {
		b.Run(typ.String(), func(b *testing.B) {
			w := moe.Matrix{Buf: devBytes(b, dev, s, randomBlocks(r, typ, rows, cols)), Type: typ, Rows: rows, Cols: cols}
			x := devBytes(b, dev, s, make([]byte, 4*cols))
			dst := devBytes(b, dev, s, make([]byte, 4*rows))
			scratch := devBytes(b, dev, s, make([]byte, max(moe.MatMulScratch(1, w), 1)))
			b.SetBytes(w.Buf.Size())
			b.ResetTimer()
			for b.Loop() {
				require.NoError(b, k.MatMul(s, dst, x, 1, w, scratch))
			}
			require.NoError(b, s.Synchronize(context.Background()))
		})
	}
}

// BenchmarkMoEDecode is one token through 8 of 128 experts of a
// qwen3moe-30b-a3b layer at Q4_K_M (Embd 2048, FF 768, gate and up Q4_K,
// down Q6_K).
func BenchmarkMoEDecode(b *testing.B) {
	dev, s := gpu(b)
	k, err := moe.Load(context.Background(), dev, moe.WithTypes(experts.TypeQ4_K, experts.TypeQ6_K))
	require.NoError(b, err)
	r := rand.New(rand.NewPCG(2, 2))
	const embd, ff, nslots, topK = 2048, 768, 128, 8
	gate := int64(ff * embd / 256 * experts.TypeQ4_K.BlockBytes())
	down := int64(embd * ff / 256 * experts.TypeQ6_K.BlockBytes())
	p := moe.Plane{SlotBytes: 2*gate + down, Gate: moe.Part{Type: experts.TypeQ4_K}, Up: moe.Part{Off: gate, Type: experts.TypeQ4_K},
		Down: moe.Part{Off: 2 * gate, Type: experts.TypeQ6_K}, FF: ff, Embd: embd}
	plane := make([]byte, nslots*p.SlotBytes)
	for s := range nslots {
		slot := plane[int64(s)*p.SlotBytes:]
		copy(slot, randomBlocks(r, experts.TypeQ4_K, 2*ff, embd))
		copy(slot[2*gate:], randomBlocks(r, experts.TypeQ6_K, embd, ff))
	}
	p.Buf = devBytes(b, dev, s, plane)
	slots, weights := routing(r, nslots, 1, topK)
	x := devBytes(b, dev, s, make([]byte, 4*embd))
	dst := devBytes(b, dev, s, make([]byte, 4*embd))
	sb, wb := devBytes(b, dev, s, bytesOf(slots)), devBytes(b, dev, s, bytesOf(weights))
	scratch := devBytes(b, dev, s, make([]byte, moe.MoEScratch(1, topK, p)))
	b.SetBytes(topK * p.SlotBytes)
	b.ResetTimer()
	for b.Loop() {
		require.NoError(b, k.MoE(s, dst, x, 1, topK, sb, wb, p, scratch))
	}
	require.NoError(b, s.Synchronize(context.Background()))
}
