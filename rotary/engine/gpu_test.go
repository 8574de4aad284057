package engine_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/cuda/cudatest"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/engine"
	"github.com/rotary-moe/rotary/rotary/model"
)

// gpuBudget holds half of m's experts beside the non-expert weights, the
// state and the activations the GPU backend reserves.
func gpuBudget(m *experts.Model, positions int) int64 {
	return m.NonExpertBytes() + engine.ReserveBytes(m.Params, positions, true) + m.TotalExpertBytes()/2
}

// newGPU opens an engine on a host device of capacity bytes, skipping when
// the emulator cannot run here.
func newGPU(t *testing.T, m *experts.Model, capacity int64, devOpts []cuda.HostOption, opts ...engine.Option) (*engine.Engine, *cuda.HostDevice, error) {
	t.Helper()
	dev, err := cuda.NewHost(append([]cuda.HostOption{cuda.WithCapacity(capacity)}, devOpts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { dev.Close() })
	e, err := engine.New(context.Background(), m, append([]engine.Option{engine.WithDevice(dev), engine.WithPositions(64)}, opts...)...)
	if errors.Is(err, cuda.ErrNoEmulator) && os.Getenv(cudatest.RequireEnv) != "1" {
		t.Skip(err)
	}
	return e, dev, err
}

// On a device, the engine computes what the CPU engine does (greedy tokens
// of F32 models) with its experts rotating, and Close frees every byte the
// engine took of the device.
func TestGPUEngine(t *testing.T) {
	ctx := context.Background()
	m := openModel(t, "qwen35moe-tiny-f32")
	prompt := []int32{1, 2, 3, 40, 41, 42, 100, 7, 9, 11, 250, 300}
	budget := gpuBudget(m, 64)

	cpuEngine, err := engine.New(ctx, m, engine.WithVRAM(budget), engine.WithPositions(64))
	require.NoError(t, err)
	want, err := cpuEngine.GenerateTokens(ctx, prompt, 12)
	require.NoError(t, err)
	require.NoError(t, cpuEngine.Close())

	e, dev, err := newGPU(t, m, budget, nil, engine.WithVRAM(budget))
	require.NoError(t, err)
	assert.True(t, e.OnGPU())
	gotBudget, free := e.VRAM()
	assert.Equal(t, budget, gotBudget)
	assert.Equal(t, budget, free)
	require.NoError(t, e.Preload(ctx, nil))
	got, err := e.GenerateTokens(ctx, prompt, 12)
	require.NoError(t, err)
	assert.Equal(t, want.Tokens, got.Tokens)
	s := e.Stats()
	assert.NotZero(t, s.VRAM.Misses, "experts rotate")
	assert.NotZero(t, s.Acquires)
	assert.Greater(t, s.Calls.Launches, uint64(s.Acquires), "kernels launched through the device")
	assert.Zero(t, s.Acquires%e.Net().Layers(), "one acquire per layer and step")
	require.NoError(t, e.Close())
	assert.Equal(t, cuda.Stats{}, dev.Stats(), "the engine freed all it took of the device")
}

// A card with less free memory than WithVRAM caps the budget; one too
// small fails with rotary's BudgetError naming the device's free memory.
func TestGPUEngineBudget(t *testing.T) {
	m := openModel(t, "qwen35moe-tiny-f32")
	budget := gpuBudget(m, 64)
	e, _, err := newGPU(t, m, budget, nil, engine.WithVRAM(4*budget))
	require.NoError(t, err)
	got, free := e.VRAM()
	assert.Equal(t, budget, got, "capped at the free memory")
	assert.Equal(t, budget, free)
	require.NoError(t, e.Close())

	_, _, err = newGPU(t, m, budget/4, nil, engine.WithVRAM(budget))
	require.ErrorIs(t, err, rotary.ErrBudget)
	var be *rotary.BudgetError
	require.ErrorAs(t, err, &be)
	assert.Contains(t, err.Error(), "free on the device")
}

// A copy that fails on the device mid-run stops generation with the CUDA
// error, and Close still frees everything.
func TestGPUEngineDeviceFault(t *testing.T) {
	ctx := context.Background()
	m := openModel(t, "qwen35moe-tiny-f32")
	budget := gpuBudget(m, 64)
	fault := errors.New("injected copy fault")
	copies := 0
	e, dev, err := newGPU(t, m, budget, []cuda.HostOption{cuda.WithAsyncCopyFault(func(c cuda.CopyInfo) error {
		if c.Kind == cuda.CopyHtoD {
			if copies++; copies == 40 {
				return fault
			}
		}
		return nil
	})}, engine.WithVRAM(budget))
	require.NoError(t, err)
	_, err = e.GenerateTokens(ctx, []int32{1, 2, 3, 4, 5, 6}, 20)
	require.Error(t, err)
	assert.ErrorIs(t, err, fault)
	require.NoError(t, e.Close())
	assert.Equal(t, cuda.Stats{}, dev.Stats())
}

// A step that fails on the host side (here a bad expert id in the middle
// of a step, on an attention-only model) fails that generation only: the
// next one runs, and gives the tokens of a clean run.
func TestGPUEngineRecoversFromAFailedStep(t *testing.T) {
	m := openModel(t, "qwen3moe-tiny-f32")
	budget := gpuBudget(m, 64)
	routed := 0
	e, _, err := newGPU(t, m, budget, nil, engine.WithVRAM(budget), engine.WithModelOptions(
		model.WithRoutingReplay(func(_, _ int, r model.Routing) {
			if routed++; routed == 3 {
				r.IDs[0] = -1
			}
		})))
	require.NoError(t, err)
	defer e.Close()
	prompt := []int32{1, 2, 3, 4, 5, 6}
	_, err = e.GenerateTokens(context.Background(), prompt, 4)
	require.ErrorIs(t, err, model.ErrInvalid)

	again, err := e.GenerateTokens(context.Background(), prompt, 4)
	require.NoError(t, err)
	clean, _, err := newGPU(t, m, budget, nil, engine.WithVRAM(budget))
	require.NoError(t, err)
	defer clean.Close()
	want, err := clean.GenerateTokens(context.Background(), prompt, 4)
	require.NoError(t, err)
	assert.Equal(t, want.Tokens, again.Tokens)
}

// With residency decided on the device, the engine generates the tokens it
// generates with host residency, and makes the same residency decisions
// (the resolve kernel follows the host's LRU to the tie): the same hits,
// misses and bytes. A decode step is three driver calls, a graph's launch
// and the read of its logits, where host residency makes dozens and waits
// for every MoE layer's routing.
func TestGPUEngineDeviceResidency(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"qwen35moe-tiny-f32", "qwen3moe-tiny-f32"} {
		t.Run(name, func(t *testing.T) {
			m := openModel(t, name)
			prompt := []int32{1, 2, 3, 40, 41, 42, 100, 7, 9, 11, 250, 300}
			budget := gpuBudget(m, 64)
			const n = 10
			// run generates n tokens, n again, then n-1 from the same
			// prompt: the difference in calls of the last two is one
			// decode step's.
			run := func(r engine.Residency) (engine.Stats, []int32, cuda.Calls) {
				e, dev, err := newGPU(t, m, budget, nil, engine.WithVRAM(budget), engine.WithResidency(r))
				require.NoError(t, err)
				assert.Equal(t, r, e.Residency())
				got, err := e.GenerateTokens(ctx, prompt, n)
				require.NoError(t, err)
				s := e.Stats()
				// Again, the weights uploaded, then one token less.
				_, err = e.GenerateTokens(ctx, prompt, n)
				require.NoError(t, err)
				again := e.Stats().Calls
				_, err = e.GenerateTokens(ctx, prompt, n-1)
				require.NoError(t, err)
				shorter := e.Stats().Calls.Sub(again)
				require.NoError(t, e.Close())
				assert.Equal(t, cuda.Stats{}, dev.Stats(), "the engine freed all it took of the device")
				return s, got.Tokens, again.Sub(s.Calls).Sub(shorter)
			}
			hostStats, want, hostStep := run(engine.ResidencyHost)
			devStats, got, devStep := run(engine.ResidencyDevice)
			assert.Equal(t, want, got)
			assert.NotZero(t, devStats.VRAM.Misses, "experts rotate")
			assert.Equal(t, hostStats.VRAM, devStats.VRAM)
			assert.Equal(t, hostStats.PinnedHits, devStats.PinnedHits)
			assert.Equal(t, hostStats.Acquires, devStats.Acquires)
			layers := len(m.MoELayers())
			t.Logf("one decode step: host residency %+v, device residency %+v", hostStep, devStep)
			assert.GreaterOrEqual(t, hostStep.Syncs, uint64(layers), "host residency waits for each layer's routing")
			assert.Equal(t, cuda.Calls{Launches: 1, Copies: 1, Syncs: 1}, devStep,
				"device residency replays a decode step as one graph and reads its logits")
		})
	}
}

// The routing hook sees, with residency on the device, the routing it sees
// with residency on the host, every layer of every position, and its steps
// stay graphs: the routing is logged with the step's work and handed over
// once the step has run.
func TestGPUEngineDeviceRouting(t *testing.T) {
	ctx := context.Background()
	m := openModel(t, "qwen35moe-tiny-f32")
	prompt := []int32{1, 2, 3, 40, 41, 42, 100, 7, 9, 11, 250, 300}
	budget := gpuBudget(m, 64)
	type routed struct {
		layer, pos int
		ids        []int32
	}
	run := func(r engine.Residency) ([]routed, cuda.Calls) {
		var got []routed
		hook := model.WithRoutingHook(func(layer, pos int, rt model.Routing) {
			for tok := range len(rt.IDs) / rt.K {
				got = append(got, routed{layer, pos + tok, append([]int32(nil), rt.IDs[tok*rt.K:(tok+1)*rt.K]...)})
			}
		})
		e, _, err := newGPU(t, m, budget, nil, engine.WithVRAM(budget), engine.WithResidency(r), engine.WithModelOptions(hook))
		require.NoError(t, err)
		defer e.Close()
		_, err = e.GenerateTokens(ctx, prompt, 6)
		require.NoError(t, err)
		got = nil
		before := e.Stats().Calls
		_, err = e.GenerateTokens(ctx, prompt, 6)
		require.NoError(t, err)
		six := e.Stats().Calls.Sub(before)
		routing := got
		before = e.Stats().Calls
		_, err = e.GenerateTokens(ctx, prompt, 5)
		require.NoError(t, err)
		return routing, six.Sub(e.Stats().Calls.Sub(before))
	}
	want, _ := run(engine.ResidencyHost)
	got, calls := run(engine.ResidencyDevice)
	require.NotEmpty(t, want)
	assert.Equal(t, want, got)
	assert.Equal(t, cuda.Calls{Launches: 1, Copies: 1, Syncs: 1}, calls, "a decode step is a graph's replay")
}

// Generate after Generate reuses the sequences' device memory, and a GPU's
// captured decode steps with it: the device holds no more after ten calls
// than after two.
func TestGPUEngineReusesSequences(t *testing.T) {
	ctx := context.Background()
	m := openModel(t, "qwen3moe-tiny-f32")
	budget := gpuBudget(m, 64)
	e, dev, err := newGPU(t, m, budget, nil, engine.WithVRAM(budget), engine.WithResidency(engine.ResidencyDevice))
	require.NoError(t, err)
	defer e.Close()
	prompt := []int32{1, 2, 3, 40, 41}
	first, err := e.GenerateTokens(ctx, prompt, 6)
	require.NoError(t, err)
	_, err = e.GenerateTokens(ctx, prompt, 6)
	require.NoError(t, err)
	held := dev.Stats()
	for range 8 {
		g, err := e.GenerateTokens(ctx, prompt, 6)
		require.NoError(t, err)
		assert.Equal(t, first.Tokens, g.Tokens, "a reused sequence starts empty")
	}
	assert.Equal(t, held, dev.Stats())
}

// A routing replay (model.WithRoutingReplay) reaches the device: with
// residency on the device, the replayed experts are the ones resolved and
// computed, as with residency on the host: the same tokens, hits and misses.
func TestGPUEngineDeviceReplay(t *testing.T) {
	ctx := context.Background()
	m := openModel(t, "qwen35moe-tiny-f32")
	budget := gpuBudget(m, 64)
	experts, k := m.Params.NumExperts, m.Params.NumExpertsUsed
	replay := model.WithRoutingReplay(func(layer, pos int, r model.Routing) {
		for tok := range len(r.IDs) / k {
			for j := range k {
				r.IDs[tok*k+j] = int32(((pos+tok)*5 + layer + j) % experts)
			}
		}
	})
	run := func(r engine.Residency) ([]int32, engine.Stats) {
		e, _, err := newGPU(t, m, budget, nil, engine.WithVRAM(budget), engine.WithResidency(r), engine.WithModelOptions(replay))
		require.NoError(t, err)
		defer e.Close()
		g, err := e.GenerateTokens(ctx, []int32{1, 2, 3, 40, 41, 42}, 8)
		require.NoError(t, err)
		return g.Tokens, e.Stats()
	}
	want, host := run(engine.ResidencyHost)
	got, dev := run(engine.ResidencyDevice)
	assert.Equal(t, want, got)
	assert.NotZero(t, dev.VRAM.Misses)
	assert.Equal(t, host.VRAM, dev.VRAM)
}
