//go:build !cgo || !linux

package cuda

import "fmt"

// loadDriver reports that a build without cgo (or off Linux) has no way to
// reach the CUDA driver.
func loadDriver() (driver, error) {
	return nil, fmt.Errorf("%w: built without cgo for linux", ErrNoDriver)
}
