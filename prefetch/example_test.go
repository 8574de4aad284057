package prefetch_test

import (
	"context"
	"fmt"
	"log"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/prefetch"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary"
)

// chain is a routing in which each layer's experts follow from the layer
// before's: expert e is followed by 3e+1 mod 16.
func chain(tokens int) *profile.Trace {
	tr, err := profile.NewTrace(profile.ModelID{Arch: "llama", Layers: 4, Experts: 16, ExpertsUsed: 2})
	if err != nil {
		log.Fatal(err)
	}
	for range tokens {
		tok := tr.AddToken()
		ids := []int32{int32(tok * 5 % 16), int32((tok*5 + 7) % 16)}
		for l := range 4 {
			if err := tr.Set(tok, l, ids, nil); err != nil {
				log.Fatal(err)
			}
			for i, e := range ids {
				ids[i] = (3*e + 1) % 16
			}
		}
	}
	return tr
}

func ExampleRecall() {
	p, err := prefetch.FitTransition(chain(100))
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range []int{1, 2} {
		r, err := prefetch.Recall(chain(50), p, m)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("recall@%d %.0f%%\n", m, 100*r)
	}
	// Output:
	// recall@1 50%
	// recall@2 100%
}

func ExamplePrefetcher() {
	ctx := context.Background()
	w, err := synth.ShapeWriter(synth.Shape{Arch: "llama", Layers: 4, Experts: 16, TopK: 2, Embedding: 64, ExpertFFN: 64})
	if err != nil {
		log.Fatal(err)
	}
	m, err := synth.OpenShape(w, "")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	pred, err := prefetch.FitTransition(chain(100))
	if err != nil {
		log.Fatal(err)
	}
	for _, withPrefetch := range []bool{false, true} {
		dev, err := cuda.NewHost(cuda.WithVirtualClock(), cuda.WithoutData())
		if err != nil {
			log.Fatal(err)
		}
		rt, err := rotary.Open(ctx, m, dev, rotary.WithSlots(4), rotary.WithoutWarmup())
		if err != nil {
			log.Fatal(err)
		}
		var f *prefetch.Prefetcher
		if withPrefetch {
			if f, err = prefetch.New(rt, pred); err != nil {
				log.Fatal(err)
			}
		}
		// A decoder's loop: after each layer's Acquire, tell the prefetcher.
		tr := chain(200)
		for tok := range tr.Tokens() {
			for l := range 4 {
				var ids []int
				for _, e := range tr.AppendExperts(nil, tok, l) {
					ids = append(ids, int(e))
				}
				set, err := rt.Acquire(ctx, l, ids, nil)
				if err != nil {
					log.Fatal(err)
				}
				if f != nil {
					f.Routed(l, ids, nil)
				}
				if err := rt.Release(set, nil); err != nil {
					log.Fatal(err)
				}
			}
		}
		s := rt.Stats()
		fmt.Printf("prefetch %v: hit rate %.1f%%, %d prefetched (%d useful, %d wasted), recall %.0f%%, precision %.0f%%\n",
			withPrefetch, 100*s.VRAM.HitRate(), s.Prefetched, s.Prefetch.Useful, s.Prefetch.Wasted, 100*s.Prefetch.Recall(), 100*s.Prefetch.Precision())
		rt.Close()
		dev.Close()
	}
	// Output:
	// prefetch false: hit rate 0.0%, 0 prefetched (0 useful, 0 wasted), recall 0%, precision 0%
	// prefetch true: hit rate 75.0%, 1200 prefetched (1200 useful, 0 wasted), recall 100%, precision 100%
}
