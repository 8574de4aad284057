package rotary_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/rotary-moe/rotary/rotary"
)

// TestStatsSub: every counter is the difference, the layers are dropped and
// the warm-up error is the later snapshot's.
func TestStatsSub(t *testing.T) {
	old := rotary.Stats{
		VRAM: rotary.TierStats{Hits: 1, Misses: 2, Bytes: 3}, PinnedHits: 4,
		Host: rotary.TierStats{Hits: 5, Misses: 6, Bytes: 7}, HostAhead: 8, Prefetched: 9,
		Prefetch:     rotary.PrefetchStats{Useful: 1, Late: 2, Wasted: 3, UsefulBytes: 4, WastedBytes: 5, Predicted: 6, Requested: 7, Correct: 8},
		TransferTime: 10, StallTime: 11, HostWait: 12,
		Layers: []rotary.LayerStats{{Hits: 1}},
	}
	warm := errors.New("read failed")
	now := rotary.Stats{
		VRAM: rotary.TierStats{Hits: 11, Misses: 22, Bytes: 33}, PinnedHits: 44,
		Host: rotary.TierStats{Hits: 55, Misses: 66, Bytes: 77}, HostAhead: 88, Prefetched: 99,
		Prefetch:     rotary.PrefetchStats{Useful: 11, Late: 22, Wasted: 33, UsefulBytes: 44, WastedBytes: 55, Predicted: 66, Requested: 77, Correct: 88},
		TransferTime: 110, StallTime: 121, HostWait: 132 * time.Nanosecond,
		Layers:    []rotary.LayerStats{{Hits: 11}},
		WarmupErr: warm,
	}
	assert.Equal(t, rotary.Stats{
		VRAM: rotary.TierStats{Hits: 10, Misses: 20, Bytes: 30}, PinnedHits: 40,
		Host: rotary.TierStats{Hits: 50, Misses: 60, Bytes: 70}, HostAhead: 80, Prefetched: 90,
		Prefetch:     rotary.PrefetchStats{Useful: 10, Late: 20, Wasted: 30, UsefulBytes: 40, WastedBytes: 50, Predicted: 60, Requested: 70, Correct: 80},
		TransferTime: 100, StallTime: 110, HostWait: 120,
		WarmupErr: warm,
	}, now.Sub(old))
}
