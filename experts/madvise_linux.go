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
