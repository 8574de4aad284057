package progress

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// fakeClock advances by step on every reading.
type fakeClock struct {
	t    time.Time
	step time.Duration
}

func (c *fakeClock) now() time.Time { c.t = c.t.Add(c.step); return c.t }

func TestBarDraws(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Unix(0, 0), step: time.Second}
	b := newBar(&out, "writing", true, 80, clock.now)
	b.Update(1<<30, 4<<30)
	b.Update(4<<30, 4<<30)
	b.Finish()
	lines := strings.Split(out.String(), "\r")
	assert.Len(t, lines, 4) // nothing before the first \r, then three draws
	assert.Contains(t, lines[1], "writing [")
	assert.Contains(t, lines[1], " 25% 1.00 GiB/4.00 GiB")
	assert.Contains(t, lines[1], "ETA")
	assert.Contains(t, lines[2], "100% 4.00 GiB/4.00 GiB")
	assert.NotContains(t, lines[2], "ETA")
	assert.True(t, strings.HasSuffix(out.String(), "\n"))
	for _, l := range lines[1:] {
		assert.LessOrEqual(t, len(strings.TrimSuffix(l, "\n")), 79, "line wider than the terminal: %q", l)
	}
}

func TestBarThrottles(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Unix(0, 0), step: time.Millisecond}
	b := newBar(&out, "x", true, 60, clock.now)
	for i := range 50 {
		b.Update(int64(i), 100)
	}
	assert.Equal(t, 1, strings.Count(out.String(), "\r"), "redrawn more often than every %v", redrawEvery)
}

func TestBarSilentForShortWorkWhenNotATerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := New(f, "writing")
	b.Update(1, 2)
	b.Update(2, 2)
	b.Finish()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	assert.Zero(t, st.Size())
}

func TestBarWritesLinesWhenNotATerminal(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Unix(0, 0), step: 3 * time.Second}
	b := newBar(&out, "prefill", false, 0, clock.now, Count("tokens"))
	for i := range 10 { // 30 s of work, a reading every 3 s
		b.Update(int64(10*(i+1)), 100)
	}
	b.Finish()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	assert.Equal(t, []string{
		"prefill:  40% 40/100 tokens, 3.3/s ETA 18s",
		"prefill:  80% 80/100 tokens, 3.3/s ETA 6s",
		"prefill: 100 tokens in 33s",
	}, lines)
	assert.NotContains(t, out.String(), "\r", "no bar off a terminal")
}

func TestBarCounts(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Unix(0, 0), step: time.Second}
	b := newBar(&out, "simulating", true, 80, clock.now, Count("runs"))
	b.Update(3, 12)
	assert.Contains(t, out.String(), " 25% 3/12 runs")
}

func TestBarNarrowTerminal(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{t: time.Unix(0, 0), step: time.Second}
	b := newBar(&out, "writing a very long label", true, 40, clock.now)
	b.Update(1, 2)
	assert.NotContains(t, out.String(), "[", "no room for a bar")
	assert.Contains(t, out.String(), "50%")
}
