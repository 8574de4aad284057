package cuda

import (
	"fmt"
	"sync/atomic"

	"github.com/rotary-moe/rotary/cuda/internal/testkernels"
)

// testKernelsSource is kernels.cu, which the NVRTC check compiles too.
var testKernelsSource = testkernels.Source

// threads is the number of threads a launch runs, which bounds what a Go
// twin may touch as the CUDA kernel's "if (i < n)" does.
func threads(l *HostLaunch) uint64 {
	g, b := l.Config.Grid, l.Config.Block
	return uint64(g.X) * uint64(g.Y) * uint64(g.Z) * uint64(b.X) * uint64(b.Y) * uint64(b.Z)
}

// testProgram is testkernels' kernels.cu with its Go twins.
var testProgram = &Program{
	Name:   "kernels.cu",
	Source: testKernelsSource,
	Host: map[string]HostKernel{
		"vadd": func(l *HostLaunch) error {
			a, b, c := View[float32](l.Bytes(0)), View[float32](l.Bytes(1)), View[float32](l.Bytes(2))
			n := min(uint64(l.Uint32(3)), threads(l))
			for i := range n {
				c[i] = a[i] + b[i]
			}
			return nil
		},
		"axpy": func(l *HostLaunch) error {
			a, x, y := l.Float64(0), View[float64](l.Bytes(1)), View[float64](l.Bytes(2))
			n := l.Int64(3)
			if n < 0 {
				return fmt.Errorf("negative count %d", n)
			}
			for i := range min(uint64(n), threads(l)) {
				y[i] += a * x[i]
			}
			return nil
		},
		"addk": func(l *HostLaunch) error {
			x, k := View[int32](l.Bytes(0)), l.Int32(1)
			for i := range min(l.Uint64(2), threads(l)) {
				x[i] += k
			}
			return nil
		},
		"bytesum": func(l *HostLaunch) error {
			host, out := l.Bytes(0), View[uint32](l.Bytes(1))
			var sum uint32
			for _, v := range host[:min(uint64(l.Uint32(2)), threads(l))] {
				sum += uint32(v)
			}
			atomic.AddUint32(&out[0], sum)
			return nil
		},
	},
}
