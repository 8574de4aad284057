// Package testkernels holds the CUDA C kernels of package cuda's tests, in a
// package of their own so that the tests and the NVRTC compile check
// (cuda/gpucheck/nvrtc) read the same text while the library ships none of
// it. The Go twins the host backend runs live beside the tests.
package testkernels
