package moe_test

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/stretchr/testify/require"
)

// kqRun runs the test kernels of testdata/kquants_test.cu.
type kqRun interface {
	// dot launches kq_dot_T over rows × nb weight blocks w and activation
	// blocks x (8·nb of them) and returns out (rows·nb floats).
	dot(t testing.TB, k kqType, w, x []byte, rows, nb int) []float32
	// dequant launches kq_dequant_T over the blocks and returns their values.
	dequant(t testing.TB, k kqType, blocks []byte) []float32
}

// kqThreads is the test kernels' block size: 64 threads.
const kqThreads = 64

// kqGxx runs the test kernels compiled by the system C++ compiler, each
// thread of a launch in turn: the kernels are independent per thread (no
// shared memory, barriers or warp operations), so a sequential run executes
// exactly what the device does, through the prelude's C fallbacks.
type kqGxx struct{ bin string }

// kqGxxDriver hosts the program: the CUDA keywords the kernels use, and a
// main that launches one kernel over files of arguments.
const kqGxxDriver = `#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#define __device__
#define __global__
#define __forceinline__ inline
static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
struct kq_dim3 { unsigned x, y, z; };
static kq_dim3 threadIdx, blockIdx, blockDim;
#include "program.cu"

static std::vector<unsigned char> load(const char *path) {
	FILE *f = fopen(path, "rb");
	if (!f) { perror(path); exit(1); }
	fseek(f, 0, SEEK_END);
	std::vector<unsigned char> b(ftell(f) + 64);
	rewind(f);
	if (fread(b.data(), 1, b.size() - 64, f) != b.size() - 64) { perror(path); exit(1); }
	fclose(f);
	return b;
}

typedef void (*dot_fn)(const u8 *, const rt_q8x32 *, float *, int, int);
typedef void (*dequant_fn)(const u8 *, float *, int);
static const struct { const char *name; dot_fn dot; dequant_fn dequant; } kernels[] = {
	{"q2_K", kq_dot_q2_K, kq_dequant_q2_K}, {"q3_K", kq_dot_q3_K, kq_dequant_q3_K},
	{"q4_K", kq_dot_q4_K, kq_dequant_q4_K}, {"q5_K", kq_dot_q5_K, kq_dequant_q5_K},
	{"q6_K", kq_dot_q6_K, kq_dequant_q6_K}, {"iq4_xs", kq_dot_iq4_xs, kq_dequant_iq4_xs},
};

// usage: driver dot T w x out rows nb threads | driver dequant T w out nblocks threads
int main(int argc, char **argv) {
	for (auto &k : kernels) {
		if (strcmp(k.name, argv[2])) continue;
		std::vector<unsigned char> w = load(argv[3]);
		bool dot = !strcmp(argv[1], "dot");
		std::vector<unsigned char> x = dot ? load(argv[4]) : std::vector<unsigned char>();
		int n = dot ? atoi(argv[6]) * atoi(argv[7]) : 8 * atoi(argv[5]);
		std::vector<float> out(dot ? n : 32 * n);
		blockDim.x = atoi(argv[argc - 1]);
		for (blockIdx.x = 0; blockIdx.x * blockDim.x < (unsigned)n; blockIdx.x++) {
			for (threadIdx.x = 0; threadIdx.x < blockDim.x; threadIdx.x++) {
				if (dot) k.dot(w.data(), (const rt_q8x32 *)x.data(), out.data(), atoi(argv[6]), atoi(argv[7]));
				else k.dequant(w.data(), out.data(), atoi(argv[5]));
			}
		}
		FILE *f = fopen(argv[dot ? 5 : 4], "wb");
		fwrite(out.data(), sizeof(float), out.size(), f);
		return fclose(f) != 0;
	}
	return 2;
}
`

// kqRunners returns the backends the test kernels run on here, by name: a
// GPU when there is one, and the C++ build of the program.
func kqRunners(t *testing.T) map[string]kqRun {
	runners := map[string]kqRun{"g++": kqGxxRunner(t)}
	dev, err := cuda.Open(context.Background(), 0)
	switch {
	case errors.Is(err, cuda.ErrNoDriver) || errors.Is(err, cuda.ErrNoDevice):
		t.Logf("no GPU: %v", err)
	case err != nil:
		require.NoError(t, err)
	default:
		t.Cleanup(func() { require.NoError(t, dev.Close()) })
		runners["gpu"] = kqOpen(t, dev)
	}
	return runners
}

// kqDevice runs the test kernels on a cuda.Device.
type kqDevice struct {
	dev    cuda.Device
	mod    cuda.Module
	stream cuda.Stream
}

func kqOpen(t testing.TB, dev cuda.Device) *kqDevice {
	mod, err := dev.Load(context.Background(), &cuda.Program{Name: "kquants_test.cu", Source: kqProgramSource(t)})
	require.NoError(t, err)
	stream, err := dev.NewStream()
	require.NoError(t, err)
	return &kqDevice{dev: dev, mod: mod, stream: stream}
}

// launch runs kernel over n threads with the inputs copied to device
// buffers, an output buffer of outFloats floats and the int arguments, and
// returns the output.
func (d *kqDevice) launch(t testing.TB, kernel string, n int, inputs [][]byte, outFloats int, ints ...int) []float32 {
	k, err := d.mod.Kernel(kernel)
	require.NoError(t, err)
	var args []cuda.Arg
	alloc := func(size int) cuda.Buffer {
		b, err := d.dev.Alloc(int64(size))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, d.dev.Free(b)) })
		args = append(args, cuda.Ptr(b))
		return b
	}
	for _, in := range inputs {
		require.NoError(t, d.stream.CopyHtoD(alloc(len(in)), 0, in))
	}
	out := alloc(4 * outFloats)
	for _, v := range ints {
		args = append(args, cuda.I32(int32(v)))
	}
	grid := cuda.Dim3{X: uint32((n + kqThreads - 1) / kqThreads), Y: 1, Z: 1}
	require.NoError(t, d.stream.Launch(k, cuda.LaunchConfig{Grid: grid, Block: cuda.Dim3{X: kqThreads, Y: 1, Z: 1}}, args...))
	raw := make([]byte, 4*outFloats)
	require.NoError(t, d.stream.CopyDtoH(raw, out, 0))
	require.NoError(t, d.stream.Synchronize(context.Background()))
	return kqFloats(raw)
}

func (d *kqDevice) dot(t testing.TB, k kqType, w, x []byte, rows, nb int) []float32 {
	return d.launch(t, "kq_dot_"+k.name, rows*nb, [][]byte{w, x}, rows*nb, rows, nb)
}

func (d *kqDevice) dequant(t testing.TB, k kqType, blocks []byte) []float32 {
	n := len(blocks) / k.typ.BlockBytes()
	return d.launch(t, "kq_dequant_"+k.name, 8*n, [][]byte{blocks}, n*kqQK, n)
}

func kqGxxRunner(t testing.TB) kqRun {
	cxx, err := exec.LookPath(cmp.Or(os.Getenv("CXX"), "g++"))
	if err != nil {
		t.Skipf("no C++ compiler to run the kernels: %v", err)
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "program.cu"), []byte(kqProgramSource(t)), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "driver.cpp"), []byte(kqGxxDriver), 0o644))
	bin := filepath.Join(dir, "driver")
	// No FMA contraction, as on the device for the dequantizers' rounded
	// products; the alignment sanitizer catches loads wider than a format's
	// alignment allows.
	out, err := exec.Command(cxx, "-std=c++17", "-O1", "-ffp-contract=off", "-Wall", "-Wno-unknown-pragmas",
		"-fsanitize=alignment,undefined", "-fno-sanitize-recover=all",
		"-o", bin, filepath.Join(dir, "driver.cpp")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Empty(t, string(out), "compiler warnings")
	return &kqGxx{bin: bin}
}

func (g *kqGxx) run(t testing.TB, args ...string) {
	out, err := exec.Command(g.bin, args...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Empty(t, string(out))
}

func (g *kqGxx) files(t testing.TB, bufs ...[]byte) []string {
	dir := t.TempDir()
	var paths []string
	for i, b := range bufs {
		p := filepath.Join(dir, strconv.Itoa(i))
		require.NoError(t, os.WriteFile(p, b, 0o644))
		paths = append(paths, p)
	}
	return append(paths, filepath.Join(dir, "out"))
}

func (g *kqGxx) dot(t testing.TB, k kqType, w, x []byte, rows, nb int) []float32 {
	p := g.files(t, w, x)
	g.run(t, "dot", k.name, p[0], p[1], p[2], strconv.Itoa(rows), strconv.Itoa(nb), strconv.Itoa(kqThreads))
	return kqReadFloats(t, p[2])
}

func (g *kqGxx) dequant(t testing.TB, k kqType, blocks []byte) []float32 {
	p := g.files(t, blocks)
	g.run(t, "dequant", k.name, p[0], p[1], strconv.Itoa(len(blocks)/k.typ.BlockBytes()), strconv.Itoa(kqThreads))
	return kqReadFloats(t, p[1])
}

func kqReadFloats(t testing.TB, path string) []float32 {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return kqFloats(b)
}

// kqFloats decodes little-endian float32s.
func kqFloats(b []byte) []float32 {
	f := make([]float32, len(b)/4)
	for i := range f {
		f[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return f
}
