//go:build race

package sim

// raceEnabled says the race detector is on: the long trace replays, ten
// times slower under it, are skipped.
const raceEnabled = true
