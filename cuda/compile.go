package cuda

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// NVRTCInfo describes the NVRTC library that Compile and Device.Load use.
type NVRTCInfo struct {
	Library string // the library loaded, e.g. "libnvrtc.so.11.2"
	Version int    // 1000*major + 10*minor, e.g. 11080 for 11.8
	Archs   []int  // the SM architectures it compiles for, e.g. 75, 80, 90
}

func (i NVRTCInfo) String() string {
	return fmt.Sprintf("NVRTC %d.%d (%s)", i.Version/1000, i.Version%1000/10, i.Library)
}

// LoadNVRTC loads NVRTC, once per process as Device.Load does, and describes
// it. It needs no driver and no GPU. Without NVRTC it fails with ErrNoNVRTC,
// naming every library it tried.
func LoadNVRTC() (NVRTCInfo, error) {
	comp, err := loadNVRTC()
	if err != nil {
		return NVRTCInfo{}, err
	}
	return nvrtcInfo(comp), nil
}

func nvrtcInfo(comp compiler) NVRTCInfo {
	return NVRTCInfo{Library: comp.library(), Version: comp.version(), Archs: slices.Clone(comp.archs())}
}

// Compiled is a Program compiled by NVRTC for one architecture.
type Compiled struct {
	Program string // Program.Name
	Arch    string // the target, e.g. "sm_90" or "compute_90"
	NVRTC   int    // the compiler's version, as NVRTCInfo.Version
	// PTX is the program in PTX, NUL-terminated as NVRTC returns it and the
	// driver loads it.
	PTX []byte
	// CUBIN is the program assembled for a real architecture (sm_XX), nil
	// for a virtual one (compute_XX).
	CUBIN []byte
	// Log is NVRTC's program log: warnings, and ptxas's resource report when
	// the options ask for it ("--ptxas-options=-v").
	Log string
}

// Compile compiles p with NVRTC for arch, as Device.Load would for a GPU of
// that architecture but with no driver or GPU: "sm_90" gives PTX and a CUBIN,
// "compute_90" PTX alone. The architecture option comes first, then
// p.Options; p.Host plays no part. It checks ctx before compiling (NVRTC
// cannot be interrupted).
//
// A malformed arch or a program without source fails with ErrInvalidValue; no
// NVRTC, or one that does not compile for arch, with ErrNoNVRTC; a program
// NVRTC rejects, with a *CompileError holding the log.
func Compile(ctx context.Context, p *Program, arch string) (*Compiled, error) {
	return compileWith(ctx, loadNVRTC, p, arch)
}

func compileWith(ctx context.Context, load func() (compiler, error), p *Program, arch string) (*Compiled, error) {
	if p == nil || p.Source == "" {
		return nil, fmt.Errorf("cuda: Compile: program without source: %w", ErrInvalidValue)
	}
	sm, real, ok := parseArch(arch)
	if !ok {
		return nil, fmt.Errorf("cuda: Compile %s: architecture %q is not sm_NN or compute_NN: %w", p.Name, arch, ErrInvalidValue)
	}
	comp, err := load()
	if err != nil {
		return nil, err
	}
	if !slices.Contains(comp.archs(), sm) {
		return nil, fmt.Errorf("cuda: Compile %s: %v compiles for %v, not %s: %w", p.Name, nvrtcInfo(comp), comp.archs(), arch, ErrNoNVRTC)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return compileProgram(comp, p, arch, real)
}

// parseArch reads "sm_NN" (a real architecture) or "compute_NN".
func parseArch(arch string) (sm int, real, ok bool) {
	digits, real := strings.CutPrefix(arch, "sm_")
	if !real {
		if digits, ok = strings.CutPrefix(arch, "compute_"); !ok {
			return 0, false, false
		}
	}
	sm, err := strconv.Atoi(digits)
	if err != nil || sm <= 0 || digits != strconv.Itoa(sm) {
		return 0, false, false
	}
	return sm, real, true
}

// compileProgram compiles p for arch, and also to a CUBIN when cubin is set.
// A rejected program is a *CompileError.
func compileProgram(comp compiler, p *Program, arch string, cubin bool) (*Compiled, error) {
	options := append([]string{"--gpu-architecture=" + arch}, p.Options...)
	ptx, image, log, err := comp.compile(p.Name, p.Source, options, cubin)
	if err != nil {
		return nil, &CompileError{Program: p.Name, Arch: arch, Log: log, Err: err}
	}
	return &Compiled{Program: p.Name, Arch: arch, NVRTC: comp.version(), PTX: ptx, CUBIN: image, Log: log}, nil
}
