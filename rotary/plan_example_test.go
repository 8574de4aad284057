package rotary_test

import (
	"context"
	"fmt"
	"log"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/rotary"
)

// Plan once, look at the plan (here: size a buffer from it), and open the
// runtime on the same numbers.
func ExampleWithPlan() {
	m := tinyModel()
	defer m.Close()
	plan, err := rotary.NewPlan(m, rotary.WithVRAM(3<<20), rotary.WithHostBudget(1<<20))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("slots per layer:", plan.Layers[0].Slots, "host tier:", plan.Host.Mode)

	// The device's own size (cuda.WithCapacity) bounds the plan's budget;
	// neither overrides the other.
	dev, err := cuda.NewHost(cuda.WithCapacity(8 << 20))
	if err != nil {
		log.Fatal(err)
	}
	defer dev.Close()
	rt, err := rotary.Open(context.Background(), m, dev, rotary.WithPlan(plan), rotary.WithoutWarmup())
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()
	fmt.Println("the runtime follows it:", rt.Plan() == plan)
	// Output:
	// slots per layer: 8 host tier: pinned-lru
	// the runtime follows it: true
}
