package gpu

import (
	_ "embed"

	"github.com/rotary-moe/rotary/cuda"
)

//go:embed common.cuh
var commonSource string

//go:embed norm.cu
var normSource string

//go:embed elementwise.cu
var elementwiseSource string

//go:embed attention.cu
var attentionSource string

//go:embed deltanet.cu
var deltanetSource string

//go:embed route.cu
var routeSource string

// program is one .cu file of the package and the kernels it defines.
type program struct {
	name, source string
	kernels      []string
}

// programs are the package's kernel programs, in the order Programs returns
// them.
var programs = []program{
	{"model/norm.cu", normSource, []string{kRMSNorm, kAddNorm, kNormRope, kGatedRMSNorm}},
	{"model/elementwise.cu", elementwiseSource, []string{kAdd, kSwiGLU, kAddGated}},
	{"model/attention.cu", attentionSource, []string{kAttnDecode, kAttnPrefill, kAttnCombine}},
	{"model/deltanet.cu", deltanetSource, []string{kConvSiLU, kDeltaNet, kDeltaNetNorm}},
	{"model/route.cu", routeSource, []string{kRoute}},
}

// Kernel names (the extern "C" entry points). A name with "decode" among its
// words marks a kernel that runs for every generated token (prefill runs most
// of them too): the project's NVRTC check fails if one spills registers.
const (
	kRMSNorm      = "rt_decode_rmsnorm"
	kAddNorm      = "rt_decode_add_norm"
	kNormRope     = "rt_decode_norm_rope"
	kGatedRMSNorm = "rt_decode_gated_rmsnorm"
	kAdd          = "rt_decode_add"
	kSwiGLU       = "rt_decode_swiglu"
	kAddGated     = "rt_decode_add_gated"
	kAttnDecode   = "rt_decode_attn"
	kAttnPrefill  = "rt_prefill_attn"
	kAttnCombine  = "rt_decode_attn_combine"
	kConvSiLU     = "rt_decode_conv_silu"
	kDeltaNet     = "rt_decode_deltanet"
	kDeltaNetNorm = "rt_decode_deltanet_norm"
	kRoute        = "rt_decode_route"
)

// Programs returns the package's kernel programs, each source cuda.Prelude
// followed by the package's helpers and the program's own text, with no host
// (Go) twins: the host backend emulates the CUDA C itself. Load loads this
// list; the NVRTC check (cuda/gpucheck/nvrtc) compiles it for every
// architecture. The kernels compute in double on purpose in one place:
// routing's exp and softmax sum, so that expert choices match the CPU's.
func Programs() []*cuda.Program {
	out := make([]*cuda.Program, len(programs))
	for i, p := range programs {
		out[i] = &cuda.Program{Name: p.name, Source: cuda.Prelude + commonSource + p.source}
	}
	return out
}
