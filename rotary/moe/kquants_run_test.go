package moe_test

import (
	"testing"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/cuda/cudatest"
	"github.com/stretchr/testify/require"
)

// kqThreads is the test kernels' block size.
const kqThreads = 64

// kqDevice runs the test kernels of testdata/kquants_test.cu on one device:
// the host backend's emulator (under each schedule of cudatest) or a GPU.
type kqDevice struct {
	c   cudatest.Case
	mod cuda.Module
}

// kqRun runs fn as a subtest per device of cudatest.Devices and per format.
func kqRun(t *testing.T, fn func(t *testing.T, d *kqDevice, k kqType, seed uint64)) {
	cudatest.Run(t, func(t *testing.T, c cudatest.Case) {
		d := &kqDevice{c: c, mod: c.Load(t, &cuda.Program{Name: "kquants_test.cu", Source: kqProgramSource(t)})}
		for i, k := range kqTypes {
			t.Run(k.name, func(t *testing.T) { fn(t, d, k, uint64(i)) })
		}
	})
}

// launch runs kernel over n threads, with the inputs copied to device
// memory, an output of outFloats floats and the int arguments, and returns
// the output.
func (d *kqDevice) launch(t testing.TB, kernel string, n int, inputs [][]byte, outFloats int, ints ...int) []float32 {
	k, err := d.mod.Kernel(kernel)
	require.NoError(t, err)
	var args []cuda.Arg
	for _, in := range inputs {
		args = append(args, cuda.Ptr(cudatest.Upload(t, d.c, in)))
	}
	out := d.c.Alloc(t, 4*int64(outFloats))
	args = append(args, cuda.Ptr(out))
	for _, v := range ints {
		args = append(args, cuda.I32(int32(v)))
	}
	grid := cuda.Dim3{X: uint32((n + kqThreads - 1) / kqThreads), Y: 1, Z: 1}
	d.c.Launch(t, k, cuda.LaunchConfig{Grid: grid, Block: cuda.Dim3{X: kqThreads, Y: 1, Z: 1}}, args...)
	return cudatest.Download[float32](t, d.c, out, outFloats)
}

// dot launches kq_dot_T over rows × nb weight blocks w and activation blocks
// x (8·nb of them) and returns out (rows·nb floats).
func (d *kqDevice) dot(t testing.TB, k kqType, w, x []byte, rows, nb int) []float32 {
	return d.launch(t, "kq_dot_"+k.name, rows*nb, [][]byte{w, x}, rows*nb, rows, nb)
}

// dequant launches kq_dequant_T over the blocks and returns their values.
func (d *kqDevice) dequant(t testing.TB, k kqType, blocks []byte) []float32 {
	n := len(blocks) / k.typ.BlockBytes()
	return d.launch(t, "kq_dequant_"+k.name, 8*n, [][]byte{blocks}, n*kqQK, n)
}
