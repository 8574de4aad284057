//go:build unix

package cputime_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/rotary-moe/rotary/rotary/internal/cputime"
)

// Busy work shows up as CPU time, however loaded the machine (the wall-time
// bound only stops a broken clock from looping for ever).
func TestProcessCountsBusyTime(t *testing.T) {
	before := cputime.Process()
	for start := time.Now(); cputime.Process()-before < time.Millisecond && time.Since(start) < 10*time.Second; {
	}
	assert.GreaterOrEqual(t, cputime.Process()-before, time.Millisecond)
}
