package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/cuda"
)

func TestSize(t *testing.T) {
	var s Size
	assert.Equal(t, "", s.String(), "the default is the usage text's")
	require.NoError(t, s.Set("2GiB"))
	assert.Equal(t, Size{Bytes: 2 << 30, Given: true}, s)
	assert.Equal(t, "2.00 GiB", s.String())
	assert.Error(t, s.Set("0"))
	assert.Error(t, s.Set("lots"))
}

func TestDevice(t *testing.T) {
	for _, ok := range []Device{{Backend: "auto", Name: "0"}, {Backend: "cuda", Name: Emulated}, {Backend: "host", Name: "3"}} {
		assert.NoError(t, ok.Check(), "%+v", ok)
	}
	for _, bad := range []Device{{Backend: "tpu", Name: "0"}, {Backend: "cuda", Name: "first"}, {Backend: "cuda", Name: "-1"}} {
		var u *UsageError
		assert.ErrorAs(t, bad.Check(), &u, "%+v", bad)
	}
	d := Device{Backend: "cuda", Name: Emulated}
	require.NoError(t, d.Check())
	assert.True(t, d.EmulatedGPU())
	dev, err := d.OpenGPU(context.Background(), nil)
	assert.NoError(t, err)
	assert.Nil(t, dev, "the caller opens the emulated device")

	host := Device{Backend: "host", Name: "0"}
	require.NoError(t, host.Check())
	assert.False(t, host.OnDevice())
}

// Without a GPU, cuda is an error and auto falls back to the CPU, saying so.
func TestNoGPU(t *testing.T) {
	if dev, err := cuda.Open(context.Background(), 0); err == nil {
		dev.Close()
		t.Skip("a GPU opens here")
	}
	d := Device{Backend: "cuda", Name: "0"}
	require.NoError(t, d.Check())
	_, err := d.OpenGPU(context.Background(), nil)
	assert.ErrorContains(t, err, "-backend cuda: no GPU 0")

	var log bytes.Buffer
	d.Backend = "auto"
	dev, err := d.OpenGPU(context.Background(), &log)
	assert.NoError(t, err)
	assert.Nil(t, dev)
	assert.Contains(t, log.String(), "backend: host (auto: no GPU 0")
}

func TestExit(t *testing.T) {
	var out bytes.Buffer
	assert.Equal(t, 0, Exit(&out, "cmd", nil))
	assert.Equal(t, 0, Exit(&out, "cmd", flag.ErrHelp))
	assert.Empty(t, out.String())
	assert.Equal(t, 2, Exit(&out, "cmd", Usagef("-n %d", -1)))
	assert.Equal(t, "cmd: -n -1 (run with -h for the flags)\n", out.String())
	out.Reset()
	assert.Equal(t, 1, Exit(&out, "cmd", errors.Join(errors.New("a\n  b"), errors.New("c"))))
	assert.Equal(t, "cmd: a; b; c\n", out.String(), "one line")
}
