package main

import (
	_ "embed"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/cuda/internal/testkernels"
	"github.com/rotary-moe/rotary/rotary/device"
	"github.com/rotary-moe/rotary/rotary/model/gpu"
	"github.com/rotary-moe/rotary/rotary/moe"
)

// A kernel package takes part in this check by exporting
//
//	func Programs() []*cuda.Program
//
// that returns every program the package loads, as it loads them (Source =
// cuda.Prelude + its CUDA C, and its Options; a program built in variants,
// one per weight type say, is one Program per variant, each with its own
// Name), and by a line in sources below.
//
// A kernel whose name has "decode" among its underscore-separated words
// (decode_gemv_q4_k, moe_decode, attn_decode_split) is a decode kernel: one
// that runs once per generated token and must stay memory-bound, so that a
// spill in it, or in a device function it calls, fails the check. Spills
// elsewhere are reported only.
//
// Doubles fail the check in every program of a package unless its line says
// doubles: on the GPUs this targets a double-precision instruction runs at a
// small fraction of float throughput, and one usually comes from an
// unsuffixed literal (0.5 rather than 0.5f).
type source struct {
	pkg      string                 // the import path below the module, for the table
	programs func() []*cuda.Program // the package's Programs
	doubles  bool                   // its kernels compute in double precision on purpose
}

var sources = []source{
	{pkg: "cuda", programs: preludePrograms},
	// Package cuda's test kernels: kernels.cu's axpy passes doubles to check
	// 8-byte arguments.
	{pkg: "cuda/internal/testkernels", programs: testPrograms, doubles: true},
	// Routing sums the softmax in double, in expert order, to pick exactly
	// the CPU's experts; sincosf's slow path in norm_rope has doubles too.
	{pkg: "rotary/model/gpu", programs: gpu.Programs, doubles: true},
	// The quantized matrix products and the slot-plane MoE kernels, one
	// program per weight type (kquants.cuh's K-quants among them).
	{pkg: "rotary/moe", programs: moe.Programs},
	// Device-side residency: the resolve and fill kernels.
	{pkg: "rotary/device", programs: device.Programs},
}

//go:embed preludecheck.cu
var preludeCheck string

// preludePrograms are the prelude alone (what every program starts with)
// and the prelude with a kernel that uses all of it.
func preludePrograms() []*cuda.Program {
	return []*cuda.Program{
		{Name: "prelude.cuh", Source: cuda.Prelude},
		{Name: "preludecheck.cu", Source: cuda.Prelude + preludeCheck},
	}
}

// testPrograms are package cuda's test programs, as its tests load them.
func testPrograms() []*cuda.Program {
	return []*cuda.Program{
		{Name: "kernels.cu", Source: testkernels.Source},
		{Name: "emulator.cu", Source: cuda.Prelude + testkernels.Emulator},
	}
}
