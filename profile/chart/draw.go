package chart

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"strconv"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"
)

// Chart colours besides the colour map.
var (
	colWhite    = color.RGBA{255, 255, 255, 255}
	colText     = color.RGBA{30, 30, 30, 255}
	colAxis     = color.RGBA{90, 90, 90, 255}
	colGrid     = color.RGBA{225, 225, 225, 255}
	colNoData   = color.RGBA{200, 200, 200, 255}
	colUniform  = color.RGBA{150, 150, 150, 255}
	colMeanLine = color.RGBA{0, 0, 0, 255}
)

// faces holds the chart fonts: Go Regular for labels, Go Bold for titles.
type faces struct {
	label, title font.Face
}

// loadFaces parses the embedded Go fonts once.
var loadFaces = sync.OnceValues(func() (faces, error) {
	face := func(ttf []byte, size float64) (font.Face, error) {
		f, err := opentype.Parse(ttf)
		if err != nil {
			return nil, fmt.Errorf("chart: font: %w", err)
		}
		return opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	}
	label, err := face(goregular.TTF, 13)
	if err != nil {
		return faces{}, err
	}
	title, err := face(gobold.TTF, 16)
	if err != nil {
		return faces{}, err
	}
	return faces{label: label, title: title}, nil
})

// canvas is an RGBA image with the few drawing primitives the charts need.
type canvas struct {
	*image.RGBA
	faces faces
}

func newCanvas(w, h int) (*canvas, error) {
	f, err := loadFaces()
	if err != nil {
		return nil, err
	}
	c := &canvas{RGBA: image.NewRGBA(image.Rect(0, 0, w, h)), faces: f}
	draw.Draw(c.RGBA, c.Bounds(), image.NewUniform(colWhite), image.Point{}, draw.Src)
	return c, nil
}

func (c *canvas) fill(r image.Rectangle, col color.Color) {
	draw.Draw(c.RGBA, r, image.NewUniform(col), image.Point{}, draw.Src)
}

// Text alignment relative to the anchor point.
type align int

const (
	alignLeft align = iota
	alignCenter
	alignRight
)

// textWidth returns the advance of s in face f, in pixels.
func textWidth(f font.Face, s string) int {
	return font.MeasureString(f, s).Ceil()
}

// text draws s with its baseline at y, aligned at x.
func (c *canvas) text(f font.Face, x, y int, a align, s string) {
	switch a {
	case alignCenter:
		x -= textWidth(f, s) / 2
	case alignRight:
		x -= textWidth(f, s)
	}
	d := font.Drawer{Dst: c.RGBA, Src: image.NewUniform(colText), Face: f, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// textMiddle draws s vertically centred on y.
func (c *canvas) textMiddle(f font.Face, x, y int, a align, s string) {
	m := f.Metrics()
	c.text(f, x, y+(m.Ascent.Ceil()-m.Descent.Ceil())/2, a, s)
}

// point is a position in pixels.
type point struct{ x, y float64 }

// polyline strokes pts with an anti-aliased line of the given width; with
// dash > 0 it draws dashes of that length with equal gaps.
func (c *canvas) polyline(pts []point, width float64, col color.Color, dash float64) {
	if len(pts) < 2 {
		return
	}
	// Rasterise only the bounding box of the line, not the whole canvas.
	lo, hi := pts[0], pts[0]
	for _, p := range pts {
		lo = point{min(lo.x, p.x), min(lo.y, p.y)}
		hi = point{max(hi.x, p.x), max(hi.y, p.y)}
	}
	box := image.Rect(int(lo.x-width)-1, int(lo.y-width)-1, int(hi.x+width)+2, int(hi.y+width)+2).Intersect(c.Bounds())
	if box.Empty() {
		return
	}
	r := vector.NewRasterizer(box.Dx(), box.Dy())
	off := point{float64(box.Min.X), float64(box.Min.Y)}
	seg := func(a, z point) { quad(r, point{a.x - off.x, a.y - off.y}, point{z.x - off.x, z.y - off.y}, width) }
	on, left := true, dash
	for i := 1; i < len(pts); i++ {
		a, z := pts[i-1], pts[i]
		if dash <= 0 {
			seg(a, z)
			continue
		}
		length := math.Hypot(z.x-a.x, z.y-a.y)
		for pos := 0.0; pos < length; {
			step := min(left, length-pos)
			if on {
				f0, f1 := pos/length, (pos+step)/length
				seg(point{a.x + (z.x-a.x)*f0, a.y + (z.y-a.y)*f0}, point{a.x + (z.x-a.x)*f1, a.y + (z.y-a.y)*f1})
			}
			pos += step
			if left -= step; left <= 0 {
				on, left = !on, dash
			}
		}
	}
	r.Draw(c.RGBA, box, image.NewUniform(col), image.Point{})
}

// quad adds the rectangle of the segment a–z, width wide, extended by half the
// width at both ends so consecutive segments join without gaps.
func quad(r *vector.Rasterizer, a, z point, width float64) {
	dx, dy := z.x-a.x, z.y-a.y
	n := math.Hypot(dx, dy)
	if n == 0 {
		return
	}
	ux, uy := dx/n*width/2, dy/n*width/2 // along the segment
	px, py := -uy, ux                    // across it
	a = point{a.x - ux, a.y - uy}
	z = point{z.x + ux, z.y + uy}
	r.MoveTo(float32(a.x+px), float32(a.y+py))
	r.LineTo(float32(z.x+px), float32(z.y+py))
	r.LineTo(float32(z.x-px), float32(z.y-py))
	r.LineTo(float32(a.x-px), float32(a.y-py))
	r.ClosePath()
}

// colourAt maps t in [0, 1] to the viridis colour map.
func colourAt(t float64) color.RGBA {
	if !(t > 0) { // also NaN
		t = 0
	}
	i := min(int(t*255+0.5), 255)
	v := viridis[i]
	return color.RGBA{v[0], v[1], v[2], 255}
}

// niceStep returns a step of the form {1, 2, 5}·10^k so that span/step gives
// about want intervals.
func niceStep(span float64, want int) float64 {
	if span <= 0 || want <= 0 {
		return 1
	}
	raw := span / float64(want)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// intStep returns the smallest integer step from 1, 2, 5, 10, 20, 50, ... (or
// powers of two when pow2) whose spacing in pixels is at least minPx.
func intStep(pxPerUnit float64, minPx float64, pow2 bool) int {
	for s := 1; ; {
		if float64(s)*pxPerUnit >= minPx {
			return s
		}
		if pow2 {
			s *= 2
			continue
		}
		switch d := s / pow10(s); d {
		case 1:
			s *= 2
		case 2:
			s = s / 2 * 5
		default:
			s *= 2
		}
	}
}

// pow10 returns the largest power of ten <= n (n >= 1).
func pow10(n int) int {
	p := 1
	for p*10 <= n {
		p *= 10
	}
	return p
}

// percent formats a share in [0, 1] as a percentage with enough digits for step.
func percent(v, step float64) string {
	digits := 0
	for s := step * 100; s < 1 && digits < 4; s *= 10 {
		digits++
	}
	return fmt.Sprintf("%.*f%%", digits, v*100)
}

// share formats a share in [0, 1] as a percentage of two significant digits
// (whole percents from 10%): the ends of a log scale are no round numbers.
func share(v float64) string {
	if x := v * 100; x < 10 {
		return strconv.FormatFloat(x, 'g', 2, 64) + "%"
	}
	return fmt.Sprintf("%.0f%%", v*100)
}
