package chart

import (
	"fmt"
	"image"
	"io"
	"math"
	"slices"

	"github.com/rotary-moe/rotary/profile"
)

// Order is the order of experts along a heatmap row.
type Order int

const (
	// ByID places expert e in column e: the same expert lines up across layers.
	ByID Order = iota
	// ByPopularity sorts each layer's experts by selections, most selected
	// first: column n is the layer's n-th most selected expert, which shows how
	// concentrated each layer's routing is.
	ByPopularity
)

func (o Order) String() string {
	if o == ByPopularity {
		return "popularity"
	}
	return "id"
}

// Scale maps values to colours.
type Scale int

const (
	// Linear maps 0 to the darkest colour and the largest value to the brightest.
	Linear Scale = iota
	// Log maps the logarithm of the value, from the smallest positive value (at
	// most three decades below the largest) to the largest; that smallest value
	// and everything below it, zeros included, take the darkest colour.
	Log
)

func (s Scale) String() string {
	if s == Log {
		return "log"
	}
	return "linear"
}

// A Option configures Heatmap and Curves.
type Option interface{ apply(*config) }

type config struct {
	order  Order
	scale  Scale
	title  string
	format Format
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// SortBy sets the order of experts in a heatmap row (default ByID).
func SortBy(o Order) Option { return optionFunc(func(c *config) { c.order = o }) }

// WithScale sets the heatmap colour scale (default Linear).
func WithScale(s Scale) Option { return optionFunc(func(c *config) { c.scale = s }) }

// WithTitle replaces the chart title (default: model name, token count, workload).
func WithTitle(title string) Option {
	return optionFunc(func(c *config) { c.title = title })
}

// options applies opts; a value no constant names is an error matching
// ErrInvalid, not silently the default.
func options(opts []Option) (config, error) {
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	switch {
	case c.order != ByID && c.order != ByPopularity:
		return c, fmt.Errorf("%w: SortBy(%d)", ErrInvalid, int(c.order))
	case c.scale != Linear && c.scale != Log:
		return c, fmt.Errorf("%w: WithScale(%d)", ErrInvalid, int(c.scale))
	case c.format != PNG && c.format != JPEG:
		return c, fmt.Errorf("%w: WithFormat(%d)", ErrInvalid, int(c.format))
	}
	return c, nil
}

// startChart does what every chart does first: check the profile (a
// malformed one is an error matching profile.ErrFormat, one without
// selections ErrEmpty), apply the options (ErrInvalid), load the fonts, and choose the
// title (by default the model, what the chart shows, the token count and the
// workload).
func startChart(p *profile.Profile, opts []Option, what string) (config, faces, string, error) {
	if err := p.Validate(); err != nil {
		return config{}, faces{}, "", err
	}
	if !hasSelections(p) {
		return config{}, faces{}, "", fmt.Errorf("%w: %s, %d tokens", ErrEmpty, p.Model, p.Tokens)
	}
	cfg, err := options(opts)
	if err != nil {
		return config{}, faces{}, "", err
	}
	f, err := loadFaces()
	if err != nil {
		return config{}, faces{}, "", err
	}
	title := cfg.title
	if title == "" {
		title = fmt.Sprintf("%s: %s, %d tokens", p.Model, what, p.Tokens)
		if p.Workload != "" {
			title += " (" + p.Workload + ")"
		}
	}
	return cfg, f, title, nil
}

// hasSelections reports whether any layer of p has a routed selection: a
// chart of none would be all grey.
func hasSelections(p *profile.Profile) bool {
	for l := range p.Layers {
		if p.Layers[l].Selections() > 0 {
			return true
		}
	}
	return false
}

// heatmapLayout is the geometry of a heatmap image.
type heatmapLayout struct {
	plot         image.Rectangle // the cell grid
	cellW, cellH int
	bar          image.Rectangle // the colour bar
	noData       image.Rectangle // the legend swatch of layers without selections
	width        int
	height       int
}

// Heatmap layout constants, in pixels.
const (
	hmMarginLeft   = 64  // layer tick labels and the "layer" label
	hmMarginTop    = 76  // title, subtitle and the "layer" label
	hmMarginBottom = 52  // expert tick labels and the axis label
	hmBarGap       = 24  // between the grid and the colour bar
	hmBarWidth     = 18  // colour bar
	hmBarLabels    = 70  // colour bar tick labels
	hmMinBarHeight = 160 // the colour bar needs room for its ticks
	hmTickGap      = 14  // the least distance between colour bar ticks
	hmSwatchGap    = 14  // between the colour bar and the no-data swatch
	hmSwatchHeight = 12
)

// layoutHeatmap places the parts of a heatmap of layers × experts whose title
// lines are textWidth wide and whose no-data legend label is legendWidth wide.
func layoutHeatmap(layers, experts, textWidth, legendWidth int) heatmapLayout {
	// Cells as wide as fit 1024 px (at least 2, at most 40 px) and as tall as fit
	// 560 px (at least 4, at most 40): 40×256 gives 4×14 px cells, 2×16 gives 40×40.
	cw := min(max(1024/experts, 2), 40)
	ch := min(max(560/layers, 4), 40)
	plot := image.Rect(hmMarginLeft, hmMarginTop, hmMarginLeft+cw*experts, hmMarginTop+ch*layers)
	barH := max(plot.Dy(), hmMinBarHeight)
	bar := image.Rect(plot.Max.X+hmBarGap, plot.Min.Y, plot.Max.X+hmBarGap+hmBarWidth, plot.Min.Y+barH)
	noData := image.Rect(bar.Min.X, bar.Max.Y+hmSwatchGap, bar.Max.X, bar.Max.Y+hmSwatchGap+hmSwatchHeight)
	width := max(bar.Max.X+hmBarLabels, textWidth+2*16, noData.Max.X+7+legendWidth+16)
	height := max(plot.Max.Y, noData.Max.Y) + hmMarginBottom
	return heatmapLayout{plot: plot, cellW: cw, cellH: ch, bar: bar, noData: noData, width: width, height: height}
}

// heatmapValues returns per layer the share of its selections each column
// holds, in the requested order (nil for a layer without selections), and the
// largest and smallest positive share.
func heatmapValues(p *profile.Profile, order Order) (rows [][]float64, maxV, minPos float64) {
	rows = make([][]float64, len(p.Layers))
	minPos = math.Inf(1)
	for l := range p.Layers {
		ls := &p.Layers[l]
		total := ls.Selections()
		if total == 0 {
			continue
		}
		ids := make([]int, len(ls.Counts))
		for i := range ids {
			ids[i] = i
		}
		if order == ByPopularity {
			ids = ls.Ranked()
		}
		row := make([]float64, len(ids))
		for col, e := range ids {
			v := float64(ls.Counts[e]) / float64(total)
			row[col] = v
			maxV = max(maxV, v)
			if v > 0 {
				minPos = min(minPos, v)
			}
		}
		rows[l] = row
	}
	return rows, maxV, minPos
}

// colourScale maps shares to [0, 1] for the colour map.
type colourScale struct {
	scale    Scale
	min, max float64 // the value range shown (min > 0 for Log)
}

func (s colourScale) norm(v float64) float64 {
	if s.max <= s.min {
		return 0
	}
	if s.scale == Log {
		if v <= s.min {
			return 0
		}
		return math.Log(v/s.min) / math.Log(s.max/s.min)
	}
	return (v - s.min) / (s.max - s.min)
}

// noDataLabel names the grey of layers without selections (dense layers, or
// a layer a filtered trace never reached) in the legend.
const noDataLabel = "dense layer"

// Heatmap draws the profile as a layers × experts grid of coloured cells, one
// row per layer (layer 0 at the top), coloured by the share of the layer's
// routed selections that went to the expert, with labelled axes, a colour bar
// and a title. Layers without selections (dense layers) are grey, with a
// legend entry. A profile without any selection is ErrEmpty.
func Heatmap(p *profile.Profile, opts ...Option) (*image.RGBA, error) {
	cfg, faces, title, err := startChart(p, opts, "expert selections per layer")
	if err != nil {
		return nil, err
	}
	rows, maxV, minPos := heatmapValues(p, cfg.order)
	cs := colourScale{scale: cfg.scale, max: maxV}
	scaleNote := "linear scale from 0"
	if cfg.scale == Log {
		cs.min = max(minPos, maxV/1000)
		scaleNote = fmt.Sprintf("log scale from %s, which zeros share", share(cs.min))
	}
	sub := fmt.Sprintf("colour: share of the layer's routed selections (%s); experts in %s order",
		scaleNote, map[Order]string{ByID: "id", ByPopularity: "per-layer popularity"}[cfg.order])
	L, E := p.Model.Layers, p.Model.Experts
	noData := slices.ContainsFunc(rows, func(r []float64) bool { return r == nil })
	legendW := 0
	if noData {
		legendW = textWidth(faces.label, noDataLabel)
	}
	lay := layoutHeatmap(L, E, max(textWidth(faces.title, title), textWidth(faces.label, sub)), legendW)
	c, err := newCanvas(lay.width, lay.height)
	if err != nil {
		return nil, err
	}
	c.text(faces.title, 16, 22, alignLeft, title)
	c.text(faces.label, 16, 42, alignLeft, sub)

	// Cells.
	for l, row := range rows {
		y := lay.plot.Min.Y + l*lay.cellH
		for e := range E {
			r := image.Rect(lay.plot.Min.X+e*lay.cellW, y, lay.plot.Min.X+(e+1)*lay.cellW, y+lay.cellH)
			if row == nil {
				c.fill(r, colNoData)
				continue
			}
			c.fill(r, colourAt(cs.norm(row[e])))
		}
	}
	// Thin separators between cells when they are large enough to keep them apart.
	if lay.cellW >= 12 && lay.cellH >= 12 {
		for e := 1; e < E; e++ {
			x := lay.plot.Min.X + e*lay.cellW
			c.fill(image.Rect(x, lay.plot.Min.Y, x+1, lay.plot.Max.Y), colWhite)
		}
		for l := 1; l < L; l++ {
			y := lay.plot.Min.Y + l*lay.cellH
			c.fill(image.Rect(lay.plot.Min.X, y, lay.plot.Max.X, y+1), colWhite)
		}
	}

	// Layer axis: ticks at layer centres, labels to the left, "layer" above.
	c.text(faces.label, lay.plot.Min.X-7, lay.plot.Min.Y-8, alignRight, "layer")
	ystep := intStep(float64(lay.cellH), 16, false)
	for l := 0; l < L; l += ystep {
		y := lay.plot.Min.Y + l*lay.cellH + lay.cellH/2
		c.fill(image.Rect(lay.plot.Min.X-4, y, lay.plot.Min.X, y+1), colAxis)
		c.textMiddle(faces.label, lay.plot.Min.X-7, y, alignRight, fmt.Sprint(l))
	}

	// Expert axis: ticks at column centres, labels below, axis name under them.
	xstep := intStep(float64(lay.cellW), 36, E > 16 && cfg.order == ByID)
	first := 0
	if cfg.order == ByPopularity {
		first = xstep - 1 // ranks are 1-based: label 1, step, 2·step, ...
		if xstep == 1 {
			first = 0
		}
	}
	label := func(col int) string {
		if cfg.order == ByPopularity {
			return fmt.Sprint(col + 1)
		}
		return fmt.Sprint(col)
	}
	for col := first; col < E; col += xstep {
		x := lay.plot.Min.X + col*lay.cellW + lay.cellW/2
		c.fill(image.Rect(x, lay.plot.Max.Y, x+1, lay.plot.Max.Y+4), colAxis)
		c.text(faces.label, x, lay.plot.Max.Y+18, alignCenter, label(col))
	}
	if cfg.order == ByPopularity && first != 0 {
		x := lay.plot.Min.X + lay.cellW/2
		c.fill(image.Rect(x, lay.plot.Max.Y, x+1, lay.plot.Max.Y+4), colAxis)
		c.text(faces.label, x, lay.plot.Max.Y+18, alignCenter, "1")
	}
	axis := "expert id"
	if cfg.order == ByPopularity {
		axis = "expert rank within the layer (1 = most selected)"
	}
	c.text(faces.label, lay.plot.Min.X+lay.plot.Dx()/2, lay.plot.Max.Y+40, alignCenter, axis)

	drawColourBar(c, lay.bar, cs)
	if noData {
		c.fill(lay.noData, colNoData)
		c.textMiddle(faces.label, lay.noData.Max.X+7, lay.noData.Min.Y+lay.noData.Dy()/2, alignLeft, noDataLabel)
	}
	return c.RGBA, nil
}

// drawColourBar draws the colour map bottom (low) to top (high) with tick
// labels (see barTicks).
func drawColourBar(c *canvas, bar image.Rectangle, cs colourScale) {
	h := bar.Dy()
	for y := range h {
		t := 1 - (float64(y)+0.5)/float64(h)
		c.fill(image.Rect(bar.Min.X, bar.Min.Y+y, bar.Max.X, bar.Min.Y+y+1), colourAt(t))
	}
	for _, t := range barTicks(cs, h) {
		y := bar.Max.Y - 1 - t.y
		c.fill(image.Rect(bar.Max.X, y, bar.Max.X+4, y+1), colAxis)
		c.textMiddle(c.faces.label, bar.Max.X+7, y, alignLeft, t.label)
	}
}

// A barTick is a labelled value on the colour bar, y pixels above its bottom.
type barTick struct {
	v     float64
	y     int
	label string
}

// barTicks returns the ticks of a colour bar h pixels tall, bottom to top.
// The linear scale has round shares from 0. The log scale has both ends of its
// range, which no round value need match, and between them the round values
// (1-2-5 per decade, finer when the range spans less than a decade) that are
// at least hmTickGap pixels from every other tick.
func barTicks(cs colourScale, h int) []barTick {
	yOf := func(v float64) int { return int(math.Round(cs.norm(v) * float64(h-1))) }
	if cs.max <= 0 {
		return []barTick{{0, 0, "0%"}}
	}
	var ticks []barTick
	if cs.scale != Log {
		step := niceStep(cs.max, 5)
		for v := 0.0; v <= cs.max*(1+1e-9); v += step {
			ticks = append(ticks, barTick{v, yOf(v), percent(v, step)})
		}
		return ticks
	}
	end := func(v float64) barTick { return barTick{v, yOf(v), share(v)} }
	ticks = []barTick{end(cs.min)}
	if cs.max > cs.min {
		ticks = append(ticks, end(cs.max))
	}
	mantissas := []float64{1, 2, 5}
	if cs.max/cs.min < 10 {
		mantissas = []float64{1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9}
	}
	free := func(y int) bool {
		for _, t := range ticks {
			if abs(t.y-y) < hmTickGap {
				return false
			}
		}
		return true
	}
	lo, hi := math.Floor(math.Log10(cs.min)), math.Ceil(math.Log10(cs.max))
	for d := lo; d <= hi; d++ {
		for _, m := range mantissas {
			v := m * math.Pow(10, d)
			if v <= cs.min || v >= cs.max || !free(yOf(v)) {
				continue
			}
			ticks = append(ticks, barTick{v, yOf(v), share(v)})
		}
	}
	slices.SortFunc(ticks, func(a, b barTick) int { return a.y - b.y })
	return ticks
}

func abs(n int) int { return max(n, -n) }

// WriteHeatmap draws the heatmap (see Heatmap) and writes it as PNG, or in
// the format WithFormat gives.
func WriteHeatmap(w io.Writer, p *profile.Profile, opts ...Option) error {
	img, err := Heatmap(p, opts...)
	if err != nil {
		return err
	}
	return encode(w, img, opts, "heatmap")
}
