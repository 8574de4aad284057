package profile

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordedProfile records a few tokens on tiny.
func recordedProfile(t *testing.T, workload string, coActivation bool) *Profile {
	t.Helper()
	opts := []Option{WithWorkload(workload)}
	if coActivation {
		opts = append(opts, WithCoActivation())
	}
	r, err := NewRecorder(tiny, opts...)
	require.NoError(t, err)
	for tok := range 5 {
		require.NoError(t, r.Record(0, []int32{int32(tok % 3), 3}, []float32{0.5, 0.5}))
		require.NoError(t, r.Record(1, []int32{int32(tok % 2)}, nil))
	}
	return r.Profile()
}

func TestProfileSaveLoad(t *testing.T) {
	p := recordedProfile(t, "chat", true)
	p.Model.TensorHash = "feed"
	path := filepath.Join(t.TempDir(), "p.json")
	require.NoError(t, p.Save(path))
	got, err := Load(path)
	require.NoError(t, err)
	assert.Equal(t, p, got)

	same := tiny
	same.TensorHash = "feed"
	got, err = LoadFor(path, same)
	require.NoError(t, err)
	assert.Equal(t, p, got)
}

func TestProfileMismatch(t *testing.T) {
	p := recordedProfile(t, "chat", false)
	p.Model.TensorHash = "feed"
	path := filepath.Join(t.TempDir(), "p.json")
	require.NoError(t, p.Save(path))
	for field, m := range map[string]ModelID{
		"arch":         {Arch: "other", Layers: 2, Experts: 4, ExpertsUsed: 2},
		"layers":       {Arch: "test", Layers: 3, Experts: 4, ExpertsUsed: 2},
		"experts":      {Arch: "test", Layers: 2, Experts: 8, ExpertsUsed: 2},
		"experts_used": {Arch: "test", Layers: 2, Experts: 4, ExpertsUsed: 1},
		"tensor_hash":  {Arch: "test", Layers: 2, Experts: 4, ExpertsUsed: 2, TensorHash: "beef"},
	} {
		t.Run(field, func(t *testing.T) {
			_, err := LoadFor(path, m)
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrModelMismatch))
			var mm *MismatchError
			require.ErrorAs(t, err, &mm)
			assert.Equal(t, field, mm.Field)
			assert.Contains(t, err.Error(), field)
		})
	}
	// A model without a tensor hash accepts the profile (shape matches).
	_, err := LoadFor(path, ModelID{Arch: "test", Layers: 2, Experts: 4, ExpertsUsed: 2})
	assert.NoError(t, err)
}

func TestProfileMerge(t *testing.T) {
	a := recordedProfile(t, "chat", true)
	b := recordedProfile(t, "code", true)
	b.Layers[1].Counts[2] = 7
	c := recordedProfile(t, "code", false)
	want := recordedProfile(t, "chat", true)

	require.NoError(t, a.Merge(b))
	assert.Equal(t, "chat+code", a.Workload)
	assert.EqualValues(t, 10, a.Tokens)
	for l := range a.Layers {
		assert.Equal(t, 2*want.Layers[l].Tokens, a.Layers[l].Tokens)
		assert.Equal(t, 2*want.Layers[l].FirstUse, a.Layers[l].FirstUse)
		for e := range a.Layers[l].Counts {
			extra := uint64(0)
			if l == 1 && e == 2 {
				extra = 7
			}
			assert.Equal(t, 2*want.Layers[l].Counts[e]+extra, a.Layers[l].Counts[e])
			assert.Equal(t, 2*want.Layers[l].Mass[e], a.Layers[l].Mass[e])
		}
		for i, n := range want.Layers[l].Reuse {
			assert.Equal(t, 2*n, a.Layers[l].Reuse[i])
		}
	}
	assert.Equal(t, 2*want.CoActivation(0, 0, 3), a.CoActivation(0, 0, 3))

	require.NoError(t, a.Merge(c))
	assert.Nil(t, a.Layers[0].CoActivation, "co-activation is dropped when one side lacks it")
	assert.Equal(t, "chat+code", a.Workload)

	other := recordedProfile(t, "x", false)
	other.Model.Experts = 5
	assert.ErrorIs(t, a.Merge(other), ErrModelMismatch)
}

func TestProfileDecodeErrors(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, recordedProfile(t, "", false).Encode(&buf))
	good := buf.String()
	for name, tc := range map[string]struct {
		input string
		want  error
	}{
		"not json":      {"{", ErrFormat},
		"version":       {strings.Replace(good, `"version": 2`, `"version": 3`, 1), ErrVersion},
		"layer count":   {strings.Replace(good, `"layers": 2`, `"layers": 3`, 1), ErrFormat},
		"bad model":     {strings.Replace(good, `"experts_used": 2`, `"experts_used": 0`, 1), ErrFormat},
		"counts length": {strings.Replace(good, `"counts": [`, `"counts": [1,`, 1), ErrFormat},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tc.input))
			assert.ErrorIs(t, err, tc.want)
		})
	}
	_, err := Load(filepath.Join(t.TempDir(), "missing.json"))
	assert.Error(t, err)

	// Version 3 names both: what the file has and what this package reads.
	_, err = Decode(strings.NewReader(strings.Replace(good, `"version": 2`, `"version": 3`, 1)))
	assert.ErrorContains(t, err, "version 3, this package reads 1 to 2")
	// A version 1 file is a version 2 file without transitions.
	p, err := Decode(strings.NewReader(strings.Replace(good, `"version": 2`, `"version": 1`, 1)))
	require.NoError(t, err)
	assert.Equal(t, Version, p.Version)
	assert.False(t, p.HasTransitions())
}

// TestRecorderTransitions checks the cross-layer counts against a plain
// count over the trace, and that they survive a save, a load and a merge.
func TestRecorderTransitions(t *testing.T) {
	m := ModelID{Arch: "test", Layers: 5, Experts: 6, ExpertsUsed: 2}
	tr, err := NewTrace(m)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	routed := []int{1, 2, 4} // layers 0 and 3 are dense
	for range 200 {
		tok := tr.AddToken()
		for _, l := range routed {
			a := rng.IntN(6)
			b := (a + 1 + rng.IntN(5)) % 6
			require.NoError(t, tr.Set(tok, l, []int32{int32(a), int32(b)}, nil))
		}
	}
	rec, err := NewRecorder(m, WithTransitions())
	require.NoError(t, err)
	require.NoError(t, rec.RecordTrace(tr))
	p := rec.Profile()
	require.True(t, p.HasTransitions())
	for i, l := range routed {
		for d := 1; d <= TransitionDepth; d++ {
			for a := range 6 {
				for b := range 6 {
					var want uint64
					if i-d >= 0 {
						for tok := range tr.Tokens() {
							if slices.Contains(tr.AppendExperts(nil, tok, routed[i-d]), int32(a)) && slices.Contains(tr.AppendExperts(nil, tok, l), int32(b)) {
								want++
							}
						}
					}
					require.Equal(t, want, p.Transition(l, d, a, b), "layer %d, %d back, %d -> %d", l, d, a, b)
				}
			}
		}
	}
	assert.Zero(t, p.Transition(2, 3, 0, 1), "out of range")

	var buf bytes.Buffer
	require.NoError(t, p.Encode(&buf))
	back, err := Decode(&buf)
	require.NoError(t, err)
	assert.Equal(t, p.Layers, back.Layers)
	require.NoError(t, back.Merge(p))
	assert.Equal(t, 2*p.Transition(4, 1, 0, 1), back.Transition(4, 1, 0, 1))
	plain, err := NewRecorder(m)
	require.NoError(t, err)
	require.NoError(t, back.Merge(plain.Profile()))
	assert.False(t, back.HasTransitions(), "dropped when one side lacks them")

	p.Layers[2].Transitions[1] = p.Layers[2].Transitions[1][1:]
	buf.Reset()
	require.NoError(t, p.Encode(&buf))
	_, err = Decode(&buf)
	assert.ErrorIs(t, err, ErrFormat)
}
