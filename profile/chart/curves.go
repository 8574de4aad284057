package chart

import (
	"fmt"
	"image"
	"io"
	"strconv"

	"github.com/rotary-moe/rotary/profile"
)

// Curves chart layout, in pixels.
const (
	cvPlotW        = 760
	cvPlotH        = 440
	cvMarginLeft   = 64
	cvMarginTop    = 64
	cvMarginBottom = 56
	cvLegendW      = 220
)

// Curves draws each layer's popularity curve: the share of the layer's routed
// selections covered by its n most selected experts, for n = 1..experts, one
// thin line per layer coloured by layer number (viridis, legend bar on the
// right), the mean over layers in black, and uniform routing (n/experts) as a
// dashed grey reference. The further a curve bows above the diagonal, the fewer
// experts a pinned hot set needs. A profile without any selection is ErrEmpty.
func Curves(p *profile.Profile, opts ...Option) (*image.RGBA, error) {
	_, faces, title, err := startChart(p, opts, "routing covered by the top n experts of each layer")
	if err != nil {
		return nil, err
	}
	plot := image.Rect(cvMarginLeft, cvMarginTop, cvMarginLeft+cvPlotW, cvMarginTop+cvPlotH)
	width := max(plot.Max.X+cvLegendW, textWidth(faces.title, title)+32)
	c, err := newCanvas(width, plot.Max.Y+cvMarginBottom)
	if err != nil {
		return nil, err
	}
	c.text(faces.title, 16, 22, alignLeft, title)
	c.text(faces.label, 16, 42, alignLeft, "y: share of the layer's routed selections that go to its n most selected experts")

	E, L := p.Model.Experts, p.Model.Layers
	// x maps n = 1..E (n = 0 at the origin), y maps a share in [0, 1].
	xOf := func(n float64) float64 { return float64(plot.Min.X) + n/float64(E)*float64(plot.Dx()) }
	yOf := func(v float64) float64 { return float64(plot.Max.Y) - v*float64(plot.Dy()) }

	// Grid, ticks and labels.
	for v := 0; v <= 100; v += 10 {
		y := int(yOf(float64(v) / 100))
		c.fill(image.Rect(plot.Min.X, y, plot.Max.X, y+1), colGrid)
		c.fill(image.Rect(plot.Min.X-4, y, plot.Min.X, y+1), colAxis)
		c.textMiddle(faces.label, plot.Min.X-7, y, alignRight, fmt.Sprintf("%d%%", v))
	}
	xstep := intStep(float64(plot.Dx())/float64(E), 40, E > 16)
	for n := 0; n <= E; n += xstep {
		x := int(xOf(float64(n)))
		c.fill(image.Rect(x, plot.Min.Y, x+1, plot.Max.Y), colGrid)
		c.fill(image.Rect(x, plot.Max.Y, x+1, plot.Max.Y+4), colAxis)
		c.text(faces.label, x, plot.Max.Y+18, alignCenter, strconv.Itoa(n))
	}
	c.fill(image.Rect(plot.Min.X, plot.Min.Y, plot.Min.X+1, plot.Max.Y+1), colAxis)
	c.fill(image.Rect(plot.Min.X, plot.Max.Y, plot.Max.X+1, plot.Max.Y+1), colAxis)
	c.text(faces.label, plot.Min.X+plot.Dx()/2, plot.Max.Y+40, alignCenter, "n: experts of the layer, most selected first")

	curve := func(cov []float64) []point {
		pts := []point{{xOf(0), yOf(0)}}
		for i, v := range cov {
			pts = append(pts, point{xOf(float64(i + 1)), yOf(v)})
		}
		return pts
	}
	c.polyline([]point{{xOf(0), yOf(0)}, {xOf(float64(E)), yOf(1)}}, 1.5, colUniform, 6)
	mean := make([]float64, E)
	layers := 0
	for l := range p.Layers {
		cov := p.Layers[l].Coverage()
		if cov == nil {
			continue
		}
		layers++
		for i, v := range cov {
			mean[i] += v
		}
		c.polyline(curve(cov), 1.2, colourAt(float64(l)/float64(max(L-1, 1))), 0)
	}
	if layers > 0 {
		for i := range mean {
			mean[i] /= float64(layers)
		}
		c.polyline(curve(mean), 2.5, colMeanLine, 0)
	}

	// Legend: line samples, then a layer colour bar.
	lx := plot.Max.X + 24
	ly := plot.Min.Y + 8
	c.polyline([]point{{float64(lx), float64(ly)}, {float64(lx + 28), float64(ly)}}, 2.5, colMeanLine, 0)
	c.textMiddle(faces.label, lx+36, ly, alignLeft, fmt.Sprintf("mean of %d layers", layers))
	ly += 22
	c.polyline([]point{{float64(lx), float64(ly)}, {float64(lx + 28), float64(ly)}}, 1.5, colUniform, 6)
	c.textMiddle(faces.label, lx+36, ly, alignLeft, "uniform routing")
	ly += 30
	c.text(faces.label, lx, ly, alignLeft, "layer")
	bar := image.Rect(lx, ly+10, lx+18, min(ly+10+240, plot.Max.Y))
	drawLayerBar(c, bar, L)
	return c.RGBA, nil
}

// drawLayerBar draws the layer colour legend: layer 0 at the top.
func drawLayerBar(c *canvas, bar image.Rectangle, layers int) {
	h := bar.Dy()
	for y := range h {
		t := (float64(y) + 0.5) / float64(h)
		c.fill(image.Rect(bar.Min.X, bar.Min.Y+y, bar.Max.X, bar.Min.Y+y+1), colourAt(t))
	}
	step := intStep(float64(h)/float64(max(layers-1, 1)), 18, false)
	for l := 0; l < layers; l += step {
		y := bar.Min.Y + int(float64(l)/float64(max(layers-1, 1))*float64(h-1))
		c.fill(image.Rect(bar.Max.X, y, bar.Max.X+4, y+1), colAxis)
		c.textMiddle(c.faces.label, bar.Max.X+7, y, alignLeft, strconv.Itoa(l))
	}
}

// WriteCurves draws the popularity curves (see Curves) and writes them as
// PNG, or in the format WithFormat gives.
func WriteCurves(w io.Writer, p *profile.Profile, opts ...Option) error {
	img, err := Curves(p, opts...)
	if err != nil {
		return err
	}
	return encode(w, img, opts, "curves")
}
