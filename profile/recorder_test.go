package profile

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var tiny = ModelID{Name: "tiny", Arch: "test", Layers: 2, Experts: 4, ExpertsUsed: 2}

func TestRecorderCounts(t *testing.T) {
	r, err := NewRecorder(tiny, WithCoActivation(), WithWorkload("unit"))
	require.NoError(t, err)
	// Layer 0, tokens 0..3: expert 1 is used at tokens 0, 1 and 3 (distances 1
	// and 2), expert 2 at 0 and 3 (distance 3), experts 0 and 3 once each.
	steps := [][]int32{{1, 2}, {1, 0}, {3}, {2, 1}}
	for _, ids := range steps {
		require.NoError(t, r.Record(0, ids, nil))
	}
	require.NoError(t, r.Record(1, []int32{3, 0}, []float32{0.75, 0.25}))
	p := r.Profile()

	assert.Equal(t, "unit", p.Workload)
	assert.EqualValues(t, 4, p.Tokens)
	l0 := p.Layers[0]
	assert.EqualValues(t, 4, l0.Tokens)
	assert.EqualValues(t, 0, l0.WeightedTokens)
	assert.Equal(t, []uint64{1, 3, 2, 1}, l0.Counts)
	assert.EqualValues(t, 4, l0.FirstUse) // each expert's first selection
	want := make([]uint64, ReuseBuckets)
	want[0] = 1 // distance 1
	want[1] = 2 // distances 2 and 3
	assert.Equal(t, want, l0.Reuse)
	assert.EqualValues(t, 7, l0.Selections())
	assert.Equal(t, []int{1, 2, 0, 3}, l0.Ranked())
	assert.InDeltaSlice(t, []float64{3.0 / 7, 5.0 / 7, 6.0 / 7, 1}, l0.Coverage(), 1e-12)

	assert.EqualValues(t, 2, p.CoActivation(0, 1, 2)) // tokens 0 and 3
	assert.EqualValues(t, 2, p.CoActivation(0, 2, 1))
	assert.EqualValues(t, 1, p.CoActivation(0, 0, 1))
	assert.EqualValues(t, 0, p.CoActivation(0, 0, 3))
	assert.EqualValues(t, 0, p.CoActivation(0, 1, 1))

	l1 := p.Layers[1]
	assert.EqualValues(t, 1, l1.WeightedTokens)
	assert.Equal(t, []float64{0.25, 0, 0, 0.75}, l1.Mass)
	assert.EqualValues(t, 1, p.CoActivation(1, 0, 3))
}

func TestRecorderRejectsBadInput(t *testing.T) {
	r, err := NewRecorder(tiny)
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		layer   int
		ids     []int32
		weights []float32
		want    error
	}{
		"layer negative":   {-1, []int32{0}, nil, ErrOutOfRange},
		"layer too big":    {2, []int32{0}, nil, ErrOutOfRange},
		"expert too big":   {0, []int32{4}, nil, ErrOutOfRange},
		"expert negative":  {0, []int32{-1}, nil, ErrOutOfRange},
		"too many experts": {0, []int32{0, 1, 2}, nil, ErrOutOfRange},
		"weights length":   {0, []int32{0, 1}, []float32{1}, ErrInvalid},
		"duplicate expert": {0, []int32{1, 1}, nil, ErrInvalid},
	} {
		t.Run(name, func(t *testing.T) {
			err := r.Record(tc.layer, tc.ids, tc.weights)
			assert.ErrorIs(t, err, tc.want)
			assert.Regexp(t, `^profile: `, err.Error(), "one package prefix, first")
			assert.Equal(t, 1, strings.Count(err.Error(), "profile:"), err.Error())
		})
	}
	assert.Zero(t, r.Profile().Tokens, "rejected calls record nothing")

	_, err = NewRecorder(ModelID{Arch: "x", Layers: 1, Experts: 2, ExpertsUsed: 3})
	assert.ErrorIs(t, err, ErrInvalid)
}

// TestRecorderConcurrent records from many goroutines at once (run with -race)
// and checks that no update is lost.
func TestRecorderConcurrent(t *testing.T) {
	m := ModelID{Arch: "test", Layers: 8, Experts: 16, ExpertsUsed: 4}
	r, err := NewRecorder(m, WithCoActivation(), WithTrace(500))
	require.NoError(t, err)
	const workers, tokens = 8, 300
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for tok := range tokens {
				for l := range m.Layers {
					ids := []int32{int32(w), int32(8 + tok%7), int32((w + 1) % 8), 15}
					if err := r.Record(l, ids, []float32{0.25, 0.25, 0.25, 0.25}); err != nil {
						t.Error(err)
						return
					}
				}
				if tok%100 == 0 {
					_ = r.Profile() // snapshots while recording
					_ = r.Trace()
				}
			}
		})
	}
	wg.Wait()
	p := r.Profile()
	for l := range m.Layers {
		ls := p.Layers[l]
		assert.EqualValues(t, workers*tokens, ls.Tokens)
		assert.EqualValues(t, workers*tokens*4, ls.Selections())
		assert.EqualValues(t, workers*tokens, ls.Counts[15])
		var reuse uint64
		for _, n := range ls.Reuse {
			reuse += n
		}
		assert.EqualValues(t, workers*tokens*4, reuse+ls.FirstUse, "every selection is a first use or a reuse")
		assert.EqualValues(t, 16, ls.FirstUse)
		assert.GreaterOrEqual(t, ls.Reuse[0], uint64(workers*tokens-1),
			"expert 15 is selected by every token: distance 1 except its first use")
		assert.InDelta(t, float64(workers*tokens), ls.Mass[15]*4, 1e-6)
	}
	tr := r.Trace()
	routed := 0
	for tok := range tr.Tokens() {
		for l := range m.Layers {
			if tr.Len(tok, l) > 0 {
				routed++
			}
		}
	}
	assert.Equal(t, 500, routed, "the raw trace keeps exactly its limit")
}

func TestRecorderTrace(t *testing.T) {
	r, err := NewRecorder(tiny, WithTrace(3))
	require.NoError(t, err)
	require.NoError(t, r.Record(0, []int32{1, 2}, []float32{0.6, 0.4}))
	require.NoError(t, r.Record(1, []int32{3}, nil))
	require.NoError(t, r.Record(0, []int32{0, 3}, []float32{0.5, 0.5}))
	require.NoError(t, r.Record(1, []int32{2}, nil)) // past the limit: dropped
	tr := r.Trace()
	require.NotNil(t, tr)
	assert.Equal(t, 2, tr.Tokens())
	assert.True(t, tr.HasWeights())
	assert.Equal(t, []int32{1, 2}, tr.AppendExperts(nil, 0, 0))
	assert.Equal(t, []float32{0.6, 0.4}, tr.AppendWeights(nil, 0, 0))
	assert.Equal(t, []int32{3}, tr.AppendExperts(nil, 0, 1))
	assert.Equal(t, []float32{0}, tr.AppendWeights(nil, 0, 1), "a record without weights has zero weights")
	assert.Equal(t, []int32{0, 3}, tr.AppendExperts(nil, 1, 0))
	assert.Equal(t, 0, tr.Len(1, 1))

	plain, err := NewRecorder(tiny)
	require.NoError(t, err)
	assert.Nil(t, plain.Trace())
}

func TestRecordTrace(t *testing.T) {
	tr := sampleTrace(t)
	r, err := NewRecorder(tr.Model())
	require.NoError(t, err)
	require.NoError(t, r.RecordTrace(tr))
	p := r.Profile()
	// Profile tokens count per layer: no layer of the sample is routed by all 3 tokens.
	assert.EqualValues(t, 2, p.Tokens)
	var total uint64
	for l := range p.Layers {
		total += p.Layers[l].Selections()
	}
	want := 0
	for tok := range tr.Tokens() {
		for l := range tr.Model().Layers {
			want += tr.Len(tok, l)
		}
	}
	assert.EqualValues(t, want, total)

	other, err := NewRecorder(ModelID{Arch: "other", Layers: 3, Experts: 5, ExpertsUsed: 2})
	require.NoError(t, err)
	err = other.RecordTrace(tr)
	var mm *MismatchError
	require.ErrorAs(t, err, &mm)
	assert.Equal(t, "arch", mm.Field)
	assert.True(t, errors.Is(err, ErrModelMismatch))
}

func TestOptionValues(t *testing.T) {
	m := ModelID{Arch: "toy", Layers: 1, Experts: 4, ExpertsUsed: 1}
	_, err := NewRecorder(m, WithTrace(-1))
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = NewTrace(m, WithTokenCapacity(-1))
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = NewRecorder(m, nil, WithTrace(0))
	assert.NoError(t, err)
}
