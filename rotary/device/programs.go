package device

import (
	_ "embed"

	"github.com/rotary-moe/rotary/cuda"
)

//go:embed resolve.cu
var resolveSource string

// Kernel names (the extern "C" entry points).
const (
	kResolve = "rt_decode_resolve"
	kFill    = "rt_decode_fill"
)

// Programs returns the package's kernel program, cuda.Prelude followed by
// resolve.cu, as New loads it; the NVRTC check (cuda/gpucheck/nvrtc)
// compiles it for every architecture.
func Programs() []*cuda.Program {
	return []*cuda.Program{{Name: "device/resolve.cu", Source: cuda.Prelude + resolveSource}}
}
