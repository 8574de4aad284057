package main

import (
	"testing"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIsDecode(t *testing.T) {
	for name, want := range map[string]bool{
		"decode_gemv_q4_k": true, "moe_decode": true, "attn_decode_split": true, "decode": true,
		"decoder": false, "gemv_q4_k": false, "prefill_decodes": false, "": false,
	} {
		assert.Equal(t, want, isDecode(name), name)
	}
}

func TestEvaluate(t *testing.T) {
	log, ptx := readFixture(t, "spill_sm_75.log"), readFixture(t, "spill_sm_75.ptx")
	r := result{Program: "spill.cu", Arch: "sm_75"}
	evaluate(&r, log, ptx, false, true)
	assert.Equal(t, []string{`warning: spill.cu(24): warning #177-D: variable "unused" was declared but never referenced`}, r.Problems)
	assert.Equal(t, []kernel{
		{Name: "decode_spill", Entry: true, Decode: true, resources: resources{Registers: 32, Stack: 224, SpillStores: 4, SpillLoads: 4},
			Problems: []string{
				"spills in a decode kernel: 4 B stored, 4 B loaded",
				"spills in _Z6helperPKfi, which this decode kernel calls: 84 B stored, 88 B loaded",
			}},
		{Name: "warned", Entry: true, resources: resources{Registers: 10, Shared: 512}, F64: 4,
			Problems: []string{"4 double-precision instructions (a literal without f?)"}},
		{Name: "_Z6helperPKfi", resources: resources{SpillStores: 84, SpillLoads: 88}, PTXLocal: 128},
	}, r.Kernels, "kernels first, each by name; the helper's spills count against the decode kernel only")
	assert.Equal(t, 4, r.failures())

	r = result{}
	evaluate(&r, log, ptx, true, true)
	assert.Len(t, r.Kernels[1].Problems, 0, "doubles allowed")

	// Without ptxas's word on a function, zero spills would be a guess.
	r = result{}
	evaluate(&r, "", ptx, true, true)
	for _, k := range r.Kernels {
		assert.Equal(t, []string{"ptxas reported nothing on it (a log this tool cannot read?)"}, k.Problems, k.Name)
	}

	// The PTX of a program whose CUBIN failed names the extern.
	r = result{}
	evaluate(&r, "", readFixture(t, "extern_compute_80.ptx"), false, false)
	assert.Empty(t, r.Problems)
	require.Len(t, r.Kernels, 1)
	assert.Equal(t, []string{"calls _Z6__dp4aiii, which nothing defines (an intrinsic NVRTC does not link? use the prelude's)"}, r.Kernels[0].Problems)

	r = result{}
	evaluate(&r, "", ".extern .func (.param .b32 r) lost(.param .b32 a);\n.visible .entry k()\n{\n\tret;\n}\n", false, false)
	assert.Equal(t, []string{"declares lost extern, which nothing defines"}, r.Problems)

	// assert() calls a function the driver provides.
	r = result{}
	evaluate(&r, "", ".extern .func __assertfail(.param .b64 a);\n.visible .entry k()\n{\n\tcall.uni __assertfail, (a);\n}\n", false, false)
	assert.Empty(t, r.Problems)
	assert.Equal(t, []kernel{{Name: "k", Entry: true}}, r.Kernels)

	r = result{}
	evaluate(&r, "", ".visible .entry k()\n{\n", false, false)
	assert.Equal(t, []string{"PTX ends inside a function"}, r.Problems)
}

func TestJobs(t *testing.T) {
	k := &cuda.Program{Name: "k.cu", Source: "k"}
	js, problems := jobs([]source{
		{pkg: "a", programs: func() []*cuda.Program { return []*cuda.Program{k, nil, {Name: "empty.cu"}, k} }},
		{pkg: "b", programs: func() []*cuda.Program { return []*cuda.Program{k} }, doubles: true},
	}, []string{"sm_75", "sm_90"})
	assert.Equal(t, []string{
		"a: Programs()[1] has no name or no source",
		"a: Programs()[2] has no name or no source",
		"a: two programs named k.cu",
	}, problems)
	require.Len(t, js, 4)
	assert.Equal(t, []string{"a", "a", "b", "b"}, []string{js[0].src.pkg, js[1].src.pkg, js[2].src.pkg, js[3].src.pkg})
	assert.Equal(t, []string{"sm_75", "sm_90", "sm_75", "sm_90"}, []string{js[0].arch, js[1].arch, js[2].arch, js[3].arch})
	assert.True(t, js[2].src.doubles)
}
