package cuda

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// emulatorHeader is the C++ the emulator compiles a program's source under.
//
//go:embed emulator.h
var emulatorHeader string

// EmulatorFlagsEnv names the environment variable whose flags the emulator
// adds to the C++ compiler's command line, after its own: e.g.
// "-fsanitize=alignment,shift,bounds -fsanitize-undefined-trap-on-error" to
// make undefined behaviour in a kernel fail its launch, or "-O0 -g" to step
// through one in a debugger. The flags are part of the cache key.
const EmulatorFlagsEnv = "ROTARY_EMU_CXXFLAGS"

// emuFlags are the compiler flags of every emulated program. Strict aliasing
// is off because kernels read quantized blocks through casts of byte
// pointers, which NVCC compiles as meant; contraction is off so that CPU
// results do not depend on the host's FMA; stack clash protection makes a
// large frame touch each page of the stack, so an overflow hits the guard
// page below a fiber's stack instead of the fiber under it.
var emuFlags = []string{
	"-std=c++17", "-O2", "-fPIC", "-shared", "-fvisibility=hidden",
	"-fno-strict-aliasing", "-ffp-contract=off", "-fstack-clash-protection", "-Wno-unknown-pragmas",
}

// defaultEmuWorkers is how many threads run an emulated grid's blocks
// without WithEmulatorWorkers.
func defaultEmuWorkers() int { return min(runtime.GOMAXPROCS(0), 8) }

// emuParam is one parameter of an emulated kernel, as the C++ compiler saw
// it.
type emuParam struct {
	size int
	kind byte // 'p' pointer, 'f' floating point, 'i' signed, 'u' unsigned integer, 'o' other (a struct)
}

// emuKernel is a kernel of an emulated program.
type emuKernel struct {
	lib    *emuLibrary
	index  int
	params []emuParam
}

// emuRun is one emulated launch's shape and schedule.
type emuRun struct {
	cfg      LaunchConfig // Y and Z filled in
	args     []uint64     // parameter values, each in the low bytes
	schedule Schedule
	workers  int
}

// emuLibrary is a program compiled for the emulator and loaded.
type emuLibrary struct {
	kernels map[string]*emuKernel
	syms    emuSymbols // the object's functions (emulator_cgo.go)
}

// globalKernels lists the extern "C" __global__ functions of src in order,
// each once: the kernels a GPU module exports by name.
func globalKernels(src string) []string {
	src = stripComments(src)
	var names []string
	for _, loc := range externGlobal.FindAllStringIndex(src, -1) {
		rest := src[loc[1]:]
		if end := strings.IndexAny(rest, "{;"); end >= 0 {
			rest = rest[:end]
		}
		rest = launchBounds.ReplaceAllString(rest, " ")
		m := kernelName.FindStringSubmatch(rest)
		if m != nil && !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	return names
}

// kernelMacro finds a #define (with its continuation lines) that mentions
// __global__.
var kernelMacro = regexp.MustCompile(`(?m)^[ \t]*#[ \t]*define\b(?:[^\n]*\\\n)*[^\n]*\b__global__\b`)

// checkKernelMacros rejects kernels declared through macros, whose names
// only the preprocessor sees: the emulator, like the project's NVRTC check,
// finds kernels by reading the source, so each extern "C" __global__ entry
// point must be written out.
func checkKernelMacros(name, src string) error {
	code := stripComments(src)
	loc := kernelMacro.FindStringIndex(code)
	if loc == nil {
		return nil
	}
	line := strings.Count(code[:loc[0]], "\n") + 1
	return fmt.Errorf("cuda: Load %s: line %d: a macro declares __global__ functions; write each extern \"C\" __global__ entry point out: %w",
		name, line, ErrInvalidValue)
}

var (
	externGlobal = regexp.MustCompile(`extern\s*"C"\s*__global__\b`)
	launchBounds = regexp.MustCompile(`__launch_bounds__\s*\([^)]*\)`)
	kernelName   = regexp.MustCompile(`^[^(]*?\b([A-Za-z_]\w*)\s*\(`)
)

// stripComments blanks C comments out of src, keeping its lines and leaving
// string and character literals alone.
func stripComments(src string) string {
	var b strings.Builder
	b.Grow(len(src))
	for i := 0; i < len(src); i++ {
		switch c := src[i]; {
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(src) && src[j] != c && src[j] != '\n' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j, len(src)-1)
			b.WriteString(src[i : j+1])
			i = j
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			b.WriteByte('\n')
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return b.String()
			}
			b.WriteByte(' ')
			b.WriteString(strings.Repeat("\n", strings.Count(src[i:i+end+2], "\n")))
			i += end + 3
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// emuSource is the C++ the emulator compiles for p: the header, p's source
// under its own name (so messages and faults name the program's lines), and
// the table of kernels.
func emuSource(p *Program, kernels []string) string {
	var b strings.Builder
	b.WriteString("#line 1 \"rotary/cuda/emulator.h\"\n")
	b.WriteString(emulatorHeader)
	fmt.Fprintf(&b, "\n#line 1 %q\n", p.Name)
	b.WriteString(p.Source)
	b.WriteString("\n#line 1 \"rotary/cuda/emulator-table\"\nconst rt_emu::KernelDesc rt_emu_table[] = {\n")
	for _, k := range kernels {
		fmt.Fprintf(&b, "\tRT_EMU_KERNEL(%s),\n", k)
	}
	fmt.Fprintf(&b, "};\nconst int rt_emu_table_len = %d;\n", len(kernels))
	return b.String()
}

// cxxCompiler finds the C++ compiler: $CXX (which may carry arguments, as
// in "ccache g++"), else g++, else c++. It returns the program's path and
// its arguments.
func cxxCompiler() (string, []string, error) {
	var tried []string
	if cxx := strings.Fields(os.Getenv("CXX")); len(cxx) > 0 {
		if path, err := exec.LookPath(cxx[0]); err == nil {
			return path, cxx[1:], nil
		}
		tried = append(tried, "$CXX="+os.Getenv("CXX"))
	}
	for _, name := range []string{"g++", "c++"} {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil, nil
		}
		tried = append(tried, name)
	}
	return "", nil, fmt.Errorf("%w: no C++ compiler (tried %s)", ErrNoEmulator, strings.Join(tried, ", "))
}

// cxxVersions caches each compiler's --version, part of the cache key.
var cxxVersions sync.Map // command line -> first line of --version

func cxxVersion(ctx context.Context, cxx string, prefix []string) (string, error) {
	key := strings.Join(append([]string{cxx}, prefix...), " ")
	if v, ok := cxxVersions.Load(key); ok {
		return v.(string), nil
	}
	out, err := exec.CommandContext(ctx, cxx, append(slices.Clone(prefix), "--version")...).Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s --version: %v", ErrNoEmulator, cxx, err)
	}
	v, _, _ := strings.Cut(string(out), "\n")
	cxxVersions.Store(key, v)
	return v, nil
}

// emuBuild is one program's compilation in this process: concurrent loads
// of a program wait for the first.
type emuBuild struct {
	done chan struct{}
	lib  *emuLibrary
	err  error
}

var emuBuilds = struct {
	sync.Mutex
	m map[string]*emuBuild
}{m: make(map[string]*emuBuild)}

// loadEmulated compiles the kernels of p for the emulator (or finds them in
// this process or the disk cache) and loads them.
func loadEmulated(ctx context.Context, p *Program, kernels []string, cfg config, log *slog.Logger) (*emuLibrary, error) {
	if err := emuAvailable(); err != nil {
		return nil, err
	}
	cxx, prefix, err := cxxCompiler()
	if err != nil {
		return nil, err
	}
	version, err := cxxVersion(ctx, cxx, prefix)
	if err != nil {
		return nil, err
	}
	flags := append(slices.Clone(prefix), emuFlags...)
	flags = append(flags, strings.Fields(os.Getenv(EmulatorFlagsEnv))...)
	src := emuSource(p, kernels)
	key := emuKey(src, cxx, version, flags)

	emuBuilds.Lock()
	b := emuBuilds.m[key]
	if b == nil {
		b = &emuBuild{done: make(chan struct{})}
		emuBuilds.m[key] = b
		emuBuilds.Unlock()
		b.lib, b.err = buildEmulated(ctx, p.Name, src, key, cxx, flags, cfg, log)
		if b.err != nil && ctx.Err() != nil {
			// A cancelled build is not the program's fault: the next load
			// tries again.
			emuBuilds.Lock()
			delete(emuBuilds.m, key)
			emuBuilds.Unlock()
		}
		close(b.done)
	} else {
		emuBuilds.Unlock()
		select {
		case <-b.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return b.lib, b.err
}

// emuKey names what an emulated program's object depends on.
func emuKey(src, cxx, version string, flags []string) string {
	h := sha256.New()
	for _, s := range append([]string{src, cxx, version, runtime.GOARCH}, flags...) {
		fmt.Fprintf(h, "%d:%s\n", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// emuCacheDir is where emulated programs' objects are kept ("" for none).
func emuCacheDir(cfg config) string {
	if cfg.cacheDirSet {
		return cfg.cacheDir
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(base, "rotary", "cuda", "emulator")
}

// buildEmulated loads the object for key from the disk cache, or compiles
// it there (into a temporary directory without a cache, removed once the
// object is loaded).
func buildEmulated(ctx context.Context, name, src, key, cxx string, flags []string, cfg config, log *slog.Logger) (*emuLibrary, error) {
	dir := emuCacheDir(cfg)
	if dir != "" {
		path := filepath.Join(dir, key+".so")
		if _, err := os.Stat(path); err == nil {
			lib, err := openEmulated(path)
			if err == nil {
				return lib, nil
			}
			log.Warn("cuda: cached emulator object rejected; compiling", slog.String("program", name), slog.Any("err", err))
			os.Remove(path)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			log.Warn("cuda: emulator disk cache off", slog.String("dir", dir), slog.Any("err", err))
			dir = ""
		}
	}
	work, err := os.MkdirTemp(dir, "build-*")
	if err != nil && dir != "" {
		log.Warn("cuda: emulator disk cache off", slog.String("dir", dir), slog.Any("err", err))
		dir = ""
		work, err = os.MkdirTemp("", "rotary-emu-*")
	}
	if err != nil {
		return nil, fmt.Errorf("cuda: Load %s: emulator: %w", name, err)
	}
	defer os.RemoveAll(work)
	srcPath := filepath.Join(work, "program.cc")
	if err := os.WriteFile(srcPath, []byte(src), 0o644); err != nil {
		return nil, fmt.Errorf("cuda: Load %s: emulator: %w", name, err)
	}
	obj := filepath.Join(work, "program.so")
	args := append(slices.Clone(flags), "-o", obj, srcPath)
	start := time.Now()
	cmd := exec.CommandContext(ctx, cxx, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("cuda: Load %s: emulator: %w", name, ctx.Err())
		}
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return nil, fmt.Errorf("cuda: Load %s: %w: %s: %v", name, ErrNoEmulator, cxx, err)
		}
		return nil, &CompileError{Program: name, Arch: "host", Log: out.String(), Err: fmt.Errorf("%s %s: %w", filepath.Base(cxx), strings.Join(flags, " "), err)}
	}
	log.Debug("cuda: compiled for the emulator", slog.String("program", name), slog.String("cxx", cxx),
		slog.Duration("took", time.Since(start)), slog.String("log", out.String()))
	if dir != "" {
		path := filepath.Join(dir, key+".so")
		// The rename is atomic: a process that loads the object meanwhile
		// sees all of it or none.
		if err := os.Rename(obj, path); err == nil {
			obj = path
		} else {
			log.Warn("cuda: emulator disk cache", slog.String("dir", dir), slog.Any("err", err))
		}
	}
	return openEmulated(obj)
}

// size is the size of the parameter an Arg passes.
func (a Arg) size() int {
	switch a.kind {
	case argInt32, argUint32, argFloat32:
		return 4
	}
	return 8
}

// fits reports whether an Arg of kind k may pass a parameter of kind p:
// pointers and integers of one size stand for each other (a device address
// is a number), floating point only for floating point.
func (p emuParam) fits(k argKind) bool {
	switch k {
	case argFloat32, argFloat64:
		return p.kind == 'f' || p.kind == 'o'
	}
	return p.kind != 'f'
}

// checkArgs checks args against the kernel's parameters as the C++ compiler
// saw them: their number, each one's size, and floating point against the
// rest.
func (k *emuKernel) checkArgs(args []Arg) error {
	if len(args) != len(k.params) {
		return fmt.Errorf("%d arguments for %d parameters: %w", len(args), len(k.params), ErrInvalidValue)
	}
	for i, a := range args {
		p := k.params[i]
		if a.kind == 0 {
			return fmt.Errorf("argument %d is a zero Arg: %w", i, ErrInvalidValue)
		}
		if a.size() != p.size || !p.fits(a.kind) {
			return fmt.Errorf("argument %d is %s (%d bytes) for parameter %d, %s of %d bytes: %w",
				i, a.kind, a.size(), i, paramKinds[p.kind], p.size, ErrInvalidValue)
		}
	}
	return nil
}

var paramKinds = map[byte]string{'p': "a pointer", 'f': "floating point", 'i': "a signed integer", 'u': "an unsigned integer", 'o': "a struct or other type"}

// emuArgs is the value of each argument, in the low bytes of 8: a device
// pointer as the address of its bytes.
func emuArgs(args []Arg) []uint64 {
	v := make([]uint64, len(args))
	for i, a := range args {
		switch a.kind {
		case argBuffer:
			v[i] = a.buf.addr + uint64(a.off)
		case argHost:
			v[i] = a.host.devAddr + uint64(a.off)
		default:
			v[i] = a.bits
		}
	}
	return v
}
