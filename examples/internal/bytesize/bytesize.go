// Package bytesize parses and formats byte counts the way people write them
// on command lines: "16GiB", "512 MiB", "20GB", "1.5T".
package bytesize

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrSyntax means a string that is not a byte count.
var ErrSyntax = errors.New("bytesize: invalid size")

// Units by lower-case suffix. KB, MB, ... are decimal (SI) and KiB, MiB, ...
// binary; bare K, M, G, T are binary, as in GNU tools and Docker.
var units = map[string]float64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
}

// Parse reads a non-negative byte count: a number, optionally with a
// fraction, then optional spaces and a unit (B, KB, MB, GB, TB, KiB, MiB,
// GiB, TiB, K, M, G, T; any case). The result is rounded down to whole bytes.
func Parse(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	scale, ok := units[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("%w: %q (want e.g. 16GiB, 512MiB or 20GB)", ErrSyntax, s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrSyntax, s)
	}
	bytes := math.Floor(v * scale)
	if bytes >= math.MaxInt64 {
		return 0, fmt.Errorf("%w: %q is too large", ErrSyntax, s)
	}
	return int64(bytes), nil
}

// Format writes n in binary units with three significant digits at most
// ("512 B", "1.50 KiB", "19.7 GiB").
func Format(n int64) string {
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
