package experts

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDontNeedLeavesResidentSet reads a whole model through the mapping,
// which maps its pages into the process, and checks that DontNeed takes them
// out of the resident set again, as /proc/self/smaps reports it for the
// mapping, without changing what the mapping reads.
func TestDontNeedLeavesResidentSet(t *testing.T) {
	f := openTest(t, "qwen35moe-small-q4_k_m")
	want := make([]byte, f.Size())
	_, err := f.ReadAt(want, 0)
	require.NoError(t, err)
	page := int64(os.Getpagesize())
	before := mappingRSS(t, f.Mapping())
	require.GreaterOrEqual(t, before, f.Size()/page*page, "the read mapped the pages")

	require.NoError(t, f.DontNeed(0, f.Size()))
	after := mappingRSS(t, f.Mapping())
	assert.LessOrEqual(t, after, page, "only the last, partial page may stay")

	got := make([]byte, f.Size())
	_, err = f.ReadAt(got, 0)
	require.NoError(t, err)
	assert.Equal(t, want, got, "the pages read back the same from the page cache")

	// A range that covers no whole page releases nothing.
	require.NoError(t, f.DontNeed(page/2, page))
	assert.Error(t, f.DontNeed(f.Size()-1, 2))
	assert.Error(t, f.DontNeed(-1, 1))
	require.NoError(t, f.Close())
	assert.ErrorIs(t, f.DontNeed(0, 1), ErrClosed)
}

// mappingRSS is the resident size of the mapping that starts at m, from
// /proc/self/smaps.
func mappingRSS(t *testing.T, m []byte) int64 {
	t.Helper()
	smaps, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer smaps.Close()
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(unsafe.SliceData(m))))
	in := false
	sc := bufio.NewScanner(smaps)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = strings.HasPrefix(line, start)
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			kb, err := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	require.NoError(t, sc.Err())
	t.Fatalf("no mapping at %s in /proc/self/smaps", start)
	return 0
}
