package cuda

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rotary-moe/rotary/cuda/internal/testkernels"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// emulatorTestSource is testkernels' emulator.cu, which the NVRTC check
// compiles too.
var emulatorTestSource = testkernels.Emulator

// emuTestProgram is emulator.cu: kernels without Go twins.
var emuTestProgram = &Program{Name: "emulator.cu", Source: Prelude + emulatorTestSource}

//go:embed testdata/intrinsics.cu
var intrinsicsTestSource string

//go:embed testdata/faults.cu
var faultsTestSource string

// faultsProgram is testdata/faults.cu: kernels that fault on purpose.
var faultsProgram = &Program{Name: "faults.cu", Source: Prelude + faultsTestSource}

var testSchedules = []Schedule{ScheduleForward, ScheduleReverse, ScheduleRandom(1), ScheduleRandom(2)}

// requireEmulator skips a test when err says there is no emulator here,
// unless ROTARY_REQUIRE_EMULATOR=1, and fails it on any other error.
func requireEmulator(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNoEmulator) && os.Getenv("ROTARY_REQUIRE_EMULATOR") != "1" {
		t.Skip(err)
	}
	require.NoError(t, err)
}

// loadEmulated loads p on d and looks its kernels up.
func loadEmulatedKernels(t testing.TB, d Device, p *Program) func(name string) Kernel {
	t.Helper()
	m, err := d.Load(context.Background(), p)
	requireEmulator(t, err)
	return func(name string) Kernel {
		k, err := m.Kernel(name)
		require.NoError(t, err)
		return k
	}
}

// upload copies v into a new device buffer.
func upload[T Scalar](t *testing.T, d Device, s Stream, v []T) Buffer {
	t.Helper()
	b := mustAlloc(t, d, int64(len(asBytes(v))))
	require.NoError(t, s.CopyHtoD(b, 0, asBytes(v)))
	return b
}

// download copies n values of b back, waiting for the stream.
func download[T Scalar](t *testing.T, s Stream, b Buffer, n int) []T {
	t.Helper()
	v := make([]T, n)
	require.NoError(t, s.CopyDtoH(asBytes(v), b, 0))
	require.NoError(t, s.Synchronize(context.Background()))
	return v
}

func forEachSchedule(t *testing.T, fn func(t *testing.T, d *HostDevice)) {
	for _, sc := range testSchedules {
		t.Run(sc.String(), func(t *testing.T) { fn(t, newHost(t, WithSchedule(sc))) })
	}
}

func TestGlobalKernels(t *testing.T) {
	src := `
// extern "C" __global__ void commented(int *x) {}
/* extern "C" __global__ void blocked(int *x) {} */
extern "C" __global__ void __launch_bounds__(128, 2) first(const float *a, int n);
extern "C" __global__ void first(const float *a, int n) { const char *s = "// not a comment"; }
extern "C"
__global__ void
__launch_bounds__(256) second (int *x) {}
__global__ void not_exported(int *x) {}
extern "C" __device__ int helper(int x) { return x; }
extern "C" __global__ void third(unsigned long long n) {}`
	assert.Equal(t, []string{"first", "second", "third"}, globalKernels(src))
	assert.Equal(t, []string{"vadd", "axpy", "addk", "bytesum"}, globalKernels(testKernelsSource))

	assert.NoError(t, checkKernelMacros("ok.cu", src+"\n#define TWICE(x) (2 * (x)) // __global__ in a comment\n"))
	macro := "// kernels\n#define ENTRY(T) \\\n\textern \"C\" __global__ void scale_##T(T *x) { x[0] *= 2; }\nENTRY(float)\n"
	err := checkKernelMacros("macro.cu", macro)
	assert.ErrorIs(t, err, ErrInvalidValue)
	assert.ErrorContains(t, err, "cuda: Load macro.cu: line 2: a macro declares __global__ functions")
	_, err = newHost(t).Load(context.Background(), &Program{Name: "macro.cu", Source: macro})
	assert.ErrorIs(t, err, ErrInvalidValue)
}

// TestEmulatorRunsTestKernels runs the package's test kernels from their
// CUDA C, without the Go twins, under every schedule.
func TestEmulatorRunsTestKernels(t *testing.T) {
	forEachSchedule(t, func(t *testing.T, d *HostDevice) {
		kernel := loadEmulatedKernels(t, d, &Program{Name: "kernels.cu", Source: testKernelsSource})
		s := mustStream(t, d)
		const n = 1000
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = float32(i), float32(2*i)+0.5
		}
		da, db, dc := upload(t, d, s, a), upload(t, d, s, b), mustAlloc(t, d, 4*n)
		require.NoError(t, s.Launch(kernel("vadd"), LaunchConfig{Grid: Dim3{X: 8}, Block: Dim3{X: 128}}, Ptr(da), Ptr(db), Ptr(dc), U32(n)))
		c := download[float32](t, s, dc, n)
		for i := range c {
			require.Equal(t, a[i]+b[i], c[i], "vadd at %d", i)
		}

		dy := upload(t, d, s, []float64{1, 2, 3, 4, 5})
		dx := upload(t, d, s, []float64{1, 1, 2, 4, 8})
		require.NoError(t, s.Launch(kernel("axpy"), LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 32}}, F64(2.5), Ptr(dx), Ptr(dy), I64(4)))
		assert.Equal(t, []float64{3.5, 4.5, 8, 14, 5}, download[float64](t, s, dy, 5))

		dk := upload(t, d, s, []int32{10, 20, 30})
		require.NoError(t, s.Launch(kernel("addk"), LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 64}}, PtrAt(dk, 4), I32(-7), U64(2)))
		assert.Equal(t, []int32{10, 13, 23}, download[int32](t, s, dk, 3))

		// Host memory mapped into the device: allocated, and a registered Go
		// slice.
		pinned, err := d.AllocHost(300, HostAllocDeviceMap)
		require.NoError(t, err)
		goMem := make([]byte, 300)
		registered, err := d.Register(goMem, RegisterDeviceMap)
		require.NoError(t, err)
		for i := range 300 {
			pinned.Bytes()[i], goMem[i] = byte(i), byte(3*i)
		}
		for _, h := range []HostBuffer{pinned, registered} {
			sum := upload(t, d, s, []uint32{0})
			require.NoError(t, s.Launch(kernel("bytesum"), LaunchConfig{Grid: Dim3{X: 2}, Block: Dim3{X: 128}}, HostPtr(h, 10), Ptr(sum), U32(200)))
			var want uint32
			for _, v := range h.Bytes()[10:210] {
				want += uint32(v)
			}
			assert.Equal(t, []uint32{want}, download[uint32](t, s, sum, 1))
		}
	})
}

// halfToFloat widens binary16 bits, normal numbers only (the test's scales).
func halfToFloat(h uint16) float32 {
	f := float32(math.Ldexp(1+float64(h&0x3ff)/1024, int(h>>10&0x1f)-15))
	if h&0x8000 != 0 {
		return -f
	}
	return f
}

// q8Matrix makes a rows×cols matrix of Q8_0-like blocks and its values.
func q8Matrix(rng *rand.Rand, rows, cols int) (blocks []byte, values []float32) {
	nb := cols / 32
	blocks = make([]byte, rows*nb*34)
	values = make([]float32, rows*cols)
	for r := range rows {
		for b := range nb {
			blk := blocks[(r*nb+b)*34:]
			// A scale between 2^-8 and 2^-6, normal in binary16.
			h := uint16(7+rng.IntN(2))<<10 | uint16(rng.IntN(1024))
			blk[0], blk[1] = byte(h), byte(h>>8)
			for j := range 32 {
				q := int8(rng.IntN(256) - 128)
				blk[2+j] = byte(q)
				values[r*cols+b*32+j] = halfToFloat(h) * float32(q)
			}
		}
	}
	return blocks, values
}

func TestEmulatorGEMV(t *testing.T) {
	shapes := []struct{ rows, cols int }{{1, 32}, {37, 96}, {130, 4096}}
	if !testing.Short() {
		shapes = append(shapes, struct{ rows, cols int }{2048, 2048})
	}
	forEachSchedule(t, func(t *testing.T, d *HostDevice) {
		kernel := loadEmulatedKernels(t, d, emuTestProgram)
		s := mustStream(t, d)
		rng := rand.New(rand.NewPCG(1, 2))
		for _, sh := range shapes {
			w, values := q8Matrix(rng, sh.rows, sh.cols)
			x := make([]float32, sh.cols)
			for i := range x {
				x[i] = rng.Float32()*2 - 1
			}
			dw, dx, dy := upload(t, d, s, w), upload(t, d, s, x), mustAlloc(t, d, int64(4*sh.rows))
			require.NoError(t, s.Launch(kernel("gemv_q8"), LaunchConfig{Grid: Dim3{X: uint32(sh.rows)}, Block: Dim3{X: 128}},
				Ptr(dw), Ptr(dx), Ptr(dy), I32(int32(sh.cols))))
			y := download[float32](t, s, dy, sh.rows)
			for r := range sh.rows {
				var want, mag float64
				for c := range sh.cols {
					p := float64(values[r*sh.cols+c]) * float64(x[c])
					want += p
					mag += math.Abs(p)
				}
				// float32 sums in another order: a few ulps of the magnitude.
				require.InDelta(t, want, y[r], 1e-5*mag+1e-6, "%dx%d row %d", sh.rows, sh.cols, r)
			}
		}
	})
}

// TestScheduleCatchesMissingSync shows why kernel tests run under several
// schedules: a kernel missing a __syncthreads is right in forward order and
// wrong in reverse, while the kernel with the barrier is right in all.
func TestScheduleCatchesMissingSync(t *testing.T) {
	run := func(t *testing.T, sc Schedule, name string) (got, want []float32) {
		d := newHost(t, WithSchedule(sc))
		kernel := loadEmulatedKernels(t, d, emuTestProgram)
		s := mustStream(t, d)
		in := make([]float32, 4*256)
		for i := range in {
			in[i] = rand.Float32() + 1 // fresh values: no stale shared memory matches
		}
		din, dout := upload(t, d, s, in), mustAlloc(t, d, 4*int64(len(in)))
		require.NoError(t, s.Launch(kernel(name), LaunchConfig{Grid: Dim3{X: 4}, Block: Dim3{X: 256}}, Ptr(din), Ptr(dout)))
		want = make([]float32, len(in))
		for i := range in {
			if i%256 > 0 {
				want[i] = in[i-1]
			}
		}
		return download[float32](t, s, dout, len(in)), want
	}
	got, want := run(t, ScheduleForward, "shift_racy")
	assert.Equal(t, want, got, "forward order hides the missing barrier")
	got, want = run(t, ScheduleReverse, "shift_racy")
	assert.NotEqual(t, want, got, "reverse order shows it")
	got, want = run(t, ScheduleRandom(7), "shift_racy")
	assert.NotEqual(t, want, got, "random order shows it")
	for _, sc := range testSchedules {
		got, want = run(t, sc, "shift_synced")
		assert.Equal(t, want, got, "with the barrier, under %v", sc)
	}
}

// lineOf is the line number of the first line of src containing text.
func lineOf(t *testing.T, src, text string) int {
	i := strings.Index(src, text)
	require.GreaterOrEqual(t, i, 0, text)
	return strings.Count(src[:i], "\n") + 1
}

func TestEmulatorReportsFaults(t *testing.T) {
	src := emuTestProgram.Source
	barrier := lineOf(t, src, "extern \"C\" __global__ void barrier_divergent") + 2
	cases := []struct {
		kernel string
		block  uint32
		want   []string
	}{
		{"barrier_divergent", 64, []string{"divergent __syncthreads", fmt.Sprintf("emulator.cu:%d", barrier), fmt.Sprintf("emulator.cu:%d", barrier+2)}},
		{"shfl_exited", 32, []string{"__shfl_xor_sync with mask 0xffffffff", "exited", fmt.Sprintf("emulator.cu:%d", lineOf(t, src, "__shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 1)"))}},
		{"shfl_outside", 32, []string{"__shfl_sync reads lane 16, outside the mask 0xffff", fmt.Sprintf("emulator.cu:%d", lineOf(t, src, "__shfl_sync(0x0000ffffu"))}},
		{"warp_vs_barrier", 32, []string{"deadlock", "at __syncthreads", "at __shfl_sync"}},
		{"trap_at", 64, []string{"__trap()", "thread (5,0,0) of block (1,0,0)", fmt.Sprintf("emulator.cu:%d", lineOf(t, src, "__trap();"))}},
	}
	forEachSchedule(t, func(t *testing.T, d *HostDevice) {
		kernel := loadEmulatedKernels(t, d, emuTestProgram)
		out := mustAlloc(t, d, 4*64)
		for _, c := range cases {
			s := mustStream(t, d)
			require.NoError(t, s.Launch(kernel(c.kernel), LaunchConfig{Grid: Dim3{X: 3}, Block: Dim3{X: c.block}}, Ptr(out)))
			err := s.Synchronize(context.Background())
			require.ErrorIs(t, err, ErrLaunchFailed, c.kernel)
			for _, w := range c.want {
				assert.ErrorContains(t, err, w, c.kernel)
			}
			assert.ErrorContains(t, err, "cuda: kernel "+c.kernel)
			// The fault fails the stream, not the device.
			require.NoError(t, s.Close())
		}
	})
}

// TestEmulatorCatchesHardwareFaults reads past a buffer's end, overflows a
// thread's stack and divides by zero: each fails its launch, as an illegal
// address fails a GPU's, and the process carries on.
func TestEmulatorCatchesHardwareFaults(t *testing.T) {
	d := newHost(t)
	kernel := loadEmulatedKernels(t, d, faultsProgram)
	const n = 256
	s := mustStream(t, d)
	x, out := upload(t, d, s, make([]float32, n)), mustAlloc(t, d, 4*n)
	require.NoError(t, s.Synchronize(context.Background()))
	launch := func(name string, cfg LaunchConfig, args ...Arg) error {
		s := mustStream(t, d)
		require.NoError(t, s.Launch(kernel(name), cfg, args...))
		err := s.Synchronize(context.Background())
		assert.ErrorIs(t, err, ErrLaunchFailed, name)
		assert.ErrorContains(t, err, "cuda: kernel "+name, name)
		return err
	}
	err := launch("off_by_one", LaunchConfig{Grid: Dim3{X: 2}, Block: Dim3{X: n / 2}}, Ptr(x), Ptr(out), I32(n))
	assert.ErrorContains(t, err, "thread (127,0,0) of block (1,0,0): illegal address")
	assert.ErrorContains(t, err, fmt.Sprintf("%#x (SIGSEGV)", x.Addr()+4*n))
	err = launch("deep", LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 4}}, Ptr(out))
	assert.ErrorContains(t, err, "stack overflow")
	zeros := upload(t, d, s, []int32{1, 2, 0, 4})
	require.NoError(t, s.Synchronize(context.Background()))
	err = launch("divide", LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 4}}, Ptr(zeros), Ptr(out))
	assert.ErrorContains(t, err, "thread (2,0,0) of block (0,0,0): arithmetic fault")

	// Faults outside kernels still reach the Go runtime.
	assert.Panics(t, func() {
		var p *int
		_ = *p
	}, "a nil dereference in Go panics")

	// Within the buffer all is well.
	require.NoError(t, s.Launch(kernel("off_by_one"), LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: n}}, Ptr(x), Ptr(out), I32(n-1)))
	require.NoError(t, s.Synchronize(context.Background()))
}

// TestEmulatorIntrinsics checks the bit and conversion intrinsics against
// their definitions in CUDA's documentation, written in Go.
func TestEmulatorIntrinsics(t *testing.T) {
	d := newHost(t)
	kernel := loadEmulatedKernels(t, d, &Program{Name: "intrinsics.cu", Source: Prelude + intrinsicsTestSource})
	s := mustStream(t, d)
	rng := rand.New(rand.NewPCG(5, 6))
	const n = 64
	in := make([]uint32, 2*n)
	for i := range in {
		in[i] = rng.Uint32()
	}
	in[0], in[1] = 0, 0 // __clz(0), __ffs(0)
	in[2], in[3] = 0x80000000, 0x7f7f7f80
	din, dout := upload(t, d, s, in), mustAlloc(t, d, 4*16*n)
	require.NoError(t, s.Launch(kernel("intrinsics"), LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: n}}, Ptr(din), Ptr(dout)))
	got := download[uint32](t, s, dout, 16*n)
	for i := range n {
		a, b := in[2*i], in[2*i+1]
		hilo := uint64(b)<<32 | uint64(a)
		perm := uint32(0)
		for k := range 4 {
			perm |= uint32(hilo>>(8*(b>>(4*k)&7))&0xff) << (8 * k)
		}
		var vsub uint32
		for k := 0; k < 32; k += 8 {
			v := max(-128, min(127, int(int8(a>>k))-int(int8(b>>k))))
			vsub |= uint32(uint8(int8(v))) << k
		}
		sat := math.Float32frombits(b)
		switch {
		case sat != sat || sat < 0:
			sat = 0
		case sat > 1:
			sat = 1
		}
		want := []uint32{
			uint32(bits.OnesCount32(a)),
			uint32(bits.LeadingZeros32(a)),
			uint32(bits.TrailingZeros32(b)+1) % 33,
			bits.Reverse32(a),
			perm,
			uint32(hilo << (b & 31) >> 32),
			uint32(hilo >> (b & 31)),
			uint32(hilo << min(b&63, 32) >> 32),
			uint32(hilo >> min(b&63, 32)),
			uint32(uint64(a) * uint64(b) >> 32),
			uint32(int64(int32(a)) * int64(int32(b)) >> 32),
			vsub,
			uint32(int32(math.RoundToEven(float64(math.Float32frombits(a&0x807fffff | 0x4a000000))))),
			max(a, b) - uint32(min(int32(a), int32(b))),
			math.Float32bits(sat),
			in[2*((i+1)%n)],
		}
		require.Equal(t, want, got[16*i:16*i+16], "thread %d: a=%#x b=%#x", i, a, b)
	}
}

// TestEmulatorUcontext runs kernels with the portable context switch that
// other architectures use.
func TestEmulatorUcontext(t *testing.T) {
	t.Setenv(EmulatorFlagsEnv, "-DRT_EMU_UCONTEXT")
	d := newHost(t, WithSchedule(ScheduleRandom(5)))
	kernel := loadEmulatedKernels(t, d, emuTestProgram)
	s := mustStream(t, d)
	out := mustAlloc(t, d, 4*6*64)
	require.NoError(t, s.Launch(kernel("votes"), LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 64}}, Ptr(out)))
	got := download[uint32](t, s, out, 6*64)
	assert.Equal(t, []uint32{0xaaaaaaaa, 1, 0, 31 * 32 / 2, 4, 7}, got[6*37:6*38], "thread 37, lane 5")
	require.NoError(t, s.Launch(kernel("trap_at"), LaunchConfig{Grid: Dim3{X: 2}, Block: Dim3{X: 64}}, Ptr(out)))
	assert.ErrorContains(t, s.Synchronize(context.Background()), "__trap()")
}

// TestEmulatorUndefinedBehaviour builds the kernels with UBSan in trap mode:
// a misaligned load, silent on x86, fails the launch as it faults a GPU.
func TestEmulatorUndefinedBehaviour(t *testing.T) {
	t.Setenv(EmulatorFlagsEnv, "-fsanitize=alignment -fsanitize-undefined-trap-on-error")
	d := newHost(t)
	kernel := loadEmulatedKernels(t, d, faultsProgram)
	s := mustStream(t, d)
	blk, out := mustAlloc(t, d, 34*4), mustAlloc(t, d, 16)
	require.NoError(t, s.Launch(kernel("misaligned"), LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 4}}, Ptr(blk), Ptr(out)))
	err := s.Synchronize(context.Background())
	assert.ErrorIs(t, err, ErrLaunchFailed)
	assert.ErrorContains(t, err, "thread (0,0,0) of block (0,0,0): illegal instruction")
}

func TestEmulatorArgChecks(t *testing.T) {
	d := newHost(t)
	kernel := loadEmulatedKernels(t, d, emuTestProgram)
	s := mustStream(t, d)
	x := mustAlloc(t, d, 64)
	cfg := LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 32}}
	gemv := kernel("gemv_q8")
	cases := []struct {
		args []Arg
		want string
	}{
		{[]Arg{Ptr(x), Ptr(x), Ptr(x)}, "3 arguments for 4 parameters"},
		{[]Arg{Ptr(x), Ptr(x), Ptr(x), I64(1)}, "argument 3 is I64 (8 bytes) for parameter 3, a signed integer of 4 bytes"},
		{[]Arg{Ptr(x), F32(1), Ptr(x), I32(1)}, "argument 1 is F32 (4 bytes) for parameter 1, a pointer of 8 bytes"},
		{[]Arg{Ptr(x), F64(1), Ptr(x), I32(1)}, "argument 1 is F64 (8 bytes) for parameter 1, a pointer of 8 bytes"},
		{[]Arg{Ptr(x), Ptr(x), Ptr(x), F32(1)}, "argument 3 is F32 (4 bytes) for parameter 3, a signed integer"},
		{[]Arg{Ptr(x), Ptr(x), Arg{}, I32(1)}, "argument 2 is a zero Arg"},
	}
	for _, c := range cases {
		err := s.Launch(gemv, cfg, c.args...)
		assert.ErrorIs(t, err, ErrInvalidValue, c.want)
		assert.ErrorContains(t, err, "cuda: Launch gemv_q8: "+c.want)
	}
	// A device address passed as a number fits a pointer parameter.
	require.NoError(t, s.Launch(gemv, cfg, U64(x.Addr()), Ptr(x), Ptr(x), I32(0)))
	require.NoError(t, s.Synchronize(context.Background()))

	nodata := newHost(t, WithoutData())
	kernel = loadEmulatedKernels(t, nodata, emuTestProgram)
	y := mustAlloc(t, nodata, 64)
	err := mustStream(t, nodata).Launch(kernel("gemv_q8"), cfg, Ptr(y), Ptr(y), Ptr(y), I32(0))
	assert.ErrorIs(t, err, ErrInvalidValue)
	assert.ErrorContains(t, err, "WithoutData")
}

func TestNoEmulator(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CXX", "no-such-c++")
	d := newHost(t)
	ctx := context.Background()
	_, err := d.Load(ctx, emuTestProgram)
	assert.ErrorIs(t, err, ErrNoEmulator)
	if emuAvailable() == nil { // with cgo: the compiler is what is missing
		assert.ErrorContains(t, err, "tried $CXX=no-such-c++, g++, c++")
	}

	// The Go twins of a program still run; its other kernels cannot.
	m, err := d.Load(ctx, &Program{Name: "kernels.cu", Source: testKernelsSource, Host: map[string]HostKernel{"vadd": testProgram.Host["vadd"]}})
	require.NoError(t, err)
	_, err = m.Kernel("vadd")
	require.NoError(t, err)
	_, err = m.Kernel("axpy")
	assert.ErrorIs(t, err, ErrNoEmulator)
	assert.ErrorContains(t, err, "cuda: Kernel(axpy): module kernels.cu: no Go twin, and cuda: no kernel emulator")
}

func TestEmulatorCompileError(t *testing.T) {
	d := newHost(t, WithCacheDir(t.TempDir()))
	src := "extern \"C\" __global__ void broken(int *x) {\n\tx[0] = not_declared;\n}\n"
	_, err := d.Load(context.Background(), &Program{Name: "broken.cu", Source: src})
	requireEmulatorOrCompileError(t, err)
	var ce *CompileError
	require.ErrorAs(t, err, &ce)
	assert.ErrorIs(t, err, ErrCompile)
	assert.Equal(t, "broken.cu", ce.Program)
	assert.Equal(t, "host", ce.Arch)
	assert.Contains(t, ce.Log, "broken.cu:2")
	assert.Contains(t, ce.Log, "not_declared")
	assert.ErrorContains(t, err, "cuda: compile broken.cu for host")
}

// requireEmulatorOrCompileError skips like requireEmulator when there is no
// emulator, and lets any other error through.
func requireEmulatorOrCompileError(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, ErrNoEmulator) {
		requireEmulator(t, err)
	}
	require.Error(t, err)
}

func TestEmulatorAtomicsAndConcurrency(t *testing.T) {
	d := newHost(t, WithEmulatorWorkers(4), WithSchedule(ScheduleRandom(3)))
	kernel := loadEmulatedKernels(t, d, emuTestProgram)
	const n = 100_003
	in := make([]uint32, n)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range in {
		in[i] = rng.Uint32N(1 << 20)
	}
	// Two streams run the same kernel at once, each on its own buffers.
	var wg sync.WaitGroup
	for range 2 {
		s := mustStream(t, d)
		din := upload(t, d, s, in)
		bins, fsum, usum := upload(t, d, s, make([]uint32, 16)), upload(t, d, s, []float32{0}), upload(t, d, s, []uint64{0})
		imax, imin, ors := upload(t, d, s, []int32{math.MinInt32}), upload(t, d, s, []int32{math.MaxInt32}), upload(t, d, s, []uint32{0})
		require.NoError(t, s.Launch(kernel("histogram"), LaunchConfig{Grid: Dim3{X: (n + 255) / 256}, Block: Dim3{X: 256}},
			Ptr(din), Ptr(bins), Ptr(fsum), Ptr(usum), Ptr(imax), Ptr(imin), Ptr(ors), U32(n)))
		wg.Go(func() {
			wantBins := make([]uint32, 16)
			var wantSum uint64
			wantMax, wantMin, wantOrs := int32(math.MinInt32), int32(math.MaxInt32), uint32(0)
			for _, v := range in {
				wantBins[v%16]++
				wantSum += uint64(v)
				wantMax, wantMin = max(wantMax, int32(v)), min(wantMin, int32(v))
				wantOrs |= 1 << (v % 32)
			}
			assert.Equal(t, wantBins, download[uint32](t, s, bins, 16))
			assert.Equal(t, []float32{float32(n) / 2}, download[float32](t, s, fsum, 1), "0.5 added n times is exact")
			assert.Equal(t, []uint64{wantSum}, download[uint64](t, s, usum, 1))
			assert.Equal(t, []int32{wantMax}, download[int32](t, s, imax, 1))
			assert.Equal(t, []int32{wantMin}, download[int32](t, s, imin, 1))
			assert.Equal(t, []uint32{wantOrs}, download[uint32](t, s, ors, 1))
		})
	}
	wg.Wait()
}

func TestEmulatorWarpVotesAndEarlyExit(t *testing.T) {
	forEachSchedule(t, func(t *testing.T, d *HostDevice) {
		kernel := loadEmulatedKernels(t, d, emuTestProgram)
		s := mustStream(t, d)
		out := mustAlloc(t, d, 4*6*64)
		require.NoError(t, s.Launch(kernel("votes"), LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 64}}, Ptr(out)))
		got := download[uint32](t, s, out, 6*64)
		for tid := range 64 {
			lane := uint32(tid % 32)
			up, down := lane, lane
			if lane%8 >= 1 {
				up = lane - 1
			}
			if lane%8+2 < 8 {
				down = lane + 2
			}
			assert.Equal(t, []uint32{0xaaaaaaaa, 1, 0, 31 * 32 / 2, up, down}, got[6*tid:6*tid+6], "thread %d", tid)
		}

		// 3 blocks of 100 over 250 values: the last block's last 50
		// threads return before its second barrier.
		vals := make([]int32, 250)
		for i := range vals {
			vals[i] = int32(i%7) - 2
		}
		din, sums, counts := upload(t, d, s, vals), mustAlloc(t, d, 12), mustAlloc(t, d, 12)
		require.NoError(t, s.Launch(kernel("early_exit"), LaunchConfig{Grid: Dim3{X: 3}, Block: Dim3{X: 100}}, Ptr(din), Ptr(sums), Ptr(counts), I32(250)))
		gotSums, gotCounts := download[int32](t, s, sums, 3), download[int32](t, s, counts, 3)
		for b := range 3 {
			var sum, count int32
			for _, v := range vals[b*100 : min(b*100+100, 250)] {
				sum += v
				if v > 0 {
					count++
				}
			}
			assert.Equal(t, sum, gotSums[b], "block %d", b)
			assert.Equal(t, count, gotCounts[b], "block %d", b)
		}
	})
}

func TestEmulatorDynamicSharedAndPointerTables(t *testing.T) {
	forEachSchedule(t, func(t *testing.T, d *HostDevice) {
		kernel := loadEmulatedKernels(t, d, emuTestProgram)
		s := mustStream(t, d)
		const n, blocks = 1001, 3
		in := make([]float32, n*blocks)
		for i := range in {
			in[i] = float32(i)
		}
		din, dout := upload(t, d, s, in), mustAlloc(t, d, 4*n*blocks)
		require.NoError(t, s.Launch(kernel("dyn_shared"), LaunchConfig{Grid: Dim3{X: blocks}, Block: Dim3{X: 96}, SharedMem: 4 * n},
			Ptr(din), Ptr(dout), I32(n)))
		got := download[float32](t, s, dout, n*blocks)
		for b := range blocks {
			for i := range n {
				require.Equal(t, in[b*n+(i+1)%n], got[b*n+i], "block %d value %d", b, i)
			}
		}

		err := s.Launch(kernel("dyn_shared"), LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 32}, SharedMem: 48<<10 + 1}, Ptr(din), Ptr(dout), I32(n))
		assert.ErrorIs(t, err, ErrInvalidValue, "over 48 KiB of dynamic shared memory")

		// Device addresses stored in device memory lead to the buffers.
		var addrs []uint64
		for i := range 8 {
			table := make([]float32, 8)
			table[i] = float32(10 * (i + 1))
			addrs = append(addrs, upload(t, d, s, table).Addr())
		}
		dt, dg := upload(t, d, s, addrs), mustAlloc(t, d, 32)
		require.NoError(t, s.Launch(kernel("gather"), LaunchConfig{Grid: Dim3{X: 1}, Block: Dim3{X: 8}}, Ptr(dt), Ptr(dg)))
		assert.Equal(t, []float32{10, 20, 30, 40, 50, 60, 70, 80}, download[float32](t, s, dg, 8))
	})
}

// TestEmulatorLoadsOnce loads one new program from many goroutines and
// devices: one compilation, one object in the cache.
func TestEmulatorLoadsOnce(t *testing.T) {
	dir := t.TempDir()
	p := &Program{Name: "once.cu", Source: fmt.Sprintf("// %s\nextern \"C\" __global__ void one(int *x) { x[threadIdx.x] = 1; }\n", t.Name()+dir)}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			d, err := NewHost(WithCacheDir(dir))
			if err == nil {
				_, errs[i] = d.Load(context.Background(), p)
				err = d.Close()
			}
			errs[i] = errors.Join(errs[i], err)
		})
	}
	wg.Wait()
	for _, err := range errs {
		requireEmulator(t, err)
	}
	objs, err := filepath.Glob(filepath.Join(dir, "*.so"))
	require.NoError(t, err)
	assert.Len(t, objs, 1)
	left, err := filepath.Glob(filepath.Join(dir, "build-*"))
	require.NoError(t, err)
	assert.Empty(t, left, "build directories are removed")
}

// BenchmarkEmulatorGEMV is a 2048×2048 Q8_0-like matrix times a vector:
// 2048 blocks of 128 threads, 5 warp shuffles and a barrier each.
func BenchmarkEmulatorGEMV(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			d, err := NewHost(WithEmulatorWorkers(workers))
			require.NoError(b, err)
			defer d.Close()
			m, err := d.Load(context.Background(), emuTestProgram)
			requireEmulator(b, err)
			k, err := m.Kernel("gemv_q8")
			require.NoError(b, err)
			s, err := d.NewStream()
			require.NoError(b, err)
			const rows, cols = 2048, 2048
			w, _ := q8Matrix(rand.New(rand.NewPCG(1, 1)), rows, cols)
			dw, err := d.Alloc(int64(len(w)))
			require.NoError(b, err)
			require.NoError(b, s.CopyHtoD(dw, 0, w))
			dx, err := d.Alloc(4 * cols)
			require.NoError(b, err)
			dy, err := d.Alloc(4 * rows)
			require.NoError(b, err)
			cfg := LaunchConfig{Grid: Dim3{X: rows}, Block: Dim3{X: 128}}
			b.SetBytes(int64(len(w)))
			for b.Loop() {
				require.NoError(b, s.Launch(k, cfg, Ptr(dw), Ptr(dx), Ptr(dy), I32(cols)))
				require.NoError(b, s.Synchronize(context.Background()))
			}
		})
	}
}

// BenchmarkEmulatorSwitch measures a context switch into a fiber and back:
// one block of 256 threads passing 1000 barriers, on one worker, with the
// hand-written switch and with ucontext.
func BenchmarkEmulatorSwitch(b *testing.B) {
	for _, sw := range []struct{ name, flags string }{{"asm", ""}, {"ucontext", "-DRT_EMU_UCONTEXT"}} {
		b.Run(sw.name, func(b *testing.B) {
			b.Setenv(EmulatorFlagsEnv, sw.flags)
			d, err := NewHost(WithEmulatorWorkers(1))
			require.NoError(b, err)
			defer d.Close()
			m, err := d.Load(context.Background(), emuTestProgram)
			requireEmulator(b, err)
			k, err := m.Kernel("sync_loop")
			require.NoError(b, err)
			out, err := d.Alloc(4)
			require.NoError(b, err)
			ek := k.(*hostKernel).emu
			run := emuRun{
				cfg:     LaunchConfig{Grid: Dim3{X: 1, Y: 1, Z: 1}, Block: Dim3{X: 256, Y: 1, Z: 1}},
				args:    emuArgs([]Arg{I32(1000), Ptr(out)}),
				workers: 1,
			}
			var switches uint64
			for b.Loop() {
				n, err := ek.run(run)
				require.NoError(b, err)
				switches += n
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(switches), "ns/switch")
		})
	}
}

// BenchmarkEmulatorCompile compiles the test kernels afresh (no cache).
func BenchmarkEmulatorCompile(b *testing.B) {
	i := 0
	for b.Loop() {
		d, err := NewHost(WithCacheDir(""))
		require.NoError(b, err)
		i++
		p := &Program{Name: "emulator.cu", Source: fmt.Sprintf("%s\n// %s %d\n", emuTestProgram.Source, b.Name(), i)}
		_, err = d.Load(context.Background(), p)
		requireEmulator(b, err)
		require.NoError(b, d.Close())
	}
}
