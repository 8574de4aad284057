package rotary

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// testModelPath is a synthetic qwen3moe-tiny model (2 MoE layers of 16
// experts, top-4, 108 and 124.5 KiB experts: two size classes) with random
// weights, written once for the package's tests.
var testModelPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rotary-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testModelPath = filepath.Join(dir, "qwen3moe-tiny.gguf")
	if err := synth.Write(context.Background(), testModelPath, "qwen3moe-tiny"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left running:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func openTestModel(t testing.TB) *experts.Model {
	t.Helper()
	m, err := experts.OpenModel(testModelPath)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func newHost(t testing.TB, opts ...cuda.HostOption) *cuda.HostDevice {
	t.Helper()
	dev, err := cuda.NewHost(opts...)
	require.NoError(t, err)
	t.Cleanup(func() { dev.Close() })
	return dev
}

func openRuntime(t testing.TB, m *experts.Model, dev cuda.Device, opts ...Option) *Runtime {
	t.Helper()
	rt, err := Open(bg, m, dev, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { rt.Close() })
	return rt
}

// fileBytes is expert e of layer l as a slot holds it, read from the file.
func fileBytes(t testing.TB, m *experts.Model, l, e int) []byte {
	t.Helper()
	b, err := m.AppendExpert(nil, l, e)
	require.NoError(t, err)
	return b
}

// viewBytes is what the device holds for a view, its parts back to back.
func viewBytes(t testing.TB, dev *cuda.HostDevice, v View) []byte {
	t.Helper()
	var out []byte
	for _, p := range v.Parts {
		b, err := dev.Bytes(p.Buf)
		require.NoError(t, err)
		out = append(out, b...)
	}
	return out
}

// checkTables checks a layer's residency tables against each other.
func checkTables(t testing.TB, rt *Runtime, layer int, pinned []int) {
	t.Helper()
	r, err := rt.Residency(layer)
	require.NoError(t, err)
	for e, s := range r.SlotOf {
		if s >= 0 {
			require.Equal(t, int32(e), r.ExpertIn[s], "layer %d: expert %d says slot %d", layer, e, s)
		}
	}
	for s, e := range r.ExpertIn {
		if e >= 0 {
			require.Equal(t, int32(s), r.SlotOf[e], "layer %d: slot %d says expert %d", layer, s, e)
		}
		require.GreaterOrEqual(t, r.Held[s], int32(0))
	}
	for i, e := range pinned {
		require.Equal(t, int32(e), r.ExpertIn[i], "layer %d: pinned slot %d", layer, i)
	}
}

// shapeModel opens a shape-only model (no weights).
func shapeModel(t testing.TB, s synth.Shape) *experts.Model {
	t.Helper()
	w, err := synth.ShapeWriter(s)
	require.NoError(t, err)
	m, err := synth.OpenShape(w, t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// sleepProgram's kernel "compute" takes as long as its argument says, in
// nanoseconds: work on a stream in virtual time.
var sleepProgram = &cuda.Program{Name: "rotary-test-sleep", Host: map[string]cuda.HostKernel{"compute": func(l *cuda.HostLaunch) error {
	l.SetDuration(time.Duration(l.Int64(0)))
	return nil
}}}

// recordLogs returns a logger at level and a function that returns the
// records logged so far with message msg, decoded from JSON.
func recordLogs(level slog.Level) (*slog.Logger, func(msg string) []map[string]any) {
	var mu sync.Mutex
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: level}))
	return log, func(msg string) []map[string]any {
		mu.Lock()
		defer mu.Unlock()
		var out []map[string]any
		for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil && rec["msg"] == msg {
				out = append(out, rec)
			}
		}
		return out
	}
}

// lockedWriter serializes writes from the runtime's goroutines.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
