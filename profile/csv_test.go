package profile

import (
	"bytes"
	"encoding/csv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// csvProfile has 3 layers × 4 experts: layer 0 shares 0, 1/4, 3/4, 0; layer
// 1 is uniform; layer 2 has no selections.
func csvProfile() *Profile {
	p := newProfile(ModelID{Name: "chart", Arch: "test", Layers: 3, Experts: 4, ExpertsUsed: 2}, false)
	p.Layers[0].Counts = []uint64{0, 1, 3, 0}
	p.Layers[0].Tokens = 2
	p.Layers[1].Counts = []uint64{2, 2, 2, 2}
	p.Layers[1].Tokens = 4
	p.Tokens = 4
	return p
}

func TestWriteCSV(t *testing.T) {
	p := csvProfile()
	p.Layers[0].Mass[2] = 1.5
	var buf bytes.Buffer
	require.NoError(t, WriteCSV(&buf, p))
	rows, err := csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 1+3*4)
	assert.Equal(t, []string{"layer", "expert", "rank", "count", "share", "coverage", "weight_mass"}, rows[0])
	assert.Equal(t, []string{"0", "2", "1", "3", "0.75", "0.75", "1.5"}, rows[3])
	assert.Equal(t, []string{"0", "1", "2", "1", "0.25", "1", "0"}, rows[2])
	assert.Equal(t, []string{"2", "0", "1", "0", "", "", "0"}, rows[9])
}

func TestWriteCSVRejectsBadProfile(t *testing.T) {
	p := csvProfile()
	p.Layers = p.Layers[:1]
	assert.ErrorIs(t, WriteCSV(&bytes.Buffer{}, p), ErrFormat)
}
