package sim_test

import (
	"context"
	"fmt"
	"log"

	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/sim"
)

func ExampleSimulate() {
	id := profile.ModelID{Arch: "llama", Layers: 2, Experts: 16, ExpertsUsed: 4}
	trace, err := sim.SyntheticTrace(id, 500, sim.Routing{RepeatNext: 0.5, RepeatWithin8: 0.8, Coverage90: 0.6, TopShare: 0.12}, 1)
	if err != nil {
		log.Fatal(err)
	}
	// A model of the trace's shape, without weights.
	w, err := synth.ShapeWriter(sim.ShapeOf(trace, 256, 256, 1<<20))
	if err != nil {
		log.Fatal(err)
	}
	m, err := synth.OpenShape(w, "")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	rep, err := sim.Simulate(context.Background(), m, trace, sim.Config{
		Budgets:  []sim.Budget{{Slots: 6}, {Slots: 10}},
		Policies: []sim.Policy{{Name: "LRU", Policy: rotary.LRU}, {Name: "Belady", Policy: rotary.Belady(trace)}},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, row := range rep.Rows {
		fmt.Printf("%s %s: %.1f%%\n", row.Budget, row.Policy, 100*row.HitRate)
	}
	// Output:
	// 6 slots LRU: 59.6%
	// 6 slots Belady: 70.6%
	// 10 slots LRU: 78.8%
	// 10 slots Belady: 88.7%
}
