package bytesize

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{
		"0":         0,
		"1234":      1234,
		"512B":      512,
		"16GiB":     16 << 30,
		"16 gib":    16 << 30,
		"512MiB":    512 << 20,
		"20GB":      20e9,
		"1.5T":      3 << 39,
		"1.5 KB":    1500,
		" 2k ":      2048,
		"0.5MiB":    1 << 19,
		"8TiB":      8 << 40,
		"1e3":       -1, // exponents are not sizes
		"":          -1,
		"GiB":       -1,
		"-1GiB":     -1,
		"16 GiBs":   -1,
		"1.2.3 MB":  -1,
		"99999999T": -1,
	} {
		got, err := Parse(in)
		if want < 0 {
			assert.ErrorIs(t, err, ErrSyntax, "%q", in)
			continue
		}
		require.NoError(t, err, "%q", in)
		assert.Equal(t, want, got, "%q", in)
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{
		0:             "0 B",
		1023:          "1023 B",
		1024:          "1.00 KiB",
		1536:          "1.50 KiB",
		16 << 30:      "16.0 GiB",
		21166817152:   "19.7 GiB",
		512 << 20:     "512 MiB",
		-(3 << 20):    "-3.00 MiB",
		1<<62 + 1<<61: "6.00 EiB",
	} {
		assert.Equal(t, want, Format(n), "%d", n)
	}
}

func ExampleParse() {
	n, err := Parse("16GiB")
	fmt.Println(n, err, Format(n))
	// Output: 17179869184 <nil> 16.0 GiB
}
