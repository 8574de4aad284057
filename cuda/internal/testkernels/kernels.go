package testkernels

import _ "embed"

// Source is kernels.cu: vadd, axpy (doubles, on purpose: it checks 8-byte
// arguments), addk and bytesum.
//
//go:embed kernels.cu
var Source string
