package experts

import (
	"fmt"
	"syscall"
)

// adviseWillNeed starts read-ahead of b, which begins on a page boundary of
// a mapping.
func adviseWillNeed(b []byte) error {
	if err := syscall.Madvise(b, syscall.MADV_WILLNEED); err != nil {
		return fmt.Errorf("experts: madvise: %w", err)
	}
	return nil
}

// adviseDontNeed drops b, whole pages of a read-only file mapping, from the
// process's resident set; the page cache keeps them.
func adviseDontNeed(b []byte) error {
	if err := syscall.Madvise(b, syscall.MADV_DONTNEED); err != nil {
		return fmt.Errorf("experts: madvise: %w", err)
	}
	return nil
}
