package cudatest

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/stretchr/testify/require"
)

// RequireEnv names the environment variable that turns a missing emulator
// from a skip into a failure.
const RequireEnv = "ROTARY_REQUIRE_EMULATOR"

// Schedules are the orders every kernel test runs its threads in on the
// host backend.
var Schedules = []cuda.Schedule{cuda.ScheduleForward, cuda.ScheduleReverse, cuda.ScheduleRandom(1)}

// Case is one device a test runs on, with a stream of its own.
type Case struct {
	// Name says which device: "host/forward", "host/reverse",
	// "host/random(1)" or "gpu".
	Name   string
	Device cuda.Device
	Stream cuda.Stream
}

// Devices opens the host backend under each of Schedules (with opts added),
// and GPU 0 when one opens; each is closed when the test ends.
func Devices(t testing.TB, opts ...cuda.HostOption) []Case {
	t.Helper()
	var cases []Case
	for _, sc := range Schedules {
		d, err := cuda.NewHost(append([]cuda.HostOption{cuda.WithSchedule(sc)}, opts...)...)
		require.NoError(t, err)
		cases = append(cases, newCase(t, "host/"+sc.String(), d))
	}
	if d, err := cuda.Open(context.Background(), 0); err == nil {
		cases = append(cases, newCase(t, "gpu", d))
	}
	return cases
}

func newCase(t testing.TB, name string, d cuda.Device) Case {
	t.Helper()
	t.Cleanup(func() { d.Close() })
	s, err := d.NewStream()
	require.NoError(t, err)
	return Case{Name: name, Device: d, Stream: s}
}

// Run runs fn as a subtest on each of Devices(t, opts...).
func Run(t *testing.T, fn func(t *testing.T, c Case), opts ...cuda.HostOption) {
	for _, c := range Devices(t, opts...) {
		t.Run(c.Name, func(t *testing.T) { fn(t, c) })
	}
}

// Skip skips t if err says there is no emulator, unless RequireEnv is "1";
// it fails t on any other error.
func Skip(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, cuda.ErrNoEmulator) && os.Getenv(RequireEnv) != "1" {
		t.Skip(err)
	}
	require.NoError(t, err)
}

// Load loads p on the case's device, under the skip rule of Skip.
func (c Case) Load(t testing.TB, p *cuda.Program) cuda.Module {
	t.Helper()
	m, err := c.Device.Load(context.Background(), p)
	Skip(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// Kernel loads p and looks kernel name up.
func (c Case) Kernel(t testing.TB, p *cuda.Program, name string) cuda.Kernel {
	t.Helper()
	k, err := c.Load(t, p).Kernel(name)
	require.NoError(t, err)
	return k
}

// Launch queues a kernel on the case's stream and waits for it.
func (c Case) Launch(t testing.TB, k cuda.Kernel, cfg cuda.LaunchConfig, args ...cuda.Arg) {
	t.Helper()
	require.NoError(t, c.Stream.Launch(k, cfg, args...))
	require.NoError(t, c.Stream.Synchronize(context.Background()))
}

// Alloc allocates n bytes of device memory, zeroed; it is freed when the
// test ends.
func (c Case) Alloc(t testing.TB, n int64) cuda.Buffer {
	t.Helper()
	b, err := c.Device.Alloc(n)
	require.NoError(t, err)
	t.Cleanup(func() { c.Device.Free(b) })
	require.NoError(t, c.Stream.Memset(b, 0, n, 0))
	return b
}

// Upload copies v into new device memory.
func Upload[T cuda.Scalar](t testing.TB, c Case, v []T) cuda.Buffer {
	t.Helper()
	raw := cuda.Bytes(v)
	b := c.Alloc(t, max(int64(len(raw)), 1))
	require.NoError(t, c.Stream.CopyHtoD(b, 0, raw))
	require.NoError(t, c.Stream.Synchronize(context.Background()))
	return b
}

// Download copies n values from the start of b, after the work queued on
// the case's stream.
func Download[T cuda.Scalar](t testing.TB, c Case, b cuda.Buffer, n int) []T {
	t.Helper()
	v := make([]T, n)
	require.NoError(t, c.Stream.CopyDtoH(cuda.Bytes(v), b, 0))
	require.NoError(t, c.Stream.Synchronize(context.Background()))
	return v
}
