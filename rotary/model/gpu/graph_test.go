package gpu_test

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/cuda/cudatest"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/model"
	"github.com/rotary-moe/rotary/rotary/model/gpu"
)

// A decode step replayed as a graph computes bit for bit what the same step
// computes run operation by operation, at every position, with the experts
// rotating through the slots on the device; a replayed step costs the host
// three driver calls (the graph's launch, the logits' copy and the wait).
// On the host backend, and on GPU 0 when one opens.
func TestGraphsMatchSteps(t *testing.T) {
	ctx := context.Background()
	devices := []string{"host"}
	if d, err := cuda.Open(ctx, 0); err == nil {
		d.Close()
		devices = append(devices, "gpu")
	}
	for _, where := range devices {
		for _, name := range []string{"qwen3moe-small-q4_k_m", "qwen35moe-small-q4_k_m"} {
			t.Run(where+"/"+name, func(t *testing.T) { testGraphsMatchSteps(t, where, name) })
		}
	}
}

func testGraphsMatchSteps(t *testing.T, where, name string) {
	ctx := context.Background()
	em, err := experts.OpenModel(filepath.Join("../../../experts/testdata", name+".gguf"))
	require.NoError(t, err)
	t.Cleanup(func() { em.Close() }) // after the devices' work: their copies read its mapping
	var gpuDev cuda.Device           // both nets share a GPU; each has a host device of its own
	if where == "gpu" {
		gpuDev, err = cuda.Open(ctx, 0)
		require.NoError(t, err)
		t.Cleanup(func() { gpuDev.Close() })
	}
	open := func(capture bool) (*model.Net, *rotary.Runtime, cuda.Device) {
		dev := gpuDev
		if dev == nil {
			hdev, err := cuda.NewHost()
			require.NoError(t, err)
			t.Cleanup(func() { hdev.Close() })
			dev = hdev
		}
		net, rt := openGraphNet(t, em, dev, capture)
		return net, rt, dev
	}
	graphNet, graphRT, graphDev := open(true)
	stepNet, _, stepDev := open(false)

	prompt := []int32{3, 14, 15, 92, 65, 35}
	const steps = 8
	run := func(net *model.Net, dev cuda.Device) ([][]float32, []cuda.Calls) {
		s := net.NewState(64)
		logits, err := net.Forward(ctx, s, prompt, model.LastLogits)
		require.NoError(t, err)
		var out [][]float32
		var calls []cuda.Calls
		for range steps {
			tok := argmax(logits)
			before := dev.Calls()
			logits, err = net.Forward(ctx, s, []int32{tok}, model.LastLogits)
			require.NoError(t, err)
			calls = append(calls, dev.Calls().Sub(before))
			out = append(out, logits)
		}
		return out, calls
	}
	want, _ := run(stepNet, stepDev)
	got, calls := run(graphNet, graphDev)
	for i := range want {
		require.Equal(t, bitsOf(want[i]), bitsOf(got[i]), "decode step %d", i)
	}
	for i, c := range calls[2:] {
		assert.Equal(t, cuda.Calls{Launches: 1, Copies: 1, Syncs: 1}, c, "replayed step %d", i+2)
	}
	assert.NotZero(t, graphRT.Stats().VRAM.Misses, "experts rotate")
}

// openGraphNet opens em on dev with residency on the device and graphs,
// steps captured only if capture (the step-by-step path otherwise), each
// step of at most the dynamic slots' routed ids; it skips without the
// emulator.
func openGraphNet(t *testing.T, em *experts.Model, dev cuda.Device, capture bool) (*model.Net, *rotary.Runtime) {
	ctx := context.Background()
	rt, err := rotary.Open(ctx, em, dev, rotary.WithSlots(2*em.Params.NumExpertsUsed), rotary.WithDeviceResidency())
	require.NoError(t, err)
	b, err := gpu.NewBackend(ctx, dev, em, rt, gpu.WithDeviceResidency(), gpu.WithGraphs())
	if err != nil {
		rt.Close()
	}
	cudatest.Skip(t, err)
	t.Cleanup(func() {
		require.NoError(t, b.Drain(ctx))
		require.NoError(t, rt.Close())
		require.NoError(t, b.Close())
	})
	if !capture {
		gpu.NeverCapture(b)
	}
	net, err := model.New(em, b, model.WithMaxBatch(2))
	require.NoError(t, err)
	return net, rt
}

func argmax(v []float32) int32 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}

func bitsOf(v []float32) []uint32 {
	out := make([]uint32, len(v))
	for i, x := range v {
		out[i] = math.Float32bits(x)
	}
	return out
}

// A step cancelled while it is being captured fails, leaving no graph of
// part of a step behind: the steps after it, captured and replayed, compute
// what the step-by-step path does. qwen35moe's first layer updates a
// recurrent state in place, so a part of a step that ran, or ran again,
// would show in every later step.
func TestGraphCancelledCapture(t *testing.T) {
	ctx := context.Background()
	em, err := experts.OpenModel(filepath.Join("../../../experts/testdata", "qwen35moe-small-q4_k_m.gguf"))
	require.NoError(t, err)
	t.Cleanup(func() { em.Close() })
	open := func(capture bool) *model.Net {
		dev, err := cuda.NewHost()
		require.NoError(t, err)
		t.Cleanup(func() { dev.Close() })
		net, _ := openGraphNet(t, em, dev, capture)
		return net
	}
	run := func(net *model.Net, cancelAt ...int) [][]float32 {
		s := net.NewState(64)
		logits, err := net.Forward(ctx, s, []int32{5, 6, 7}, model.LastLogits)
		require.NoError(t, err)
		var out [][]float32
		for i := range 6 {
			tok := argmax(logits)
			if slices.Contains(cancelAt, i) {
				// Cancelled once the step has begun, at its second layer (a
				// replayed step is cancelled before it begins).
				_, err := net.Forward(&cancelLater{Context: ctx, after: 2}, s, []int32{tok}, model.LastLogits)
				require.ErrorIs(t, err, context.Canceled)
				cancelled, cancel := context.WithCancel(ctx)
				cancel()
				_, err = net.Forward(cancelled, s, []int32{tok}, model.LastLogits)
				require.ErrorIs(t, err, context.Canceled)
			}
			logits, err = net.Forward(ctx, s, []int32{tok}, model.LastLogits)
			require.NoError(t, err)
			out = append(out, logits)
		}
		return out
	}
	want := run(open(false))
	// The prompt's last micro-batch is a one-token step: the first decode
	// step is the one captured.
	got := run(open(true), 0)
	for i := range want {
		require.Equal(t, bitsOf(want[i]), bitsOf(got[i]), "decode step %d", i)
	}
}

// cancelLater is a context cancelled after its Err has been asked after
// times.
type cancelLater struct {
	context.Context
	after int
}

func (c *cancelLater) Err() error {
	if c.after--; c.after < 0 {
		return context.Canceled
	}
	return nil
}
