package model_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/rotary/internal/cputime"
	"github.com/rotary-moe/rotary/rotary/model"
	"github.com/rotary-moe/rotary/rotary/model/cpu"
)

// The synthetic Q4_K_M presets have the full-size models' type mix (Q4_K,
// Q5_K, Q6_K, Q8_0, F32) and more than 8 experts; they have no oracle, but
// must run, stay finite, and be batching-invariant like the oracle models.
func TestSyntheticModels(t *testing.T) {
	for _, preset := range []string{"qwen35moe-tiny", "qwen3moe-tiny"} {
		t.Run(preset, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), preset+".gguf")
			require.NoError(t, synth.Write(context.Background(), path, preset))
			em, err := experts.OpenModel(path)
			require.NoError(t, err)
			defer em.Close()
			backend := cpu.New(0, cpu.WithExperts(model.NewFileSource(em)))
			defer backend.Close()
			m, err := model.New(em, backend)
			require.NoError(t, err)

			ctx := context.Background()
			prompt := []int32{1, 2, 3, 500, 42, 7, 1000, 9}
			s := m.NewState(32)
			all, err := m.Forward(ctx, s, prompt, model.AllLogits)
			require.NoError(t, err)
			for i, v := range all {
				require.False(t, math.IsNaN(float64(v)) || math.IsInf(float64(v), 0), "logit %d is %v", i, v)
			}
			require.NoError(t, s.Reset())
			V := m.VocabSize()
			for i, tok := range prompt {
				l, err := m.Forward(ctx, s, []int32{tok}, model.LastLogits)
				require.NoError(t, err)
				assert.Equal(t, all[i*V:(i+1)*V], l, "position %d", i)
			}
		})
	}
}

// BenchmarkDecodeFile decodes with the model named by $ROTARY_MODEL (e.g.
// the full-size synthetic qwen35moe-35b-a3b written by synth.Write)
// and reports tokens/s and the weight bytes read per second.
//
//	ROTARY_MODEL=/tmp/q35.gguf go test ./rotary/model -run '^$' -bench DecodeFile -benchtime 5x
func BenchmarkDecodeFile(b *testing.B) {
	path := os.Getenv("ROTARY_MODEL")
	if path == "" {
		b.Skip("set ROTARY_MODEL to a GGUF file")
	}
	em, err := experts.OpenModel(path)
	require.NoError(b, err)
	defer em.Close()
	backend := cpu.New(0, cpu.WithExperts(model.NewFileSource(em)))
	defer backend.Close()
	m, err := model.New(em, backend)
	require.NoError(b, err)
	ctx := context.Background()
	s := m.NewState(512)

	prompt := []int32{1, 2, 3, 4}
	start := time.Now()
	_, err = m.Forward(ctx, s, prompt, model.LastLogits)
	require.NoError(b, err)
	b.Logf("prefill of %d tokens: %v", len(prompt), time.Since(start))

	// Bytes a decode step reads: every resident weight but the embedding
	// table (one row), k experts per layer.
	perToken := em.NonExpertBytes()
	if emb, ok := em.File.Tensor("token_embd.weight"); ok {
		if _, tied := em.File.Tensor("output.weight"); tied {
			perToken -= emb.Size
		}
	}
	for il := range m.Layers() {
		perToken += int64(em.Params.NumExpertsUsed) * em.ExpertBytes(il)
	}
	b.ResetTimer()
	start = time.Now()
	cpu0 := cputime.Process()
	for i := range b.N {
		if _, err := m.Forward(ctx, s, []int32{int32(100 + i)}, model.LastLogits); err != nil {
			b.Fatal(err)
		}
	}
	secs := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/secs, "tokens/s")
	b.ReportMetric(float64(perToken)*float64(b.N)/secs/1e9, "weightGB/s")
	if used := (cputime.Process() - cpu0).Seconds(); used > 0 {
		// Per core: what the decode would run at with the file in memory
		// and the cores to itself.
		b.ReportMetric(used/float64(b.N), "cpu-s/token")
		b.ReportMetric(float64(perToken)*float64(b.N)/used/1e9, "weightGB/cpu-s")
	}
	b.Logf("%s: %.2f GB of weights per token, %d threads", filepath.Base(path), float64(perToken)/1e9, backend.Threads())
}
