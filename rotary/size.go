package rotary

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits maps a unit suffix (lower case) to its bytes. Bare K, M, G, T
// are binary, as in most command-line tools (-vram 16G means 16 GiB).
var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// ParseSize reads a byte size such as "16GiB", "1.5 GB", "512M" or "4096".
// KiB/MiB/GiB/TiB and bare K/M/G/T are powers of 1024, KB/MB/GB/TB powers of
// 1000; case does not matter. The result is rounded down to whole bytes.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mul, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("%w: %q (want a number and a unit such as 16GiB, 1.5GB, 512M)", ErrSize, s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: %v", ErrSize, s, err)
	}
	bytes := v * mul
	if bytes >= math.MaxInt64 {
		return 0, fmt.Errorf("%w: %q is too large", ErrSize, s)
	}
	return int64(bytes), nil
}

// FormatSize writes a byte count with a binary unit, e.g. "1.50 GiB".
func FormatSize(n int64) string {
	neg := ""
	if n < 0 {
		neg, n = "-", -n
	}
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	if n < 1<<10 {
		return fmt.Sprintf("%s%d B", neg, n)
	}
	v, u := float64(n)/(1<<10), units[0]
	for _, next := range units[1:] {
		if v < 1<<10 {
			break
		}
		v, u = v/(1<<10), next
	}
	return fmt.Sprintf("%s%.2f %s", neg, v, u)
}
