package cpu

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestPoolCoversEveryIndexOnce(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := NewPool(4)
	defer p.Close()
	for _, n := range []int{0, 1, 3, 17, 100, 1000} {
		for _, grain := range []int{0, 1, 7, 64} {
			seen := make([]atomic.Int32, n)
			p.Run(n, grain, func(lo, hi int) {
				assert.True(t, lo < hi, "empty range [%d,%d)", lo, hi)
				for i := lo; i < hi; i++ {
					seen[i].Add(1)
				}
			})
			for i := range seen {
				require.EqualValues(t, 1, seen[i].Load(), "n=%d grain=%d index %d", n, grain, i)
			}
		}
	}
}

func TestPoolUsesSeveralGoroutines(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	// Both halves must run at the same time to finish: if Run called them
	// one after the other, the first would wait forever for the second.
	release := make(chan struct{})
	var arrived atomic.Int32
	p.Run(2, 1, func(lo, hi int) {
		if arrived.Add(1) == 2 {
			close(release)
		}
		<-release
	})
	assert.EqualValues(t, 2, arrived.Load())
}

func TestPoolConcurrentRunsAndClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := NewPool(3)
	var total atomic.Int64
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 50 {
				p.Run(64, 1, func(lo, hi int) { total.Add(int64(hi - lo)) })
			}
		}()
	}
	for range 4 {
		<-done
	}
	assert.EqualValues(t, 4*50*64, total.Load())
	p.Close()
	p.Close() // idempotent
	var after int
	p.Run(10, 1, func(lo, hi int) { after += hi - lo })
	assert.Equal(t, 10, after, "Run after Close works on the caller")
}
