package gpu

import (
	_ "embed"
	"slices"

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

// programs are the package's kernel programs. Their order is the order
// Programs returns them in.
var programs = []program{
	{"model/norm.cu", normSource, []string{kRMSNorm, kAddNorm, kNormRope, kGatedRMSNorm}},
	{"model/elementwise.cu", elementwiseSource, []string{kAdd, kSwiGLU, kAddGated, kEmbedF32, kEmbedF16, kEmbedBF16}},
	{"model/attention.cu", attentionSource, []string{kAttnDecode, kAttnPrefill, kAttnCombine}},
	{"model/deltanet.cu", deltanetSource, []string{kConvSiLU, kDeltaNet}},
	{"model/route.cu", routeSource, []string{kRoute}},
}

// Kernel names (the extern "C" entry points).
const (
	kRMSNorm      = "rt_rmsnorm"
	kAddNorm      = "rt_add_norm"
	kNormRope     = "rt_norm_rope"
	kGatedRMSNorm = "rt_gated_rmsnorm"
	kAdd          = "rt_add"
	kSwiGLU       = "rt_swiglu"
	kAddGated     = "rt_add_gated"
	kEmbedF32     = "rt_embed_f32"
	kEmbedF16     = "rt_embed_f16"
	kEmbedBF16    = "rt_embed_bf16"
	kAttnDecode   = "rt_attn_decode"
	kAttnPrefill  = "rt_attn_prefill"
	kAttnCombine  = "rt_attn_combine"
	kConvSiLU     = "rt_conv_silu"
	kDeltaNet     = "rt_deltanet"
	kRoute        = "rt_route"
)

// decodeKernels are the kernels a decode step launches: they must compile
// without spilling registers on every architecture. The prefill-only tile
// (rt_attn_prefill) may spill where the compiler chooses to.
var decodeKernels = []string{
	kRMSNorm, kAddNorm, kNormRope, kGatedRMSNorm, kAdd, kSwiGLU, kAddGated,
	kEmbedF32, kEmbedF16, kEmbedBF16, kAttnDecode, kAttnCombine, kConvSiLU, kDeltaNet, kRoute,
}

// Programs returns the package's kernel programs, each source cuda.Prelude
// followed by the package's helpers and the program's own text, with no host
// (Go) twins: the host backend emulates the CUDA C itself. A compile check
// (NVRTC for every architecture) reads this list; Load loads it.
func Programs() []*cuda.Program {
	out := make([]*cuda.Program, len(programs))
	for i, p := range programs {
		out[i] = &cuda.Program{Name: p.name, Source: cuda.Prelude + commonSource + p.source}
	}
	return out
}

// DecodeKernels names the kernels a decode step launches, which a compile
// check must find free of register spills on every architecture.
func DecodeKernels() []string { return slices.Clone(decodeKernels) }
