package device

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/cuda/cudatest"
)

// rt_decode_fill copies each miss's parts into its slot, 8 bytes at a time
// where source, destination and size allow it and byte by byte where they
// do not (a part of 13 bytes, a slot offset of 3), and leaves every other
// byte of the plane alone; a miss with no slot, and blocks past the number
// of misses, do nothing.
func TestFill(t *testing.T) {
	cudatest.Run(t, func(t *testing.T, c cudatest.Case) {
		fill := c.Kernel(t, Programs()[0], kFill)
		const experts, slotBytes = 4, 64
		sizes := []int64{24, 13}  // an aligned part, then an unaligned one
		offsets := []int64{0, 27} // in the slot: the second unaligned too
		var srcs []cuda.Buffer
		var parts []int64
		for i, n := range sizes {
			data := make([]byte, experts*n)
			for j := range data {
				data[j] = byte(17*i + j)
			}
			srcs = append(srcs, cudatest.Upload(t, c, data))
			parts = append(parts, int64(srcs[i].Addr()), n, offsets[i])
		}
		// The plane, after a slot's worth of memory that must stay zero.
		whole := c.Alloc(t, 4*slotBytes)
		plane, err := whole.Slice(slotBytes, 3*slotBytes)
		require.NoError(t, err)
		// Expert 2 into slot 1, expert 3 into slot 2, expert 1 into no
		// slot (the resolve kernel out of slots), and a fourth block past
		// the count of three.
		misses := cudatest.Upload(t, c, []int32{3, 2, 1, -1, 3, 2, 0, 1, -1, -1})
		c.Launch(t, fill, cuda.LaunchConfig{Grid: cuda.Dim3{X: 4, Y: 2, Z: 1}, Block: cuda.Dim3{X: threads, Y: 1, Z: 1}},
			cuda.Ptr(plane), cuda.I64(slotBytes), cuda.Ptr(misses), cuda.Ptr(cudatest.Upload(t, c, parts)), cuda.I32(int32(len(sizes))))

		want := make([]byte, 4*slotBytes)
		for _, m := range [][2]int{{2, 1}, {3, 2}} {
			e, s := m[0], m[1]
			for i, n := range sizes {
				for j := range n {
					want[int64(s+1)*slotBytes+offsets[i]+j] = byte(17*i + int(int64(e)*n+j))
				}
			}
		}
		require.Equal(t, want, cudatest.Download[byte](t, c, whole, len(want)))
	})
}

// Given more misses than dynamic slots (which Resolve refuses), the resolve
// kernel places what fits and marks the rest with slot -1, which the fill
// kernel skips: the tables stay consistent.
func TestResolveOutOfSlots(t *testing.T) {
	cudatest.Run(t, func(t *testing.T, c cudatest.Case) {
		resolve := c.Kernel(t, Programs()[0], kResolve)
		const experts, slots = 4, 2
		slotOf := cudatest.Upload(t, c, []int32{-1, -1, -1, -1})
		expertIn := cudatest.Upload(t, c, []int32{-1, -1})
		lastUse, named, tick := c.Alloc(t, 8*slots), c.Alloc(t, 8*experts), c.Alloc(t, 8)
		ids := cudatest.Upload(t, c, []int32{2, 0, 1})
		slotIds, misses := c.Alloc(t, 4*3), c.Alloc(t, 4*(1+3*3))
		c.Launch(t, resolve, cuda.LaunchConfig{Grid: cuda.Dim3{X: 1, Y: 1, Z: 1}, Block: cuda.Dim3{X: threads, Y: 1, Z: 1}},
			cuda.Ptr(slotOf), cuda.Ptr(expertIn), cuda.Ptr(lastUse), cuda.U64(0), cuda.Ptr(named), cuda.Ptr(tick),
			cuda.Ptr(ids), cuda.I32(3), cuda.I32(experts), cuda.I32(slots), cuda.I32(0),
			cuda.Ptr(slotIds), cuda.Ptr(misses), cuda.U64(0))
		require.Equal(t, []int32{-1, 0, 1}, cudatest.Download[int32](t, c, slotIds, 3))
		require.Equal(t, []int32{3, 0, 0, -1, 1, 1, -1, 2, -1, -1}, cudatest.Download[int32](t, c, misses, 10))
		require.Equal(t, []int32{0, 1, -1, -1}, cudatest.Download[int32](t, c, slotOf, experts))
	})
}
