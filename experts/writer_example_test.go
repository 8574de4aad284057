package experts_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"path/filepath"

	"github.com/rotary-moe/rotary/experts"
)

func ExampleWriter() {
	dir, err := os.MkdirTemp("", "writer-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tiny.gguf")

	w, err := experts.NewWriter()
	if err != nil {
		log.Fatal(err)
	}
	if err := w.SetKV("general.architecture", "example"); err != nil {
		log.Fatal(err)
	}
	if err := w.SetKV("example.sections", []int32{11, 11, 10, 0}); err != nil {
		log.Fatal(err)
	}
	// A 2×3 F32 matrix, written row by row when the file is written.
	err = w.AddTensor("matrix.weight", experts.TypeF32, []uint64{3, 2}, func(dst io.Writer) error {
		for i := range 6 {
			if err := binary.Write(dst, binary.LittleEndian, float32(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := w.WriteFile(context.Background(), path); err != nil {
		log.Fatal(err)
	}

	f, err := experts.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	sections, _ := f.Ints("example.sections")
	t, _ := f.Tensor("matrix.weight")
	data, _ := f.TensorData(t)
	last := math.Float32frombits(binary.LittleEndian.Uint32(data[20:]))
	fmt.Println(f.Size() == w.Size(), sections, t.Type, t.Dims, last)
	// Output: true [11 11 10 0] F32 [3 2] 5
}
