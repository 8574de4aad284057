// Command nvrtc compiles every kernel program of the project with the real
// NVRTC, for each GPU architecture rotary targets, and checks what it built.
// It needs NVRTC (libnvrtc.so, as package cuda finds it) but no GPU or
// driver:
//
//	go run ./cuda/gpucheck/nvrtc [-arch sm_75,sm_80,sm_86,sm_89,sm_90] [-run regexp] [-json] [-v] [-j N]
//
// Each program (registry.go lists them; a kernel package joins by exporting
// Programs) is compiled once per architecture to PTX and a CUBIN with
// --ptxas-options=-v, and the table shows, per kernel and architecture, what
// ptxas reports: registers, spill stores and loads, static shared memory and
// the stack frame, and what the PTX shows: bytes of .local memory declared
// and double-precision instructions. Device functions ptxas did not inline
// have rows of their own.
//
// The check fails on
//   - a program that does not compile,
//   - any warning in NVRTC's log (NVRTC has no -Werror),
//   - a call to a function nothing defines (.extern .func in the PTX: an
//     intrinsic NVRTC does not link, such as __dp4a under 11.8),
//   - a spill in a decode kernel or a device function it calls,
//   - a double-precision instruction in a package not registered as using
//     doubles,
//   - ptxas saying nothing about a function the PTX has (a log this tool
//     cannot read must not pass as zero spills).
//
// -arch device compiles for GPU 0's own architecture (which needs the
// driver); -json prints the whole report as JSON; -v prints NVRTC's full log
// of every compile before the table (with -json, as each result's "log");
// -run compiles only the programs whose "package/program" matches (as the
// table names them: -run moe/ for one package while writing its kernels); -j
// compiles that many programs at once.
//
// Exit status: 0 when every check passes; 1 when one fails; 2 for bad
// flags (a -run that matches no program among them); 3 when the check cannot
// run: no NVRTC (the error names every
// library tried), an architecture this NVRTC does not compile for, or no GPU
// for -arch device.
package main
