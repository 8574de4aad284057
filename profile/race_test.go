//go:build race

package profile

// raceEnabled reports a -race build, which makes the real-trace replay ten times slower.
const raceEnabled = true
