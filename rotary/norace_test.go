//go:build !race

package rotary

const raceEnabled = false
