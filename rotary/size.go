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
	"p": 1 << 50, "pib": 1 << 50, "pb": 1e15,
	"e": 1 << 60, "eib": 1 << 60, "eb": 1e18,
}

// ParseSize reads a byte size such as "16GiB", "1.5 GB", "512M" or "4096".
// KiB/MiB/GiB/TiB and bare K/M/G/T are powers of 1024, KB/MB/GB/TB powers of
// 1000 (likewise P and E); case does not matter. A size in a unit is rounded
// down to whole bytes; a size in bytes must be a whole number ("1.5" is an
// error, not 1). Sizes of 8 EiB and more are too large.
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
	if mul == 1 && v != math.Trunc(v) {
		return 0, fmt.Errorf("%w: %q: a count of bytes is a whole number (add a unit: 1.5KiB)", ErrSize, s)
	}
	bytes := v * mul
	if bytes >= math.MaxInt64 {
		return 0, fmt.Errorf("%w: %q is too large (the most is 8 EiB less a byte)", ErrSize, s)
	}
	return int64(bytes), nil
}

// FormatSize writes a byte count in binary units with three significant
// digits at most ("512 B", "1.50 KiB", "19.7 GiB").
func FormatSize(n int64) string {
	const names = "KMGTPE"
	if n < 1024 && n > -1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	v := float64(n)
	i := -1
	for math.Abs(v) >= 1024 && i < len(names)-1 {
		v /= 1024
		i++
	}
	switch {
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f %ciB", v, names[i])
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f %ciB", v, names[i])
	}
	return fmt.Sprintf("%.2f %ciB", v, names[i])
}

// formatSizeUp is FormatSize rounded up in its last digit, for a least size:
// a budget of the size it prints is enough.
func formatSizeUp(n int64) string {
	s := FormatSize(n)
	if v, err := ParseSize(strings.ReplaceAll(s, " ", "")); err == nil && v >= n {
		return s
	}
	for step := int64(1); ; step *= 2 { // the next printed value above n
		if t := FormatSize(n + step); t != s {
			if v, err := ParseSize(strings.ReplaceAll(t, " ", "")); err == nil && v >= n {
				return t
			}
		}
	}
}
