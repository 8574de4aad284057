package sample

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

var (
	// ErrInvalidOption reports an option value outside its domain.
	ErrInvalidOption = errors.New("sample: invalid option")
	// ErrBadLogits reports logits with no finite maximum: empty, all -Inf or
	// NaN, or containing +Inf.
	ErrBadLogits = errors.New("sample: logits have no finite maximum")
	// ErrBadHistory reports a history token id outside the logits' vocabulary.
	ErrBadHistory = errors.New("sample: history token out of range")
)

type config struct {
	temperature           float32
	topK                  int
	topP, minP            float32
	repeat, freq, present float32
	window                int
	seed                  uint64
}

// Option configures a Sampler. Options only record their values; New
// checks them (an error matching ErrInvalidOption).
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...)
}

// validate checks every value against its domain.
func (c *config) validate() error {
	finite := func(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
	switch {
	case !(c.temperature >= 0) || math.IsInf(float64(c.temperature), 1):
		return invalid("temperature %v, want a finite t >= 0", c.temperature)
	case c.topK < 0:
		return invalid("top-k %d, want k >= 0", c.topK)
	case !(c.topP > 0 && c.topP <= 1):
		return invalid("top-p %v, want 0 < p <= 1", c.topP)
	case !(c.minP >= 0 && c.minP < 1):
		return invalid("min-p %v, want 0 <= p < 1", c.minP)
	case !(c.repeat > 0) || math.IsInf(float64(c.repeat), 1):
		return invalid("repeat penalty %v, want a finite penalty > 0", c.repeat)
	case !finite(c.freq):
		return invalid("frequency penalty %v", c.freq)
	case !finite(c.present):
		return invalid("presence penalty %v", c.present)
	case c.window < -1:
		return invalid("penalty window %d, want n >= -1", c.window)
	}
	return nil
}

// Temperature divides the logits of the surviving candidates by t before the
// draw (default 0.8). Zero means greedy: the highest penalized logit wins and
// no random number is drawn.
func Temperature(t float32) Option { return optionFunc(func(c *config) { c.temperature = t }) }

// Greedy selects the arg-max token; the same as Temperature(0).
func Greedy() Option { return Temperature(0) }

// TopK keeps the k candidates with the highest logits (default 40); 0 keeps
// all.
func TopK(k int) Option { return optionFunc(func(c *config) { c.topK = k }) }

// TopP keeps the smallest set of most likely candidates whose probabilities
// sum to at least p (default 0.95); 1 keeps all.
func TopP(p float32) Option { return optionFunc(func(c *config) { c.topP = p }) }

// MinP keeps the candidates whose probability is at least p times that of
// the most likely one (default 0.05); 0 keeps all.
func MinP(p float32) Option { return optionFunc(func(c *config) { c.minP = p }) }

// RepeatPenalty penalizes every token that occurs in the penalty window:
// a positive logit is divided by penalty, a negative one multiplied by it
// (default 1, off).
func RepeatPenalty(penalty float32) Option { return optionFunc(func(c *config) { c.repeat = penalty }) }

// FrequencyPenalty subtracts f times a token's count in the penalty window
// from its logit (default 0, off).
func FrequencyPenalty(f float32) Option { return optionFunc(func(c *config) { c.freq = f }) }

// PresencePenalty subtracts p from the logit of every token present in the
// penalty window (default 0, off).
func PresencePenalty(p float32) Option { return optionFunc(func(c *config) { c.present = p }) }

// PenaltyWindow sets how many of the most recent history tokens the
// penalties look at (default 64); 0 turns the penalties off, -1 uses the
// whole history.
func PenaltyWindow(n int) Option { return optionFunc(func(c *config) { c.window = n }) }

// Seed seeds the random draws (default 0). Two samplers with the same
// options and seed choose the same tokens given the same inputs.
func Seed(seed uint64) Option { return optionFunc(func(c *config) { c.seed = seed }) }

// candidate is a token and its logit as the filters change it.
type candidate struct {
	id    int32
	logit float32
}

// Candidates are ordered by descending logit through a bucket partition on
// the distance to the maximum: a filter that needs only the head of the
// order (top-k, top-p) sorts only the buckets it reaches. The last bucket
// collects everything farther than numBuckets/bucketsPerNat nats below the
// maximum, whose probabilities are below float32 resolution of the total.
const (
	numBuckets    = 256
	bucketsPerNat = 8
)

// Sampler chooses the next token from a vector of logits. The filters run in
// llama.cpp's default order: penalties, top-k, top-p, min-p, temperature,
// then a draw from the softmax of what is left. After the first call with a
// given vocabulary size Sample allocates nothing. A Sampler is not safe for
// concurrent use.
type Sampler struct {
	cfg config
	rng *rand.Rand

	cands  []candidate // by token id
	order  []candidate // candidates in descending order as far as sorted
	counts []int32     // penalty-window counts by token id; zero between calls

	// order[:sorted] is in final order; beyond it, order is partitioned into
	// buckets, of which the first nSorted are sorted.
	sorted    int
	bucketEnd [numBuckets]int32
	nSorted   int
}

// New returns a sampler. Without options it uses llama.cpp's defaults:
// temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalties (window
// 64), seed 0.
func New(opts ...Option) (*Sampler, error) {
	c := config{temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05, repeat: 1, window: 64}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &Sampler{cfg: c, rng: rand.New(rand.NewPCG(c.seed, c.seed))}, nil
}

// Reseed restarts the random sequence as if the sampler were new with seed.
func (s *Sampler) Reseed(seed uint64) {
	s.cfg.seed = seed
	s.rng = rand.New(rand.NewPCG(seed, seed))
}

// Sample returns the chosen token id for logits (one per vocabulary entry);
// history holds the tokens seen so far, oldest first, for the penalties.
// NaN logits count as -Inf.
func (s *Sampler) Sample(logits []float32, history []int32) (int32, error) {
	n := len(logits)
	if cap(s.cands) < n {
		s.cands = make([]candidate, n)
		s.order = make([]candidate, n)
		s.counts = make([]int32, n)
	}
	cands := s.cands[:n]
	for i, l := range logits {
		if l != l {
			l = float32(math.Inf(-1))
		}
		cands[i] = candidate{int32(i), l}
	}
	if err := s.penalize(cands, history); err != nil {
		return 0, err
	}

	best, max := -1, float32(math.Inf(-1))
	for i := range cands {
		if l := cands[i].logit; l > max {
			best, max = i, l
		}
	}
	if best < 0 || math.IsInf(float64(max), 1) {
		return 0, ErrBadLogits
	}
	if s.cfg.temperature == 0 {
		return int32(best), nil
	}
	return s.draw(s.filter(cands, max), max), nil
}

// penalize applies the repetition, frequency and presence penalties to the
// tokens of the last window entries of history.
func (s *Sampler) penalize(cands []candidate, history []int32) error {
	c := s.cfg
	if c.window == 0 || c.repeat == 1 && c.freq == 0 && c.present == 0 {
		return nil
	}
	if c.window > 0 && len(history) > c.window {
		history = history[len(history)-c.window:]
	}
	for _, id := range history {
		if id < 0 || int(id) >= len(cands) {
			for _, seen := range history { // leave counts zeroed
				if seen >= 0 && int(seen) < len(cands) {
					s.counts[seen] = 0
				}
			}
			return fmt.Errorf("%w: id %d, vocabulary of %d", ErrBadHistory, id, len(cands))
		}
		s.counts[id]++
	}
	for _, id := range history {
		count := s.counts[id]
		if count == 0 {
			continue // already penalized
		}
		s.counts[id] = 0
		l := cands[id].logit
		if l <= 0 {
			l *= c.repeat
		} else {
			l /= c.repeat
		}
		cands[id].logit = l - float32(count)*c.freq - c.present
	}
	return nil
}

// filter applies top-k, top-p and min-p and returns the survivors; max is
// the highest logit, which always survives.
func (s *Sampler) filter(cands []candidate, max float32) []candidate {
	c := s.cfg
	if c.topK == 0 && c.topP == 1 {
		if c.minP == 0 {
			return cands
		}
		kept := s.order[:0]
		floor := max + float32(math.Log(float64(c.minP)))
		for _, cd := range cands {
			if cd.logit >= floor {
				kept = append(kept, cd)
			}
		}
		return kept
	}

	m := len(cands)
	if c.topK > 0 && c.topK <= maxHeapK {
		m = s.selectTopK(cands, min(c.topK, m))
	} else {
		s.partition(cands, max)
		if c.topK > 0 {
			m = min(c.topK, m)
			s.sortThrough(m - 1)
		}
	}
	if c.topP < 1 {
		var total float64
		if m == len(cands) {
			total = expSum(cands, max)
		} else {
			total = expSum(s.order[:m], max)
		}
		target := float64(c.topP) * total
		var cum float64
		for i := 0; i < m; i++ {
			s.sortThrough(i)
			cum += math.Exp(float64(s.order[i].logit - max))
			if cum >= target {
				m = i + 1
				break
			}
		}
	}
	if c.minP > 0 {
		floor := max + float32(math.Log(float64(c.minP)))
		// order[:m] is sorted: top-k and top-p sorted what they kept.
		m, _ = slices.BinarySearchFunc(s.order[:m], floor, func(cd candidate, f float32) int {
			if cd.logit >= f {
				return -1
			}
			return 1
		})
	}
	return s.order[:m]
}

// maxHeapK is the largest top-k selected with a heap rather than by
// partitioning the whole vocabulary.
const maxHeapK = 1024

// selectTopK puts the k best candidates, sorted, in s.order[:k]. A min-heap
// of the k best so far rejects most of the vocabulary with one comparison.
func (s *Sampler) selectTopK(cands []candidate, k int) int {
	h := s.order[:0]
	for _, c := range cands {
		if len(h) < k {
			h = append(h, c)
			for i := len(h) - 1; i > 0; { // sift up
				parent := (i - 1) / 2
				if !better(h[parent], h[i]) {
					break
				}
				h[i], h[parent] = h[parent], h[i]
				i = parent
			}
			continue
		}
		if !better(c, h[0]) {
			continue
		}
		h[0] = c
		for i := 0; ; { // sift down
			worst, l, r := i, 2*i+1, 2*i+2
			if l < k && better(h[worst], h[l]) {
				worst = l
			}
			if r < k && better(h[worst], h[r]) {
				worst = r
			}
			if worst == i {
				break
			}
			h[i], h[worst] = h[worst], h[i]
			i = worst
		}
	}
	slices.SortFunc(h, descending)
	s.sorted = k
	return k
}

// better reports whether a precedes b in the final order.
func better(a, b candidate) bool {
	return a.logit > b.logit || a.logit == b.logit && a.id < b.id
}

// descending orders candidates by logit, highest first, then by id.
func descending(a, b candidate) int {
	if c := cmp.Compare(b.logit, a.logit); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}

// expSum returns the softmax normalizer of cands relative to max.
func expSum(cands []candidate, max float32) float64 {
	var sum float64
	for _, c := range cands {
		sum += math.Exp(float64(c.logit - max))
	}
	return sum
}

// partition counting-sorts cands into s.order by bucket of distance to max,
// keeping token order within a bucket.
func (s *Sampler) partition(cands []candidate, max float32) {
	var count [numBuckets]int32
	bucket := func(l float32) int {
		d := (max - l) * bucketsPerNat
		if d >= numBuckets-1 { // also -Inf
			return numBuckets - 1
		}
		return int(d)
	}
	for _, c := range cands {
		count[bucket(c.logit)]++
	}
	var end int32
	for b := range numBuckets {
		end += count[b]
		s.bucketEnd[b] = end
	}
	var next [numBuckets]int32
	for b := 1; b < numBuckets; b++ {
		next[b] = s.bucketEnd[b-1]
	}
	order := s.order[:len(cands)]
	for _, c := range cands {
		b := bucket(c.logit)
		order[next[b]] = c
		next[b]++
	}
	s.sorted, s.nSorted = 0, 0
}

// sortThrough sorts the buckets of s.order up to the one holding index i,
// so that s.order[:i+1] is in final order: logit descending, then id.
func (s *Sampler) sortThrough(i int) {
	for i >= s.sorted && s.nSorted < numBuckets {
		end := int(s.bucketEnd[s.nSorted])
		slices.SortFunc(s.order[s.sorted:end], descending)
		s.nSorted++
		s.sorted = end
	}
}

// draw picks a candidate with probability softmax(logit/temperature); max
// is the highest logit among kept.
func (s *Sampler) draw(kept []candidate, max float32) int32 {
	invT := 1 / float64(s.cfg.temperature)
	var total float64
	for _, c := range kept {
		total += math.Exp(float64(c.logit-max) * invT)
	}
	r := s.rng.Float64() * total
	var cum float64
	for _, c := range kept {
		cum += math.Exp(float64(c.logit-max) * invT)
		if r < cum {
			return c.id
		}
	}
	// Not reached: the loop repeats the additions that made total, so cum
	// ends equal to total > r.
	return kept[len(kept)-1].id
}
