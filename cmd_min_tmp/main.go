// Command min is the smallest importer of rotary: it opens a model and a runtime.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary"
)

func main() {
	m, err := experts.OpenModel(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer m.Close()
	dev, err := cuda.NewHost(cuda.WithCapacity(1 << 30))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer dev.Close()
	rt, err := rotary.Open(context.Background(), m, dev)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer rt.Close()
	fmt.Println(rt.Plan())
}
