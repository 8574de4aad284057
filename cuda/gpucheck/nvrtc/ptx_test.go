package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePTX(t *testing.T) {
	m, err := parsePTX(readFixture(t, "spill_sm_75.ptx"))
	require.NoError(t, err)
	require.Len(t, m.functions, 3)
	byName := map[string]ptxFunction{}
	for _, f := range m.functions {
		byName[f.name] = f
	}
	helper, spill, warned := byName["_Z6helperPKfi"], byName["decode_spill"], byName["warned"]
	assert.False(t, helper.entry)
	assert.Equal(t, 128, helper.local, "float acc[32]")
	assert.Equal(t, 0, helper.f64)
	assert.True(t, spill.entry)
	assert.Equal(t, []string{"_Z6helperPKfi"}, spill.calls)
	assert.Equal(t, 0, spill.f64)
	assert.True(t, warned.entry)
	assert.Empty(t, warned.calls)
	assert.Equal(t, 4, warned.f64, "ld.param, cvt, mul, cvt back; a register named %f64 is no double")
	assert.Empty(t, m.externs)
	assert.Equal(t, []string{"_Z6helperPKfi"}, m.reaches("decode_spill"))

	m, err = parsePTX(readFixture(t, "extern_compute_80.ptx"))
	require.NoError(t, err)
	assert.Equal(t, []string{"_Z6__dp4aiii"}, m.externs)
	require.Len(t, m.functions, 1)
	assert.Equal(t, ptxFunction{name: "dot", entry: true, calls: []string{"_Z6__dp4aiii"}}, m.functions[0])
}

func TestParsePTXForms(t *testing.T) {
	m, err := parsePTX(`
.extern .func (.param .b32 r) ext(.param .b32 a); // declared on one line
.func (.param .b32 r) g(.param .b32 a);
.func (.param .b32 r) f(.param .b32 a) { // the body on the header's line
	.local .b32 one;
	.local .align 8 .b64 eight[3];
	call.uni (r), ext, (a);
	mov.b32 %f64, 1; // a register named f64 is no double
}
.visible .entry k()
{
	.reg .f64 %fd<2>; // a declaration is no instruction
	{ // callseq
	call.uni (r), f, (a);
	}
	add.rn.f64 %fd1, %fd1, %fd1;
	ret;
}
`)
	require.NoError(t, err)
	assert.Equal(t, []string{"ext"}, m.externs, "g is declared, not extern")
	assert.Equal(t, []ptxFunction{
		{name: "f", local: 4 + 24, calls: []string{"ext"}},
		{name: "k", entry: true, f64: 1, calls: []string{"f"}},
	}, m.functions)
	assert.Equal(t, []string{"f", "ext"}, m.reaches("k"))

	_, err = parsePTX(".visible .entry k()\n{\n\tret;\n")
	assert.ErrorContains(t, err, "PTX ends inside a function")
	_, err = parsePTX(".visible .entry k()\n{\n.local .b8 d[99999999999999999999];\n}\n")
	assert.ErrorContains(t, err, "PTX line 3")
}
