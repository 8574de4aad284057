package outfile_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rotary-moe/rotary/examples/internal/outfile"
)

func ExampleCheck() {
	dir, err := os.MkdirTemp("", "outfile")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	model := filepath.Join(dir, "m.gguf")
	if err := os.WriteFile(model, []byte("GGUF"), 0o644); err != nil {
		panic(err)
	}
	err = outfile.Check([]outfile.Output{
		{Flag: "-heatmap", Path: filepath.Join(dir, "h.png")},
		{Flag: "-trace", Path: model},
	}, model)
	fmt.Println(errors.Is(err, outfile.ErrIsInput))
	// Output: true
}
