package model_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/rotary/internal/cputime"
	"github.com/rotary-moe/rotary/rotary/model"
)

// BenchmarkDecode measures generation speed: one token per Forward call
// after a short prompt, with the experts served from the mapped file.
//
//	go test ./rotary/model -run '^$' -bench Decode
func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"qwen3moe-tiny-f32", "qwen35moe-tiny-f32", "qwen3moe-tiny-q8_0", "qwen3moe-small-q4_k_m", "qwen35moe-small-q4_k_m"} {
		b.Run(name, func(b *testing.B) {
			m := openModel(b, name, fileSourceOf)
			ctx := context.Background()
			prompt := []int32{757, 84, 494, 198, 54, 71, 267, 334}
			s := m.NewState(256)
			_, err := m.Forward(ctx, s, prompt, model.LastLogits)
			require.NoError(b, err)
			b.ResetTimer()
			start, cpu0 := time.Now(), cputime.Process()
			for i := range b.N {
				if s.Pos() == s.Capacity() {
					b.StopTimer()
					require.NoError(b, s.Reset())
					_, err = m.Forward(ctx, s, prompt, model.LastLogits)
					require.NoError(b, err)
					b.StartTimer()
				}
				_, err := m.Forward(ctx, s, []int32{int32(100 + i%500)}, model.LastLogits)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tokens/s")
			if used := (cputime.Process() - cpu0).Seconds(); used > 0 {
				b.ReportMetric(used/float64(b.N)*1e3, "cpu-ms/token")
			}
		})
	}
}

// BenchmarkPrefill measures prompt processing: 64 tokens per Forward call.
func BenchmarkPrefill(b *testing.B) {
	for _, name := range []string{"qwen3moe-small-q4_k_m", "qwen35moe-small-q4_k_m"} {
		b.Run(name, func(b *testing.B) {
			m := openModel(b, name, fileSourceOf)
			prompt := make([]int32, 64)
			for i := range prompt {
				prompt[i] = int32(i * 7 % 700)
			}
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if _, err := m.Forward(context.Background(), m.NewState(len(prompt)), prompt, model.LastLogits); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(prompt))/time.Since(start).Seconds(), "tokens/s")
		})
	}
}
