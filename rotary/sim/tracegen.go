package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/rotary-moe/rotary/profile"
)

// Routing is a few statistics of a routing trace, the ones that decide how
// well a cache of experts does. SyntheticTrace generates traces that have
// them; MeasureRouting measures them (averaged over layers).
type Routing struct {
	// RepeatNext is the share of selections whose expert the previous token
	// also selected (in the same layer), over the tokens that have one.
	RepeatNext float64 `json:"repeat_next"`
	// RepeatWithin8 is the share of selections whose expert one of the 8
	// previous tokens selected, over the tokens that have one.
	RepeatWithin8 float64 `json:"repeat_within_8"`
	// Coverage90 is the share of a layer's experts that together take 90% of
	// its selections (the most selected first).
	Coverage90 float64 `json:"coverage_90"`
	// TopShare is the share of a layer's selections its most selected expert
	// takes.
	TopShare float64 `json:"top_share"`
}

// Qwen3Routing is the project's target routing for Qwen3-30B-A3B (48 layers,
// top-8 of 128): 45% of expert selections repeat at the next token and 80%
// within 8 tokens, as the project's trace notes (shared/traces/README.md)
// quote for the real model (25 prompts, 3,225 decode tokens); about half the
// experts cover 90% of a layer's routing, and a layer's top expert takes
// 4–6% of it: targets the project set, with no recorded source.
var Qwen3Routing = Routing{RepeatNext: 0.45, RepeatWithin8: 0.80, Coverage90: 0.5, TopShare: 0.05}

// SyntheticTrace generates a routing trace of tokens tokens for a model of
// m's shape whose layers (every layer of m) route with the statistics r. Each
// layer has its own popularity ranking of experts, a shifted Zipf law fitted
// to Coverage90 and TopShare; each token picks its k experts one by one,
// repeating one of the previous token's with some probability, one of the 7
// tokens before that with another, and otherwise drawing from the popularity
// law, the two probabilities fitted so that the repeats (deliberate and by
// chance) come out at RepeatNext and RepeatWithin8. The same arguments give
// the same trace.
func SyntheticTrace(m profile.ModelID, tokens int, r Routing, seed uint64) (*profile.Trace, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	switch {
	case tokens <= 0:
		return nil, fmt.Errorf("%w: %d tokens", ErrInvalid, tokens)
	case !(r.RepeatNext >= 0 && r.RepeatWithin8 >= r.RepeatNext && r.RepeatWithin8 < 1):
		return nil, fmt.Errorf("%w: repeats %v next, %v within 8: want 0 <= next <= within 8 < 1", ErrInvalid, r.RepeatNext, r.RepeatWithin8)
	case !(r.Coverage90 > 0 && r.Coverage90 <= 1):
		return nil, fmt.Errorf("%w: coverage %v outside (0, 1]", ErrInvalid, r.Coverage90)
	case !(r.TopShare*float64(m.Experts) >= 1 && r.TopShare <= 1/float64(m.ExpertsUsed)):
		return nil, fmt.Errorf("%w: top share %v: want 1/experts (%v) to 1/top-k (%v)", ErrInvalid, r.TopShare, 1/float64(m.Experts), 1/float64(m.ExpertsUsed))
	}
	g := &generator{k: m.ExpertsUsed}
	g.fit(r, m.Experts, seed)
	t, err := profile.NewTrace(m, profile.WithTokenCapacity(tokens))
	if err != nil {
		return nil, err
	}
	t.StartSegment("synthetic", "decode")
	for range tokens {
		t.AddToken()
	}
	for l := range m.Layers {
		rng := rand.New(rand.NewPCG(seed, uint64(l)+1))
		rank := rng.Perm(m.Experts) // layer l's most popular expert is rank[0]
		var ids []int32
		g.run(rng, tokens, func(tok int, sel []int) {
			ids = ids[:0]
			for _, r := range sel {
				ids = append(ids, int32(rank[r]))
			}
			_ = t.Set(tok, l, ids, nil) // distinct and in range by construction
		})
	}
	return t, nil
}

// popularity returns the cumulative distribution of a shifted Zipf law over
// n ranks, p(i) ∝ (i+c)^-s, with s and c chosen so that the top coverage·n
// ranks take 90% and rank 0 takes top.
func popularity(n int, coverage, top float64) []float64 {
	head := max(int(math.Round(coverage*float64(n))), 1)
	logs := make([]float64, n) // log(i+c) for the shift logsOf
	logsOf := math.NaN()
	p := make([]float64, n)
	law := func(s, c float64) []float64 {
		if c != logsOf {
			logsOf = c
			for i := range logs {
				logs[i] = math.Log(float64(i) + c)
			}
		}
		var sum float64
		for i := range p {
			p[i] = math.Exp(-s * logs[i])
			sum += p[i]
		}
		for i := range p {
			p[i] /= sum
		}
		return p
	}
	headShare := func(p []float64) float64 {
		var h float64
		for _, x := range p[:head] {
			h += x
		}
		return h
	}
	// For a shift c, the exponent that gives the head 90% (the head's share
	// grows with s); then the shift that gives rank 0 its share (a larger
	// shift flattens the top).
	exponent := func(c float64) float64 {
		lo, hi := 0.0, 20.0
		for range 40 {
			s := (lo + hi) / 2
			if headShare(law(s, c)) < 0.9 {
				lo = s
			} else {
				hi = s
			}
		}
		return (lo + hi) / 2
	}
	lo, hi := 1e-3, float64(n)*100
	for range 40 {
		c := math.Sqrt(lo * hi) // the shift spans decades
		if law(exponent(c), c)[0] > top {
			lo = c
		} else {
			hi = c
		}
	}
	c := math.Sqrt(lo * hi)
	p = slices.Clone(law(exponent(c), c))
	for i := 1; i < n; i++ {
		p[i] += p[i-1]
	}
	return p
}

// generator picks k distinct popularity ranks per token.
type generator struct {
	k          int
	cum        []float64 // cumulative popularity of ranks
	next, near float64   // probabilities of a deliberate repeat of the previous token, of the 7 before
}

// fit finds the generator's parameters by fixed-point iteration on a sample
// of one layer: the popularity law's coverage and top share (the repeats
// flatten the law a little) and the two repeat probabilities (chance repeats
// add to the deliberate ones).
func (g *generator) fit(r Routing, experts int, seed uint64) {
	const sample, rounds = 2000, 16
	cov, top := r.Coverage90, r.TopShare
	g.next, g.near = r.RepeatNext, r.RepeatWithin8-r.RepeatNext
	for round := range rounds {
		g.cum = popularity(experts, cov, top)
		if round == rounds-1 {
			return
		}
		rng := rand.New(rand.NewPCG(seed, 0))
		h := newRepeatCounter(experts)
		counts := make([]uint64, experts)
		g.run(rng, sample, func(_ int, sel []int) {
			h.add(sel)
			for _, x := range sel {
				counts[x]++
			}
		})
		next, within := h.rates()
		g.next = clamp(g.next+r.RepeatNext-next, 0, 1)
		g.near = clamp(g.near+(r.RepeatWithin8-within)-(r.RepeatNext-next), 0, 1-g.next)
		gotCov, gotTop := concentration(counts)
		cov = clamp(cov+r.Coverage90-gotCov, 1/float64(experts), 1)
		top = clamp(top*r.TopShare/gotTop, 1/float64(experts), 1/float64(g.k))
	}
}

// concentration returns the share of experts that take 90% of the
// selections counted, and the share of the most selected one.
func concentration(counts []uint64) (coverage90, top float64) {
	sorted := slices.Sorted(slices.Values(counts))
	slices.Reverse(sorted)
	var total, sum uint64
	for _, c := range sorted {
		total += c
	}
	if total == 0 {
		return 0, 0
	}
	n := 0
	for sum*10 < total*9 {
		sum += sorted[n]
		n++
	}
	return float64(n) / float64(len(counts)), float64(sorted[0]) / float64(total)
}

func clamp(x, lo, hi float64) float64 { return min(max(x, lo), hi) }

// run generates tokens tokens of one layer, calling emit with each token's
// ranks (a slice reused between calls).
func (g *generator) run(rng *rand.Rand, tokens int, emit func(tok int, sel []int)) {
	const window = 8
	hist := make([][]int, window) // the previous tokens' ranks, hist[(tok-1)%window] the last
	for i := range hist {
		hist[i] = make([]int, 0, g.k)
	}
	chosen := make([]int, 0, g.k)
	var cands []int
	for tok := range tokens {
		chosen = chosen[:0]
		prev := hist[(tok+window-1)%window]
		for len(chosen) < g.k {
			u := rng.Float64()
			switch {
			case u < g.next:
				cands = appendExcept(cands[:0], prev, chosen, nil)
			case u < g.next+g.near:
				cands = cands[:0]
				for d := 2; d <= window; d++ {
					cands = appendExcept(cands, hist[(tok+window-d)%window], chosen, prev)
				}
			default:
				cands = cands[:0]
			}
			if len(cands) > 0 {
				chosen = append(chosen, cands[rng.IntN(len(cands))])
				continue
			}
			for {
				x, _ := slices.BinarySearch(g.cum, rng.Float64())
				x = min(x, len(g.cum)-1)
				if !slices.Contains(chosen, x) {
					chosen = append(chosen, x)
					break
				}
			}
		}
		emit(tok, chosen)
		slot := tok % window
		hist[slot] = append(hist[slot][:0], chosen...)
	}
}

// appendExcept appends the elements of src in neither a nor b.
func appendExcept(dst, src, a, b []int) []int {
	for _, x := range src {
		if !slices.Contains(a, x) && !slices.Contains(b, x) {
			dst = append(dst, x)
		}
	}
	return dst
}

// repeatCounter measures how far back selections repeat, in one stream of
// tokens of one layer.
type repeatCounter struct {
	last                 []int // [expert]: last token that selected it, -1 if none
	tok                  int
	total, next, within8 uint64
}

func newRepeatCounter(experts int) *repeatCounter {
	c := &repeatCounter{last: make([]int, experts)}
	c.restart()
	return c
}

// restart starts a new stream (a new prompt).
func (c *repeatCounter) restart() {
	for i := range c.last {
		c.last[i] = -1
	}
	c.tok = 0
}

func (c *repeatCounter) add(sel []int) {
	for _, e := range sel {
		if c.tok > 0 {
			c.total++
			if c.last[e] >= 0 {
				d := c.tok - c.last[e]
				if d == 1 {
					c.next++
				}
				if d <= 8 {
					c.within8++
				}
			}
		}
		c.last[e] = c.tok
	}
	c.tok++
}

func (c *repeatCounter) rates() (next, within8 float64) {
	if c.total == 0 {
		return 0, 0
	}
	return float64(c.next) / float64(c.total), float64(c.within8) / float64(c.total)
}

// MeasureRouting measures a trace's routing statistics, averaged over the
// layers that route. Repeats are counted within each prompt: a segment with
// a new name (a prompt's prefill and decode segments share one) starts over;
// tokens a layer does not route are skipped.
func MeasureRouting(t *profile.Trace) (Routing, error) {
	rec, err := profile.NewRecorder(t.Model())
	if err != nil {
		return Routing{}, err
	}
	if err := rec.RecordTrace(t); err != nil {
		return Routing{}, err
	}
	p := rec.Profile()
	m := t.Model()
	var sum Routing
	layers := 0
	var ids []int32
	var sel []int
	for l := range m.Layers {
		if p.Layers[l].Selections() == 0 {
			continue
		}
		layers++
		c := newRepeatCounter(m.Experts)
		segs := t.Segments()
		seg := -1
		for tok := range t.Tokens() {
			for seg+1 < len(segs) && segs[seg+1].Start == tok {
				if seg++; seg == 0 || segs[seg].Name != segs[seg-1].Name {
					c.restart()
				}
			}
			ids = t.AppendExperts(ids[:0], tok, l)
			if len(ids) == 0 {
				continue
			}
			sel = sel[:0]
			for _, e := range ids {
				sel = append(sel, int(e))
			}
			c.add(sel)
		}
		next, within := c.rates()
		sum.RepeatNext += next
		sum.RepeatWithin8 += within
		c90, top := concentration(p.Layers[l].Counts)
		sum.Coverage90 += c90
		sum.TopShare += top
	}
	if layers == 0 {
		return Routing{}, fmt.Errorf("%w: the trace routes no tokens", ErrInvalid)
	}
	f := 1 / float64(layers)
	return Routing{RepeatNext: sum.RepeatNext * f, RepeatWithin8: sum.RepeatWithin8 * f, Coverage90: sum.Coverage90 * f, TopShare: sum.TopShare * f}, nil
}
