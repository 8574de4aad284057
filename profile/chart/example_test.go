package chart_test

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"log"

	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/profile/chart"
)

// toyProfile records 3 tokens of a model with 2 MoE layers of 4 experts and
// a dense layer between them.
func toyProfile() *profile.Profile {
	model := profile.ModelID{Name: "toy", Arch: "qwen3moe", Layers: 3, Experts: 4, ExpertsUsed: 2}
	rec, err := profile.NewRecorder(model)
	if err != nil {
		log.Fatal(err)
	}
	for _, ids := range [][]int32{{0, 1}, {0, 2}, {0, 1}} {
		for _, layer := range []int{0, 2} {
			if err := rec.Record(layer, ids, nil); err != nil {
				log.Fatal(err)
			}
		}
	}
	return rec.Profile()
}

func ExampleHeatmap() {
	img, err := chart.Heatmap(toyProfile(), chart.WithScale(chart.Log), chart.SortBy(chart.ByPopularity))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("image", img.Bounds().Dx(), "×", img.Bounds().Dy(), "pixels")
	// Output:
	// image 741 × 314 pixels
}

func ExampleWriteCurves() {
	var buf bytes.Buffer
	if err := chart.WriteCurves(&buf, toyProfile()); err != nil {
		log.Fatal(err)
	}
	cfg, err := png.DecodeConfig(&buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("PNG", cfg.Width, "×", cfg.Height)
	// Output:
	// PNG 1044 × 560
}

func ExampleFormatOf() {
	for _, name := range []string{"heatmap.png", "heatmap.JPG", "heatmap.gif"} {
		f, err := chart.FormatOf(name)
		if errors.Is(err, chart.ErrFormat) {
			fmt.Println(name, "refused:", err)
			continue
		}
		fmt.Println(name, "is written as", f)
	}
	// Output:
	// heatmap.png is written as PNG
	// heatmap.JPG is written as JPEG
	// heatmap.gif refused: chart: unsupported image format: "heatmap.gif" (want .png, .jpg or .jpeg)
}

func ExampleHeatmap_empty() {
	rec, _ := profile.NewRecorder(profile.ModelID{Arch: "toy", Layers: 2, Experts: 4, ExpertsUsed: 1})
	_, err := chart.Heatmap(rec.Profile())
	fmt.Println(errors.Is(err, chart.ErrEmpty))
	// Output:
	// true
}
