package atomicfile_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/rotary-moe/rotary/internal/atomicfile"
)

func ExampleWrite() {
	dir, err := os.MkdirTemp("", "atomicfile")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "hello.csv")
	if err := atomicfile.Write(path, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, "layer,expert,count")
		return err
	}); err != nil {
		panic(err)
	}
	b, _ := os.ReadFile(path)
	fmt.Print(string(b))
	// Output: layer,expert,count
}
