package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/rotary-moe/rotary/rotary"
)

// redrawEvery limits how often the bar is redrawn.
const redrawEvery = 100 * time.Millisecond

// lineEvery is how often progress is written as a line when the output is
// not a terminal; work shorter than that writes nothing.
const lineEvery = 10 * time.Second

// Bar shows the progress of one piece of work: a bar on a terminal,
// periodic lines elsewhere. Its methods are safe for concurrent use.
type Bar struct {
	mu       sync.Mutex
	out      io.Writer
	label    string
	unit     string // "" for bytes
	enabled  bool   // a terminal: draw the bar
	width    int
	now      func() time.Time
	start    time.Time
	lastDraw time.Time // or, not on a terminal, the last line
	lines    int       // lines written, not on a terminal
	done     int64
	total    int64
}

// An Option configures a Bar.
type Option func(*Bar)

// Count makes the bar count things named unit ("tokens") rather than bytes.
func Count(unit string) Option { return func(b *Bar) { b.unit = unit } }

// New returns a bar labelled label for w (usually os.Stderr): drawn if w is
// a terminal, otherwise written as a line every ten seconds.
func New(w io.Writer, label string, opts ...Option) *Bar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return newBar(w, label, false, 0, time.Now, opts...)
	}
	width := 80
	if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
		width = cols
	}
	return newBar(w, label, true, width, time.Now, opts...)
}

func newBar(out io.Writer, label string, enabled bool, width int, now func() time.Time, opts ...Option) *Bar {
	b := &Bar{out: out, label: label, enabled: enabled, width: width, now: now}
	for _, o := range opts {
		o(b)
	}
	b.start = now()
	b.lastDraw = b.start
	if enabled {
		b.lastDraw = time.Time{} // draw at the first update
	}
	return b
}

// Update records that done of total (bytes, or the Count unit) are done. On
// a terminal it redraws the bar if it was last drawn more than a tenth of a
// second ago or the work is complete; elsewhere it writes a line if the
// last was ten seconds ago. Its signature fits experts.WithProgress.
func (b *Bar) Update(done, total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done, b.total = done, total
	t := b.now()
	if !b.enabled {
		if t.Sub(b.lastDraw) >= lineEvery {
			b.lastDraw = t
			b.lines++
			fmt.Fprintf(b.out, "%s:%s\n", b.label, b.info(t))
		}
		return
	}
	if t.Sub(b.lastDraw) >= redrawEvery || done >= total {
		b.lastDraw = t
		b.draw(t)
	}
}

// Finish draws the final state and ends the line; not on a terminal, it
// says the work is done if it wrote progress lines.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.now()
	if !b.enabled {
		if b.lines > 0 {
			fmt.Fprintf(b.out, "%s: %s in %s\n", b.label, b.count(b.done), t.Sub(b.start).Round(time.Second))
		}
		return
	}
	b.draw(t)
	fmt.Fprintln(b.out)
}

// count formats n in the bar's unit.
func (b *Bar) count(n int64) string {
	if b.unit == "" {
		return rotary.FormatSize(n)
	}
	return fmt.Sprintf("%d %s", n, b.unit)
}

// info is the percentage, the counts, the rate and the time left.
func (b *Bar) info(t time.Time) string {
	elapsed := t.Sub(b.start).Seconds()
	var rate float64
	if elapsed > 0 {
		rate = float64(b.done) / elapsed
	}
	info := fmt.Sprintf(" %3.0f%%", 100*b.fraction())
	if b.unit == "" {
		info += fmt.Sprintf(" %s/%s %s/s", rotary.FormatSize(b.done), rotary.FormatSize(b.total), rotary.FormatSize(int64(rate)))
	} else {
		info += fmt.Sprintf(" %d/%d %s, %.1f/s", b.done, b.total, b.unit, rate)
	}
	if rate > 0 && b.done < b.total {
		left := time.Duration(float64(b.total-b.done) / rate * float64(time.Second))
		info += " ETA " + left.Round(time.Second).String()
	}
	return info
}

func (b *Bar) fraction() float64 {
	if b.total <= 0 {
		return 0
	}
	return min(max(float64(b.done)/float64(b.total), 0), 1)
}

// draw writes the whole line: label, bar, percentage, counts, rate and the
// time left, the bar taking the width that remains.
func (b *Bar) draw(t time.Time) {
	info, frac := b.info(t), b.fraction()
	barWidth := b.width - 1 - len(b.label) - len(info) - 3
	line := b.label + info
	if barWidth >= 10 {
		filled := int(frac * float64(barWidth))
		line = b.label + " [" + strings.Repeat("=", filled) + strings.Repeat(" ", barWidth-filled) + "]" + info
	}
	// Pad to the width so that a shorter line covers the previous one.
	fmt.Fprintf(b.out, "\r%-*s", b.width-1, line)
}
