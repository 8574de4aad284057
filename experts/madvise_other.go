//go:build !linux

package experts

// adviseWillNeed does nothing where this package does not use madvise.
func adviseWillNeed([]byte) error { return nil }

// adviseDontNeed does nothing where this package does not use madvise.
func adviseDontNeed([]byte) error { return nil }
