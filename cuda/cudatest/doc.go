// Package cudatest runs kernel tests on every device there is: the host
// backend's emulator under each thread schedule (forward, reverse, random),
// and GPU 0 when one opens, so that one test binary checks CUDA C kernels
// against the project's Go reference on any machine, and on a GPU checks the
// real device against the same reference.
//
// A test that needs the emulator skips when there is none (a build without
// cgo, no C++ compiler: cuda.ErrNoEmulator), unless ROTARY_REQUIRE_EMULATOR=1,
// which CI sets; every other failure fails the test.
package cudatest
