package model_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary/model"
	"github.com/rotary-moe/rotary/rotary/model/cpu"
)

var chatTokens = []int32{757, 84, 494, 198, 54, 71, 267, 334, 264, 685, 279, 683, 30, 758, 198, 757, 64, 82, 82, 711, 384, 198}

func openModel(t testing.TB, name string, src func(*experts.Model) model.ExpertSource, opts ...model.Option) *model.Net {
	t.Helper()
	em, err := experts.OpenModel(filepath.Join(modelDir, name+".gguf"))
	require.NoError(t, err)
	t.Cleanup(func() { em.Close() })
	var s model.ExpertSource = &fileSource{m: em}
	if src != nil {
		s = src(em)
	}
	backend := cpu.New(0, cpu.WithExperts(s))
	t.Cleanup(func() { backend.Close() })
	m, err := model.New(em, backend, opts...)
	require.NoError(t, err)
	return m
}

// fileSourceOf serves experts straight from the mapped file, as
// model.NewFileSource does, without the test source's counting.
func fileSourceOf(em *experts.Model) model.ExpertSource { return model.NewFileSource(em) }

// The result of a position does not depend on how the sequence is cut into
// Forward calls: a prompt in one batch, in chunks, or token by token gives
// the same bits (the kernels do the same arithmetic per token whatever the
// batch; llama.cpp itself differs here in the last bits).
func TestBatchingDoesNotChangeResults(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"qwen3moe-tiny-f32", "qwen35moe-tiny-f32", "qwen35moe-small-q4_k_m"} {
		t.Run(name, func(t *testing.T) {
			m := openModel(t, name, nil)
			V := m.VocabSize()
			s := m.NewState(64)
			all, err := m.Forward(ctx, s, chatTokens, model.AllLogits)
			require.NoError(t, err)
			require.Len(t, all, len(chatTokens)*V)

			require.NoError(t, s.Reset())
			first, err := m.Forward(ctx, s, chatTokens[:9], model.AllLogits)
			require.NoError(t, err)
			assert.Equal(t, all[:9*V], first)
			for i := 9; i < len(chatTokens); i += 5 {
				end := min(i+5, len(chatTokens))
				last, err := m.Forward(ctx, s, chatTokens[i:end], model.LastLogits)
				require.NoError(t, err)
				assert.Equal(t, all[(end-1)*V:end*V], last, "chunk ending at %d", end)
			}
			assert.Equal(t, len(chatTokens), s.Pos())

			// Micro-batches inside one Forward call.
			small := openModel(t, name, nil, model.WithMaxBatch(4))
			s = small.NewState(64)
			got, err := small.Forward(ctx, s, chatTokens, model.AllLogits)
			require.NoError(t, err)
			assert.Equal(t, all, got)
			require.NoError(t, s.Reset())
			got, err = small.Forward(ctx, s, chatTokens, model.LastLogits)
			require.NoError(t, err)
			assert.Equal(t, all[len(all)-V:], got)
		})
	}
}

func TestForwardErrors(t *testing.T) {
	ctx := context.Background()
	m := openModel(t, "qwen35moe-tiny-f32", nil)
	s := m.NewState(8)
	assert.Equal(t, 8, s.Capacity())

	_, err := m.Forward(ctx, s, []int32{1, int32(m.VocabSize())}, model.LastLogits)
	assert.ErrorIs(t, err, model.ErrBadToken)
	_, err = m.Forward(ctx, s, []int32{-1}, model.LastLogits)
	assert.ErrorIs(t, err, model.ErrBadToken)
	assert.Zero(t, s.Pos(), "a rejected call leaves the state alone")

	_, err = m.Forward(ctx, s, make([]int32, 9), model.LastLogits)
	assert.ErrorIs(t, err, model.ErrContextFull)
	_, err = m.Forward(ctx, s, make([]int32, 8), model.LastLogits)
	require.NoError(t, err)
	_, err = m.Forward(ctx, s, []int32{1}, model.LastLogits)
	assert.ErrorIs(t, err, model.ErrContextFull)

	logits, err := m.Forward(ctx, s, nil, model.LastLogits)
	assert.NoError(t, err)
	assert.Nil(t, logits)

	other := openModel(t, "qwen35moe-tiny-f32", nil)
	_, err = other.Forward(ctx, s, []int32{1}, model.LastLogits)
	assert.Error(t, err, "a state belongs to its model")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.NoError(t, s.Reset())
	_, err = m.Forward(cancelled, s, []int32{1}, model.LastLogits)
	assert.ErrorIs(t, err, context.Canceled)

	assert.Equal(t, 1000, m.NewState(1000).Capacity())
	assert.Equal(t, 4096, m.NewState(0).Capacity(), "the trained context length caps the state")
	assert.Equal(t, 4096, m.NewState(1<<20).Capacity())
}

// fileSource serves experts from the mapped file (model.FileSource) and
// counts the calls and the leases not yet released.
type fileSource struct {
	m        *experts.Model
	acquired int
	calls    int
	last     []int // the ids of the last Acquire
}

func (s *fileSource) Acquire(ctx context.Context, layer int, ids []int) (model.ExpertLease, error) {
	s.calls++
	s.last = slices.Clone(ids)
	l, err := model.NewFileSource(s.m).Acquire(ctx, layer, ids)
	if err != nil {
		return nil, err
	}
	s.acquired++
	return &fileLease{s: s, weights: l.Weights()}, nil
}

type fileLease struct {
	s       *fileSource
	weights []model.ExpertWeights
}

func (l *fileLease) Weights() []model.ExpertWeights { return l.weights }
func (l *fileLease) Release()                       { l.s.acquired-- }

// failingSource wraps fileSource to misbehave in one way.
type failingSource struct {
	fileSource
	err      error // returned by Acquire
	truncate bool  // return one expert fewer than asked
	reshape  bool  // return a down matrix of the wrong width
	mixFFN   bool  // return a last expert, consistent in itself, with a smaller FFN
}

func (s *failingSource) Acquire(ctx context.Context, layer int, ids []int) (model.ExpertLease, error) {
	if s.err != nil {
		return nil, s.err
	}
	l, err := s.fileSource.Acquire(ctx, layer, ids)
	if err != nil {
		return nil, err
	}
	fl := l.(*fileLease)
	if s.truncate {
		fl.weights = fl.weights[1:]
	}
	if s.reshape {
		fl.weights[0].Down.Cols--
	}
	if s.mixFFN {
		e := &fl.weights[len(fl.weights)-1]
		n := e.Down.Type.BlockSize()
		for _, w := range []*model.Weight{&e.Gate, &e.Up} {
			w.Data = w.Data[:len(w.Data)/w.Rows*(w.Rows-n)]
			w.Rows -= n
		}
		e.Down.Cols -= n
		rb, err := e.Down.Type.RowBytes(uint64(e.Down.Cols))
		if err != nil {
			return nil, err
		}
		e.Down.Data = e.Down.Data[:int(rb)*e.Down.Rows]
	}
	return fl, nil
}

func TestExpertSourceFailures(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("copy failed")
	for _, tc := range []struct {
		name string
		src  *failingSource
		want error
	}{
		{"error", &failingSource{err: boom}, boom},
		{"too few experts", &failingSource{truncate: true}, model.ErrExpertSource},
		{"wrong shape", &failingSource{reshape: true}, model.ErrExpertSource},
		{"mixed FFN sizes", &failingSource{mixFFN: true}, model.ErrExpertSource},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := openModel(t, "qwen3moe-tiny-q8_0", func(em *experts.Model) model.ExpertSource {
				tc.src.m = em
				return tc.src
			})
			_, err := m.Forward(ctx, m.NewState(16), chatTokens[:3], model.LastLogits)
			require.ErrorIs(t, err, tc.want)
			assert.Contains(t, err.Error(), "layer 0")
			assert.Zero(t, tc.src.acquired, "leases are released on failure too")
		})
	}
}

func TestExpertSourceCalledOncePerLayerAndStep(t *testing.T) {
	src := &fileSource{}
	var routed [][]int32
	m := openModel(t, "qwen3moe-tiny-q8_0", func(em *experts.Model) model.ExpertSource {
		src.m = em
		return src
	}, model.WithRoutingHook(func(layer, pos int, r model.Routing) {
		routed = append(routed, append([]int32(nil), r.IDs...))
	}))
	_, err := m.Forward(context.Background(), m.NewState(32), chatTokens, model.LastLogits)
	require.NoError(t, err)
	assert.Equal(t, m.Layers(), src.calls, "one Acquire per layer for the whole batch")
	assert.Zero(t, src.acquired)
	require.Len(t, routed, m.Layers())
	assert.Len(t, routed[0], len(chatTokens)*4, "k ids per token")
}

// A replay replaces the router's choices: the hook and the expert source
// see the replayed experts, and bad ids fail the step.
func TestRoutingReplay(t *testing.T) {
	replay := func(ids ...int32) model.Option {
		return model.WithRoutingReplay(func(_, _ int, r model.Routing) {
			for i := range r.IDs {
				r.IDs[i] = ids[i%len(ids)]
			}
		})
	}
	src := &fileSource{}
	var seen []int32
	m := openModel(t, "qwen3moe-tiny-q8_0", func(em *experts.Model) model.ExpertSource {
		src.m = em
		return src
	}, replay(3, 1, 4, 5), model.WithRoutingHook(func(_, _ int, r model.Routing) { seen = append(seen, r.IDs...) }))
	_, err := m.Forward(context.Background(), m.NewState(32), chatTokens[:3], model.LastLogits)
	require.NoError(t, err)
	assert.Equal(t, []int32{3, 1, 4, 5, 3, 1, 4, 5}, seen[:8])
	assert.Equal(t, []int{1, 3, 4, 5}, src.last, "the source was asked for the replayed experts")

	for _, bad := range [][]int32{{3, 3, 4, 5}, {1, 2, 3, 99}, {-1, 2, 3, 4}} {
		m := openModel(t, "qwen3moe-tiny-q8_0", nil, replay(bad...))
		_, err := m.Forward(context.Background(), m.NewState(32), chatTokens[:2], model.LastLogits)
		assert.ErrorIs(t, err, model.ErrInvalid, "%v", bad)
	}
}

func TestConcurrentStates(t *testing.T) {
	ctx := context.Background()
	m := openModel(t, "qwen35moe-tiny-f32", nil)
	want, err := m.Forward(ctx, m.NewState(32), chatTokens, model.LastLogits)
	require.NoError(t, err)
	results := make(chan []float32, 3)
	for range 3 {
		go func() {
			s := m.NewState(32)
			var last []float32
			for _, tok := range chatTokens {
				l, err := m.Forward(ctx, s, []int32{tok}, model.LastLogits)
				if err != nil {
					results <- nil
					return
				}
				last = l
			}
			results <- last
		}()
	}
	for range 3 {
		assert.Equal(t, want, <-results)
	}
}

func TestNewRejectsBadArguments(t *testing.T) {
	em, err := experts.OpenModel(filepath.Join(modelDir, "qwen3moe-tiny-f32.gguf"))
	require.NoError(t, err)
	defer em.Close()
	backend := cpu.New(1)
	defer backend.Close()
	for _, n := range []int{0, -1} {
		_, err = model.New(em, backend, model.WithMaxBatch(n))
		assert.ErrorIs(t, err, model.ErrInvalid, "WithMaxBatch(%d)", n)
	}
	_, err = model.New(em, nil)
	assert.ErrorIs(t, err, model.ErrInvalid)
}
