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
	"github.com/rotary-moe/rotary/experts/quant"
	"github.com/rotary-moe/rotary/rotary/moe"
	"github.com/stretchr/testify/require"
)

// TestEmbed gathers rows of every type's tables and compares them bit for
// bit with experts/quant.Dequantize of the same rows: the narrowest table a
// type allows, a few blocks, and 136 runs of 32 (more than one block of
// threads per row); one token and batches with repeated, out-of-order ids,
// the first and last rows, and ids outside the table (NaN rows).
func TestEmbed(t *testing.T) {
	cudatest.Run(t, func(t *testing.T, c cudatest.Case) {
		for _, typ := range allTypes {
			t.Run(typ.String(), func(t *testing.T) {
				k := kernelsFor(t, c, typ)
				r := rand.New(rand.NewPCG(uint64(typ), 9))
				for _, sh := range []struct {
					rows, cols int
					ids        []int32
				}{
					{5, minCols(typ), []int32{4}},
					{9, 3 * minCols(typ), []int32{8, 0, 3, 3, -1, 8, 9, 1, 0}},
					{7, 4352, []int32{6, 2, 0, 2, math.MaxInt32}},
				} {
					t.Run(fmt.Sprintf("%dx%d/N%d", sh.rows, sh.cols, len(sh.ids)), func(t *testing.T) {
						w := randomWeights(t, r, typ, sh.rows, sh.cols)
						want := make([]float32, sh.rows*sh.cols)
						require.NoError(t, quant.Dequantize(typ, w, want))
						const off = 16 // a multiple of every type's alignment
						table := moe.Matrix{Buf: upload(t, c, append(make([]byte, off), w...)), Off: off, Type: typ, Rows: sh.rows, Cols: sh.cols}
						n := len(sh.ids)
						dst := c.Alloc(t, int64(4*n*sh.cols))
						require.NoError(t, k.Embed(c.Stream, dst, table, cudatest.Upload(t, c, sh.ids), n))
						got := cudatest.Download[float32](t, c, dst, n*sh.cols)
						for i, id := range sh.ids {
							row := got[i*sh.cols : (i+1)*sh.cols]
							if id < 0 || int(id) >= sh.rows {
								for j, v := range row {
									require.Truef(t, math.IsNaN(float64(v)), "row %d (id %d) column %d: %g, want NaN", i, id, j, v)
								}
								continue
							}
							ref := want[int(id)*sh.cols : (int(id)+1)*sh.cols]
							for j := range row {
								require.Equalf(t, math.Float32bits(ref[j]), math.Float32bits(row[j]),
									"row %d (id %d) column %d: got %g, want %g", i, id, j, row[j], ref[j])
							}
						}
					})
				}
			})
		}
	})
}

// TestEmbedErrors checks what Embed refuses before it queues anything.
func TestEmbedErrors(t *testing.T) {
	dev, err := cuda.NewHost()
	require.NoError(t, err)
	defer dev.Close()
	k, err := moe.Load(context.Background(), dev, moe.WithTypes(experts.TypeQ8_0))
	cudatest.Skip(t, err)
	defer k.Close()
	s, err := dev.NewStream()
	require.NoError(t, err)
	buf, err := dev.Alloc(1 << 12)
	require.NoError(t, err)
	small, err := buf.Slice(0, 8)
	require.NoError(t, err)
	good := moe.Matrix{Buf: buf, Type: experts.TypeQ8_0, Rows: 4, Cols: 64}
	for _, tc := range []struct {
		name        string
		table       moe.Matrix
		dst, tokens cuda.Buffer
		n           int
		want        error
	}{
		{"unsupported type", moe.Matrix{Buf: buf, Type: experts.TypeQ8_1, Rows: 4, Cols: 64}, buf, buf, 1, moe.ErrUnsupported},
		{"not loaded", moe.Matrix{Buf: buf, Type: experts.TypeQ4_0, Rows: 4, Cols: 64}, buf, buf, 1, moe.ErrUnsupported},
		{"partial block", moe.Matrix{Buf: buf, Type: experts.TypeQ8_0, Rows: 4, Cols: 48}, buf, buf, 1, moe.ErrShape},
		{"past the buffer", moe.Matrix{Buf: buf, Type: experts.TypeQ8_0, Rows: 1000, Cols: 64}, buf, buf, 1, moe.ErrShape},
		{"misaligned", moe.Matrix{Buf: buf, Off: 1, Type: experts.TypeQ8_0, Rows: 4, Cols: 64}, buf, buf, 1, moe.ErrShape},
		{"no tokens", good, buf, buf, 0, moe.ErrShape},
		{"small tokens", good, buf, small, 3, moe.ErrShape},
		{"small dst", good, small, buf, 1, moe.ErrShape},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, k.Embed(s, tc.dst, tc.table, tc.tokens, tc.n), tc.want)
		})
	}
	require.NoError(t, k.Close())
	require.ErrorIs(t, k.Embed(s, buf, good, buf, 1), moe.ErrClosed)
}
