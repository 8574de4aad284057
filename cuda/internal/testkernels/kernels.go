package testkernels

import _ "embed"

// Source is kernels.cu: vadd, axpy (doubles, on purpose: it checks 8-byte
// arguments), addk and bytesum.
//
//go:embed kernels.cu
var Source string

// Emulator is emulator.cu, the emulator's test kernels (they need
// cuda.Prelude ahead of them): a Q8_0 GEMV, shared memory with and without
// its barrier, warp votes and shuffles, atomics, and kernels that misuse
// barriers and shuffles on purpose for the emulator to report.
//
//go:embed emulator.cu
var Emulator string
