package sample

import (
	"cmp"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// logitsOf returns logits whose softmax is probs.
func logitsOf(probs ...float64) []float32 {
	l := make([]float32, len(probs))
	for i, p := range probs {
		l[i] = float32(math.Log(p))
	}
	return l
}

func mustNew(t testing.TB, opts ...Option) *Sampler {
	t.Helper()
	s, err := New(opts...)
	require.NoError(t, err)
	return s
}

// support returns the sorted ids that survive the filters for logits.
func support(t *testing.T, s *Sampler, logits []float32, history []int32) []int32 {
	t.Helper()
	cands := make([]candidate, len(logits))
	for i, l := range logits {
		cands[i] = candidate{int32(i), l}
	}
	s.cands, s.order, s.counts = cands, make([]candidate, len(logits)), make([]int32, len(logits))
	require.NoError(t, s.penalize(cands, history))
	max := slices.MaxFunc(cands, func(a, b candidate) int { return cmp.Compare(a.logit, b.logit) }).logit
	var ids []int32
	for _, c := range s.filter(cands, max) {
		ids = append(ids, c.id)
	}
	slices.Sort(ids)
	return ids
}

func TestOptionsValidated(t *testing.T) {
	nan := float32(math.NaN())
	for _, o := range []Option{
		Temperature(-0.1), Temperature(nan), Temperature(float32(math.Inf(1))),
		TopK(-1), TopP(0), TopP(1.5), TopP(nan), MinP(-0.1), MinP(1), MinP(nan),
		RepeatPenalty(0), RepeatPenalty(nan), FrequencyPenalty(nan), PresencePenalty(float32(math.Inf(-1))),
		PenaltyWindow(-2),
	} {
		_, err := New(o)
		assert.ErrorIs(t, err, ErrInvalidOption)
	}
}

func TestGreedyIsArgmax(t *testing.T) {
	s := mustNew(t, Greedy())
	rng := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, 1000)
	for range 50 {
		for i := range logits {
			logits[i] = float32(rng.NormFloat64() * 5)
		}
		want := 0
		for i, l := range logits {
			if l > logits[want] {
				want = i
			}
		}
		got, err := s.Sample(logits, nil)
		require.NoError(t, err)
		assert.Equal(t, int32(want), got)
	}

	got, err := s.Sample([]float32{1, 3, float32(math.NaN()), 3, 2}, nil)
	require.NoError(t, err)
	assert.Equal(t, int32(1), got, "ties go to the lowest id, NaN is ignored")
}

func TestSeedDeterminism(t *testing.T) {
	logits := make([]float32, 1000)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range logits {
		logits[i] = float32(rng.NormFloat64())
	}
	run := func(seed uint64) []int32 {
		s := mustNew(t, Seed(seed), TopK(0), TopP(0.99), MinP(0), Temperature(1.2))
		var out []int32
		for range 100 {
			id, err := s.Sample(logits, out)
			require.NoError(t, err)
			out = append(out, id)
		}
		return out
	}
	a, b, c := run(7), run(7), run(8)
	assert.Equal(t, a, b)
	assert.NotEqual(t, a, c)

	s := mustNew(t, Seed(7), TopK(0), TopP(0.99), MinP(0), Temperature(1.2))
	first, _ := s.Sample(logits, nil)
	s.Reseed(7)
	again, _ := s.Sample(logits, nil)
	assert.Equal(t, first, again, "Reseed restarts the sequence")
}

func TestFilters(t *testing.T) {
	probs := logitsOf(0.5, 0.2, 0.15, 0.1, 0.05)
	all := []Option{TopK(0), TopP(1), MinP(0)}
	with := func(opts ...Option) *Sampler { return mustNew(t, append(slices.Clone(all), opts...)...) }

	assert.Equal(t, []int32{0, 1, 2, 3, 4}, support(t, with(), probs, nil))
	assert.Equal(t, []int32{0, 1}, support(t, with(TopK(2)), probs, nil))
	assert.Equal(t, []int32{0, 1, 2, 3, 4}, support(t, with(TopK(9)), probs, nil))
	assert.Equal(t, []int32{0, 1}, support(t, with(TopP(0.65)), probs, nil))
	assert.Equal(t, []int32{0, 1, 2}, support(t, with(TopP(0.8)), probs, nil))
	assert.Equal(t, []int32{0}, support(t, with(TopP(0.3)), probs, nil))
	assert.Equal(t, []int32{0, 1}, support(t, with(MinP(0.35)), probs, nil))    // p >= 0.175
	assert.Equal(t, []int32{0, 1, 2}, support(t, with(MinP(0.25)), probs, nil)) // p >= 0.125

	// Top-p renormalizes over what top-k kept: within the top 3 the first
	// two hold 0.7/0.85 = 0.82 >= 0.8, while over all five they hold 0.7.
	assert.Equal(t, []int32{0, 1}, support(t, with(TopK(3), TopP(0.8)), probs, nil))
	// Min-p after top-p: top-p 0.9 keeps four, min-p 0.3 (>= 0.15) keeps three.
	assert.Equal(t, []int32{0, 1, 2}, support(t, with(TopP(0.9), MinP(0.3)), probs, nil))
}

func TestPenalties(t *testing.T) {
	logits := []float32{2, -2, 1, 0.5}
	s := mustNew(t, RepeatPenalty(2), FrequencyPenalty(0.25), PresencePenalty(0.1), PenaltyWindow(3))
	s.counts = make([]int32, len(logits))
	cands := make([]candidate, len(logits))
	for i, l := range logits {
		cands[i] = candidate{int32(i), l}
	}
	// The window sees [0, 1, 0]; token 3 is older and not penalized.
	require.NoError(t, s.penalize(cands, []int32{3, 0, 1, 0}))
	assert.Equal(t, []candidate{
		{0, 2.0/2 - 2*0.25 - 0.1},
		{1, -2*2 - 1*0.25 - 0.1},
		{2, 1},
		{3, 0.5},
	}, cands)
	assert.Equal(t, make([]int32, len(logits)), s.counts, "counts are cleared after use")

	// Greedy sees the penalized logits: 0 would win, the penalty makes it 2.
	g := mustNew(t, Greedy(), RepeatPenalty(4))
	id, err := g.Sample(logits, []int32{0})
	require.NoError(t, err)
	assert.Equal(t, int32(2), id)

	whole := mustNew(t, Greedy(), RepeatPenalty(4), PenaltyWindow(-1))
	id, err = whole.Sample([]float32{3, 2.5, 2}, []int32{0, 1, 1, 1, 1})
	require.NoError(t, err)
	assert.Equal(t, int32(2), id, "window -1 covers the whole history")

	off := mustNew(t, Greedy(), RepeatPenalty(4), PenaltyWindow(0))
	id, err = off.Sample(logits, []int32{0})
	require.NoError(t, err)
	assert.Equal(t, int32(0), id)
}

// TestDrawDistribution checks the draw against the softmax with a chi-square
// test; the seed is fixed, so the outcome is too.
func TestDrawDistribution(t *testing.T) {
	probs := []float64{0.1, 0.2, 0.3, 0.4}
	for _, temp := range []float64{1, 0.5, 2} {
		s := mustNew(t, Seed(42), TopK(0), TopP(1), MinP(0), Temperature(float32(temp)))
		want := make([]float64, len(probs))
		var z float64
		for i, p := range probs {
			want[i] = math.Pow(p, 1/temp)
			z += want[i]
		}
		const n = 100_000
		counts := make([]float64, len(probs))
		logits := logitsOf(probs...)
		for range n {
			id, err := s.Sample(logits, nil)
			require.NoError(t, err)
			counts[id]++
		}
		var chi2 float64
		for i := range probs {
			expected := n * want[i] / z
			chi2 += (counts[i] - expected) * (counts[i] - expected) / expected
		}
		// 3 degrees of freedom: P(chi2 > 16.27) = 0.001.
		assert.Less(t, chi2, 16.27, "temperature %v: counts %v", temp, counts)
	}
}

// TestFilterMatchesFullSort compares the bucketed filters with a plain
// sort of the whole vocabulary, on logits spread over many buckets with ties
// and -Inf entries.
func TestFilterMatchesFullSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	logits := make([]float32, 8000)
	for trial := range 30 {
		for i := range logits {
			logits[i] = float32(math.Round(rng.NormFloat64()*8*4) / 4)
			if rng.IntN(50) == 0 {
				logits[i] = float32(math.Inf(-1))
			}
		}
		k := []int{0, 1, 40, 300, 2000, 9000}[trial%6]
		p := []float32{1, 0.5, 0.95, 0.999}[trial%4]
		minP := []float32{0, 0.05, 0.3}[trial%3]
		s := mustNew(t, TopK(k), TopP(p), MinP(minP))
		got := support(t, s, logits, nil)

		ref := make([]candidate, len(logits))
		for i, l := range logits {
			ref[i] = candidate{int32(i), l}
		}
		slices.SortFunc(ref, func(a, b candidate) int {
			if c := cmp.Compare(b.logit, a.logit); c != 0 {
				return c
			}
			return cmp.Compare(a.id, b.id)
		})
		if k > 0 && k < len(ref) {
			ref = ref[:k]
		}
		if p < 1 {
			var total, cum float64
			for _, c := range ref {
				total += math.Exp(float64(c.logit - ref[0].logit))
			}
			for i, c := range ref {
				cum += math.Exp(float64(c.logit - ref[0].logit))
				if cum >= float64(p)*total {
					ref = ref[:i+1]
					break
				}
			}
		}
		if minP > 0 {
			floor := ref[0].logit + float32(math.Log(float64(minP)))
			for i, c := range ref {
				if c.logit < floor {
					ref = ref[:i]
					break
				}
			}
		}
		var want []int32
		for _, c := range ref {
			want = append(want, c.id)
		}
		slices.Sort(want)
		require.Equal(t, want, got, "trial %d: k=%d p=%v min-p=%v", trial, k, p, minP)
	}
}

func TestBadInput(t *testing.T) {
	s := mustNew(t, RepeatPenalty(1.1))
	_, err := s.Sample(nil, nil)
	assert.ErrorIs(t, err, ErrBadLogits)
	nan := float32(math.NaN())
	_, err = s.Sample([]float32{nan, float32(math.Inf(-1))}, nil)
	assert.ErrorIs(t, err, ErrBadLogits)
	_, err = s.Sample([]float32{0, float32(math.Inf(1))}, nil)
	assert.ErrorIs(t, err, ErrBadLogits)

	_, err = s.Sample([]float32{1, 2, 3}, []int32{0, 1, 3})
	assert.ErrorIs(t, err, ErrBadHistory)
	assert.Equal(t, []int32{0, 0, 0}, s.counts[:3], "a rejected history leaves no counts behind")
	_, err = s.Sample([]float32{1, 2, 3}, []int32{-1})
	assert.ErrorIs(t, err, ErrBadHistory)
}

func TestNoAllocations(t *testing.T) {
	logits := make([]float32, 32000)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 3)
	}
	history := []int32{5, 17, 5, 900}
	for _, opts := range [][]Option{
		nil,
		{TopK(0), RepeatPenalty(1.1), PresencePenalty(0.5)},
		{TopK(0), TopP(1), MinP(0.1)},
		{Greedy()},
	} {
		s := mustNew(t, opts...)
		_, err := s.Sample(logits, history) // warm-up sizes the buffers
		require.NoError(t, err)
		allocs := testing.AllocsPerRun(20, func() {
			if _, err := s.Sample(logits, history); err != nil {
				t.Fatal(err)
			}
		})
		assert.Zero(t, allocs)
	}
}

func TestErrorsAreSentinels(t *testing.T) {
	_, err := New(TopK(-3))
	assert.True(t, errors.Is(err, ErrInvalidOption))
	assert.Contains(t, err.Error(), "top-k -3")
}
