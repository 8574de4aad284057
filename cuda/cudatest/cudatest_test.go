package cudatest_test

import (
	"math"
	"testing"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/cuda/cudatest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var scale = &cuda.Program{Name: "scale.cu", Source: cuda.Prelude + `
extern "C" __global__ void scale(float *x, float k, int n) {
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n) x[i] *= k;
}`}

func TestRun(t *testing.T) {
	var names []string
	cudatest.Run(t, func(t *testing.T, c cudatest.Case) {
		names = append(names, c.Name)
		k := c.Kernel(t, scale, "scale")
		x := []float32{1, -2, 3, float32(math.Inf(1)), 5}
		b := cudatest.Upload(t, c, x)
		c.Launch(t, k, cuda.LaunchConfig{Grid: cuda.Dim3{X: 2}, Block: cuda.Dim3{X: 3}}, cuda.Ptr(b), cuda.F32(0.5), cuda.I32(4))
		assert.Equal(t, []float32{0.5, -1, 1.5, float32(math.Inf(1)), 5}, cudatest.Download[float32](t, c, b, 5))
	})
	require.GreaterOrEqual(t, len(names), len(cudatest.Schedules))
	assert.Equal(t, []string{"host/forward", "host/reverse", "host/random(1)"}, names[:3])
}
