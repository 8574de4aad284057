//go:build !cgo || !linux

package cuda

import "fmt"

// loadNVRTC reports that a build without cgo (or off Linux) has no way to
// reach NVRTC.
func loadNVRTC() (compiler, error) {
	return nil, fmt.Errorf("%w: built without cgo for linux", ErrNoNVRTC)
}
