package main

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fixtures in testdata are NVRTC 11.8's own output: spill.cu compiled
// for sm_75 with --maxrregcount=32 --ptxas-options=-v (its log and PTX), and
// extern.cu compiled to PTX for compute_80.

func readFixture(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return string(data)
}

func TestParseLog(t *testing.T) {
	b, err := parseLog(readFixture(t, "spill_sm_75.log"))
	require.NoError(t, err)
	assert.Equal(t, map[string]*resources{
		"warned":        {Registers: 10, Shared: 512},
		"decode_spill":  {Registers: 32, Stack: 224, SpillStores: 4, SpillLoads: 4},
		"_Z6helperPKfi": {Stack: 0, SpillStores: 84, SpillLoads: 88},
	}, b.functions)
	assert.Equal(t, []string{`spill.cu(24): warning #177-D: variable "unused" was declared but never referenced`}, b.warnings)
}

func TestParseLogFormats(t *testing.T) {
	// ptxas 12.x adds the barriers a kernel uses to the "Used" line.
	b, err := parseLog("ptxas info    : Compiling entry function 'k' for 'sm_90'\n" +
		"ptxas info    : Function properties for k\n" +
		"    8 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n" +
		"ptxas info    : Used 40 registers, used 1 barriers, 4096 bytes smem, 400 bytes cmem[0]\n" +
		"ptxas warning : Registers are spilled to local memory in function 'k'\n")
	require.NoError(t, err)
	assert.Equal(t, map[string]*resources{"k": {Registers: 40, Shared: 4096, Stack: 8}}, b.functions)
	assert.Equal(t, []string{"ptxas warning : Registers are spilled to local memory in function 'k'"}, b.warnings)

	b, err = parseLog("")
	require.NoError(t, err)
	assert.Empty(t, b.functions)
	assert.Empty(t, b.warnings)

	_, err = parseLog("ptxas info    : Used 40 registers\n")
	assert.ErrorContains(t, err, "log line 1: resources of no function")
	_, err = parseLog("ptxas info    : Function properties for k\n    99999999999999999999 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads")
	assert.ErrorContains(t, err, "log line 2")
}
