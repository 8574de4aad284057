package shared

import (
	"os"
	"path/filepath"
	"testing"
)

// TracePath returns a file or folder of the real routing traces (elem below
// Traces, read in place: never copied into the repository), or skips the
// test when they are not on this machine.
func TracePath(t testing.TB, elem ...string) string {
	t.Helper()
	dir := Traces()
	if dir == "" {
		t.Skip("real traces not present (set ROTARY_TRACES or ROTARY_SHARED)")
	}
	path := filepath.Join(append([]string{dir}, elem...)...)
	if _, err := os.Stat(path); err != nil {
		t.Skip("trace not present:", err)
	}
	return path
}
