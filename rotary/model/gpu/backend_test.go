package gpu_test

import (
	"context"
	"path/filepath"
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

// StepBytes bounds what a step really takes of the arena: a prefill of each
// model's shape, and decode steps after it.
func TestStepBytesBoundsTheArena(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"qwen3moe-small-q4_k_m", "qwen35moe-small-q4_k_m"} {
		t.Run(name, func(t *testing.T) {
			em, err := experts.OpenModel(filepath.Join("../../../experts/testdata", name+".gguf"))
			require.NoError(t, err)
			defer em.Close()
			dev, err := cuda.NewHost()
			require.NoError(t, err)
			defer dev.Close()
			rt, err := rotary.Open(ctx, em, dev, rotary.WithVRAM(1<<30))
			require.NoError(t, err)
			b, err := gpu.NewBackend(ctx, dev, em, rt)
			if err != nil {
				rt.Close()
			}
			cudatest.Skip(t, err)
			defer func() {
				require.NoError(t, rt.Close())
				require.NoError(t, b.Close())
			}()
			net, err := model.New(em, b)
			require.NoError(t, err)

			const positions, prompt = 64, 40
			tokens := make([]int32, prompt)
			for i := range tokens {
				tokens[i] = int32(7 * i % net.VocabSize())
			}
			s := net.NewState(positions)
			_, err = net.Forward(ctx, s, tokens, model.AllLogits)
			require.NoError(t, err)
			bound := gpu.StepBytes(em.Params, prompt, positions)
			_, took := b.ArenaBytes()
			t.Logf("prefill of %d: took %d bytes of the arena, StepBytes %d", prompt, took, bound)
			assert.LessOrEqual(t, took, bound)
			assert.Greater(t, took, bound/2, "a tight bound")

			for _, tok := range tokens[:3] {
				_, err = net.Forward(ctx, s, []int32{tok}, model.LastLogits)
				require.NoError(t, err)
			}
			_, took = b.ArenaBytes()
			assert.LessOrEqual(t, took, bound, "decode takes less")
			held, _ := b.ArenaBytes()
			assert.LessOrEqual(t, held, bound+(1<<20), "one chunk of the largest step once grown")

			// Attention needs the query and key norms, which the kernel
			// stores the cache behind.
			assert.ErrorIs(t, b.Attend(nil, model.Attention{}), gpu.ErrShape)
		})
	}
}
