package interrupt_test

import (
	"context"
	"fmt"

	"github.com/rotary-moe/rotary/examples/internal/interrupt"
)

func ExampleContext() {
	ctx, stop := interrupt.Context(context.Background())
	defer stop()
	for step := range 3 {
		if ctx.Err() != nil { // a signal: stop after the step in hand
			break
		}
		fmt.Println("step", step)
	}
	fmt.Println("exit status", interrupt.ExitCode(ctx))
	// Output:
	// step 0
	// step 1
	// step 2
	// exit status 0
}
