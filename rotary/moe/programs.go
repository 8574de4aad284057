package moe

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
)

// The device code, in the order programs concatenate it.
var (
	//go:embed quant_common.cuh
	quantCommon string
	//go:embed quant_types.cuh
	quantTypes string
	//go:embed kquants.cuh
	kquants string
	//go:embed kernels.cuh
	kernelTemplates string
	//go:embed common.cu
	commonKernels string
	//go:embed entries.cu
	typeEntries string
)

// format is how the device code names a weight type.
type format struct {
	name  string // the suffix of its functions and kernels, e.g. "q4_0"
	float bool   // F32, F16, BF16: float activations, no quantization
	align int64  // the alignment its blocks must start at, in bytes
}

// formats are the weight types the kernels multiply.
var formats = map[experts.Type]format{
	experts.TypeF32:    {name: "f32", float: true, align: 4},
	experts.TypeF16:    {name: "f16", float: true, align: 2},
	experts.TypeBF16:   {name: "bf16", float: true, align: 2},
	experts.TypeQ8_0:   {name: "q8_0", align: 2},
	experts.TypeQ4_0:   {name: "q4_0", align: 2},
	experts.TypeQ4_1:   {name: "q4_1", align: 2},
	experts.TypeQ5_0:   {name: "q5_0", align: 2},
	experts.TypeQ5_1:   {name: "q5_1", align: 2},
	experts.TypeIQ4_NL: {name: "iq4_nl", align: 2},
	experts.TypeMXFP4:  {name: "mxfp4", align: 1},
	experts.TypeQ2_K:   {name: "q2_K", align: 4},
	experts.TypeQ3_K:   {name: "q3_K", align: 2},
	experts.TypeQ4_K:   {name: "q4_K", align: 16},
	experts.TypeQ5_K:   {name: "q5_K", align: 16},
	experts.TypeQ6_K:   {name: "q6_K", align: 2},
	experts.TypeIQ4_XS: {name: "iq4_xs", align: 8},
}

// commonProgram is the name of the program of the type-independent kernels.
const commonProgram = "moe_common.cu"

// programName is the name of the program of one weight type's kernels.
func programName(t experts.Type) string { return "moe_" + formats[t].name + ".cu" }

// types lists the supported types in a fixed order.
func types() []experts.Type {
	ts := make([]experts.Type, 0, len(formats))
	for t := range formats {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

// deviceCode is the source every program starts with: the prelude, the
// activation format, the weight formats and the kernel templates.
func deviceCode() string {
	return cuda.Prelude + quantCommon + quantTypes + kquants + kernelTemplates
}

// sharedProgram is the program of the type-independent kernels.
func sharedProgram() *cuda.Program {
	return &cuda.Program{Name: commonProgram, Source: deviceCode() + commonKernels}
}

// typeProgram is the program of one weight type's kernels.
func typeProgram(t experts.Type) *cuda.Program {
	f := formats[t]
	var b strings.Builder
	b.WriteString(deviceCode())
	if f.float {
		fmt.Fprintf(&b, "\nRT_FLOAT_FORMAT_TRAITS(%s, %d)\n", f.name, t.BlockBytes())
	} else {
		fmt.Fprintf(&b, "\nRT_QUANT_FORMAT(%s, %d, %d)\n", f.name, t.BlockSize(), t.BlockBytes())
	}
	b.WriteString(strings.ReplaceAll(typeEntries, "RT_TYPE", f.name))
	return &cuda.Program{Name: programName(t), Source: b.String()}
}

// Programs returns every program the package loads, as Load loads them: the
// type-independent kernels, then one program per weight type. Kernels whose
// names contain "_decode_" run once per generated token (GEMV, the decode
// MoE kernels, the activation quantizer and the embedding gather) and must
// not spill registers; the "_prefill_" ones are the batched GEMMs and their
// helpers.
func Programs() []*cuda.Program {
	ps := []*cuda.Program{sharedProgram()}
	for _, t := range types() {
		ps = append(ps, typeProgram(t))
	}
	return ps
}
