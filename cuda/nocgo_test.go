//go:build !cgo || !linux

package cuda

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestOpenWithoutCgo(t *testing.T) {
	_, err := Open(context.Background(), 0)
	assert.ErrorIs(t, err, ErrNoDriver)
	assert.ErrorContains(t, err, "without cgo")
	_, err = loadNVRTC()
	assert.ErrorIs(t, err, ErrNoNVRTC)
}
