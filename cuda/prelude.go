package cuda

import _ "embed"

// Prelude is CUDA C that kernel programs put ahead of their source
// (Program.Source = cuda.Prelude + src): fixed-width integer types (i8 … u64),
// rt_half_to_float, rt_float_to_half, rt_bf16_to_float, rt_dp4a and
// rt_dynamic_shared(). NVRTC compiles it with PTX; the host emulator runs its C
// fallbacks, so one source serves both.
//
//go:embed prelude.cuh
var Prelude string
