//go:build unix

package cpu

import (
	"syscall"
	"time"
)

// ProcessCPUTime is the CPU time the process has used so far, all threads
// together, or 0 where it cannot be read. Divided into work done, it gives
// per-core throughput that stays meaningful on a machine shared with other
// work, where wall time measures the neighbours too.
func ProcessCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
