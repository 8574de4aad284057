package chart

import (
	"bytes"
	"image"
	"image/color"
	_ "image/jpeg" // TestFormats decodes JPEG
	"image/png"
	"io"
	"testing"

	"github.com/rotary-moe/rotary/profile"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chartProfile has 3 layers × 4 experts: layer 0 shares 0, 1/4, 3/4, 0; layer
// 1 is uniform; layer 2 has no selections.
func chartProfile() *profile.Profile {
	p := emptyProfile(profile.ModelID{Name: "chart", Arch: "test", Layers: 3, Experts: 4, ExpertsUsed: 2})
	p.Layers[0].Counts = []uint64{0, 1, 3, 0}
	p.Layers[0].Tokens = 2
	p.Layers[1].Counts = []uint64{2, 2, 2, 2}
	p.Layers[1].Tokens = 4
	p.Tokens = 4
	return p
}

// emptyProfile returns a profile of m without selections.
func emptyProfile(m profile.ModelID) *profile.Profile {
	rec, err := profile.NewRecorder(m)
	if err != nil {
		panic(err)
	}
	return rec.Profile()
}

// cellColour decodes a PNG heatmap and returns the colour at the centre of
// the cell of layer l, column col.
func cellColour(t *testing.T, img image.Image, p *profile.Profile, l, col int) color.RGBA {
	t.Helper()
	lay := layoutHeatmap(p.Model.Layers, p.Model.Experts, 0, 0)
	x := lay.plot.Min.X + col*lay.cellW + lay.cellW/2
	y := lay.plot.Min.Y + l*lay.cellH + lay.cellH/2
	return color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
}

func renderPNG(t *testing.T, p *profile.Profile, opts ...Option) image.Image {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, WriteHeatmap(&buf, p, opts...))
	img, err := png.Decode(&buf)
	require.NoError(t, err)
	return img
}

func TestHeatmapCellColours(t *testing.T) {
	p := chartProfile()
	lowest, highest := colourAt(0), colourAt(1)
	assert.Equal(t, color.RGBA{68, 1, 84, 255}, lowest, "viridis starts dark purple")
	assert.Equal(t, color.RGBA{253, 231, 37, 255}, highest, "and ends yellow")

	img := renderPNG(t, p) // linear, by id: 0 → darkest, 3/4 (the maximum) → brightest
	assert.Equal(t, lowest, cellColour(t, img, p, 0, 0))
	assert.Equal(t, colourAt(1.0/3), cellColour(t, img, p, 0, 1))
	assert.Equal(t, highest, cellColour(t, img, p, 0, 2))
	assert.Equal(t, colourAt(1.0/3), cellColour(t, img, p, 1, 3), "uniform layer: 1/4 of 3/4")
	assert.Equal(t, colNoData, cellColour(t, img, p, 2, 0), "layer without selections is grey")

	img = renderPNG(t, p, SortBy(ByPopularity))
	assert.Equal(t, highest, cellColour(t, img, p, 0, 0), "most selected expert first")
	assert.Equal(t, colourAt(1.0/3), cellColour(t, img, p, 0, 1))
	assert.Equal(t, lowest, cellColour(t, img, p, 0, 3))

	img = renderPNG(t, p, WithScale(Log)) // log from 1/4 to 3/4
	assert.Equal(t, lowest, cellColour(t, img, p, 0, 1))
	assert.Equal(t, highest, cellColour(t, img, p, 0, 2))
	assert.Equal(t, lowest, cellColour(t, img, p, 0, 0), "zero takes the darkest colour")
}

func TestHeatmapSizes(t *testing.T) {
	for _, c := range []struct {
		layers, experts int
		cellW, cellH    int
	}{{40, 256, 4, 14}, {2, 16, 40, 40}, {27, 64, 16, 20}, {48, 128, 8, 11}} {
		p := emptyProfile(profile.ModelID{Arch: "test", Layers: c.layers, Experts: c.experts, ExpertsUsed: 1})
		p.Layers[0].Counts[0] = 1
		img, err := Heatmap(p)
		require.NoError(t, err)
		lay := layoutHeatmap(c.layers, c.experts, 0, 0)
		assert.Equal(t, c.cellW, lay.cellW, "%d×%d", c.layers, c.experts)
		assert.Equal(t, c.cellH, lay.cellH, "%d×%d", c.layers, c.experts)
		assert.True(t, lay.bar.Max.X <= img.Bounds().Dx() && lay.plot.Max.Y < img.Bounds().Dy())
		assert.LessOrEqual(t, img.Bounds().Dx(), 1300, "fits a screen")
	}
}

func TestCurves(t *testing.T) {
	p := chartProfile()
	var buf bytes.Buffer
	require.NoError(t, WriteCurves(&buf, p))
	img, err := png.Decode(&buf)
	require.NoError(t, err)
	// Every curve ends at 100% for n = experts: the top right corner of the
	// plot is covered by the black mean curve.
	darkest := 3 * 255
	for dx := 1; dx <= 4; dx++ {
		for dy := 0; dy <= 2; dy++ {
			c := color.RGBAModel.Convert(img.At(cvMarginLeft+cvPlotW-dx, cvMarginTop+dy)).(color.RGBA)
			darkest = min(darkest, int(c.R)+int(c.G)+int(c.B))
		}
	}
	assert.Less(t, darkest, 3*40, "black mean curve at (n=E, 100%)")
	// The plot area is mostly white background at the bottom right (below the
	// diagonal, where no curve of a profile goes).
	c := color.RGBAModel.Convert(img.At(cvMarginLeft+cvPlotW-20, cvMarginTop+cvPlotH-20)).(color.RGBA)
	assert.Equal(t, colWhite, c)
}

func TestChartsRejectBadProfile(t *testing.T) {
	p := chartProfile()
	p.Layers = p.Layers[:1]
	_, err := Heatmap(p)
	assert.ErrorIs(t, err, profile.ErrFormat)
	_, err = Curves(p)
	assert.ErrorIs(t, err, profile.ErrFormat)
}

func TestLogColourBarTicks(t *testing.T) {
	for _, c := range []struct {
		min, max float64
		h        int
		want     []string
	}{
		// Less than a decade: both ends and the round values between them
		// that do not crowd the ends.
		{0.25, 0.75, 160, []string{"25%", "30%", "40%", "50%", "60%", "75%"}},
		// Three decades: the ends and 1-2-5 steps.
		{0.001, 1, 160, []string{"0.1%", "0.2%", "0.5%", "1%", "2%", "5%", "10%", "20%", "50%", "100%"}},
		{0.00039, 0.39, 560, []string{"0.039%", "0.05%", "0.1%", "0.2%", "0.5%", "1%", "2%", "5%", "10%", "20%", "39%"}},
	} {
		ticks := barTicks(colourScale{scale: Log, min: c.min, max: c.max}, c.h)
		var labels []string
		for i, tk := range ticks {
			labels = append(labels, tk.label)
			if i > 0 {
				assert.GreaterOrEqual(t, tk.y-ticks[i-1].y, hmTickGap, "ticks %v apart", labels)
			}
		}
		assert.Equal(t, c.want, labels)
		assert.Equal(t, 0, ticks[0].y, "the smallest value shown is at the bottom")
		assert.Equal(t, c.h-1, ticks[len(ticks)-1].y, "the largest at the top")
	}
}

func TestHeatmapNoDataLegend(t *testing.T) {
	p := chartProfile() // layer 2 has no selections
	img, err := Heatmap(p)
	require.NoError(t, err)
	lay := layoutHeatmap(p.Model.Layers, p.Model.Experts, 0, 0)
	mid := image.Pt(lay.noData.Min.X+lay.noData.Dx()/2, lay.noData.Min.Y+lay.noData.Dy()/2)
	assert.Equal(t, colNoData, img.RGBAAt(mid.X, mid.Y), "grey swatch in the legend")

	p.Layers[2].Counts = []uint64{1, 1, 1, 1}
	img, err = Heatmap(p)
	require.NoError(t, err)
	assert.Equal(t, colWhite, img.RGBAAt(mid.X, mid.Y), "no swatch when every layer has data")
}

func TestChartsRejectEmptyProfile(t *testing.T) {
	p := emptyProfile(profile.ModelID{Arch: "test", Layers: 2, Experts: 4, ExpertsUsed: 1})
	_, err := Heatmap(p)
	assert.ErrorIs(t, err, ErrEmpty)
	_, err = Curves(p)
	assert.ErrorIs(t, err, ErrEmpty)
	assert.ErrorIs(t, WriteHeatmap(&bytes.Buffer{}, p), ErrEmpty)
}

func TestFormats(t *testing.T) {
	for name, want := range map[string]Format{"a.png": PNG, "b.PNG": PNG, "c.jpg": JPEG, "d/e.JPEG": JPEG} {
		f, err := FormatOf(name)
		require.NoError(t, err, name)
		assert.Equal(t, want, f, name)
	}
	for _, name := range []string{"x.gif", "x", "x.png.gz"} {
		_, err := FormatOf(name)
		assert.ErrorIs(t, err, ErrFormat, name)
	}

	var buf bytes.Buffer
	require.NoError(t, WriteCurves(&buf, chartProfile(), WithFormat(JPEG)))
	_, kind, err := image.Decode(&buf)
	require.NoError(t, err)
	assert.Equal(t, "jpeg", kind)
}

// TestInvalidOptions: a value no constant names is an error, not the
// default.
func TestInvalidOptions(t *testing.T) {
	for _, o := range []Option{SortBy(Order(7)), WithScale(Scale(-1)), WithFormat(Format(3))} {
		assert.ErrorIs(t, WriteHeatmap(io.Discard, chartProfile(), o), ErrInvalid)
		assert.ErrorIs(t, WriteCurves(io.Discard, chartProfile(), o), ErrInvalid)
	}
}
