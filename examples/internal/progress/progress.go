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

// Bar is a byte-count progress bar. Its methods are safe for concurrent use.
type Bar struct {
	mu       sync.Mutex
	out      io.Writer
	label    string
	enabled  bool
	width    int
	now      func() time.Time
	start    time.Time
	lastDraw time.Time
	done     int64
	total    int64
}

// New returns a bar labelled label that draws on w (usually os.Stderr) if w
// is a terminal, and does nothing otherwise.
func New(w io.Writer, label string) *Bar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return newBar(w, label, false, 0, time.Now)
	}
	width := 80
	if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
		width = cols
	}
	return newBar(w, label, true, width, time.Now)
}

func newBar(out io.Writer, label string, enabled bool, width int, now func() time.Time) *Bar {
	return &Bar{out: out, label: label, enabled: enabled, width: width, now: now, start: now()}
}

// Update records that done of total bytes are done and redraws the bar if
// it was last drawn more than a tenth of a second ago or the work is
// complete. Its signature fits experts.WithProgress.
func (b *Bar) Update(done, total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done, b.total = done, total
	if !b.enabled {
		return
	}
	if t := b.now(); t.Sub(b.lastDraw) >= redrawEvery || done >= total {
		b.lastDraw = t
		b.draw()
	}
}

// Finish draws the final state and ends the line.
func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.enabled {
		return
	}
	b.draw()
	fmt.Fprintln(b.out)
}

// draw writes the whole line: label, bar, percentage, counts, rate and the
// time left, the bar taking the width that remains.
func (b *Bar) draw() {
	elapsed := b.now().Sub(b.start).Seconds()
	var rate float64
	if elapsed > 0 {
		rate = float64(b.done) / elapsed
	}
	frac := 0.0
	if b.total > 0 {
		frac = min(max(float64(b.done)/float64(b.total), 0), 1)
	}
	info := fmt.Sprintf(" %3.0f%% %s/%s %s/s", 100*frac, rotary.FormatSize(b.done), rotary.FormatSize(b.total), rotary.FormatSize(int64(rate)))
	if rate > 0 && b.done < b.total {
		left := time.Duration(float64(b.total-b.done) / rate * float64(time.Second))
		info += " ETA " + left.Round(time.Second).String()
	}
	barWidth := b.width - 1 - len(b.label) - len(info) - 3
	line := b.label + info
	if barWidth >= 10 {
		filled := int(frac * float64(barWidth))
		line = b.label + " [" + strings.Repeat("=", filled) + strings.Repeat(" ", barWidth-filled) + "]" + info
	}
	// Pad to the width so that a shorter line covers the previous one.
	fmt.Fprintf(b.out, "\r%-*s", b.width-1, line)
}
