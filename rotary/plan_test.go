package rotary

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"16GiB": 16 << 30, "16G": 16 << 30, "16 gib": 16 << 30, "16GB": 16e9, "1.5GiB": 3 << 29,
		"512M": 512 << 20, "512MB": 512e6, "64KiB": 64 << 10, "4096": 4096, "4096B": 4096, "1TiB": 1 << 40, " 2g ": 2 << 30,
		"1PiB": 1 << 50, "7EiB": 7 << 60, "1.0": 1, "2.0B": 2,
	} {
		got, err := ParseSize(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "GiB", "16 GiBs", "-1G", "1.2.3G", "16X", "1e30TB", "1e3", "99999999T", "1.5", "0.5B"} {
		_, err := ParseSize(in)
		assert.ErrorIs(t, err, ErrSize, in)
	}
	for _, in := range []string{"9EiB", "8EiB", "10000PB", "99999999T"} {
		_, err := ParseSize(in)
		assert.ErrorContains(t, err, "too large", in)
	}
}

func TestFormatSizeUp(t *testing.T) {
	for _, n := range []int64{1, 1023, 1024, 1025, 2107000, 5_767_168 + 1, 1 << 40, 1<<40 + 1} {
		s := formatSizeUp(n)
		v, err := ParseSize(strings.ReplaceAll(s, " ", ""))
		require.NoError(t, err, s)
		assert.GreaterOrEqual(t, v, n, s)
		assert.LessOrEqual(t, float64(v), float64(n)*1.01+1, "the next printed size: %s for %d", s, n)
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{
		0:             "0 B",
		100:           "100 B",
		1023:          "1023 B",
		1024:          "1.00 KiB",
		-2048:         "-2.00 KiB",
		3 << 29:       "1.50 GiB",
		16 << 30:      "16.0 GiB",
		21166817152:   "19.7 GiB",
		512 << 20:     "512 MiB",
		1<<62 + 1<<61: "6.00 EiB",
	} {
		assert.Equal(t, want, FormatSize(n), "%d", n)
	}
}

func TestPlanFillsBudget(t *testing.T) {
	m := openTestModel(t)
	e0, e1 := m.ExpertBytes(0), m.ExpertBytes(1)
	reserve := int64(100 << 10)
	vram := m.NonExpertBytes() + reserve + 10*e0 + 10*e1 + e0/2
	p, err := NewPlan(m, WithVRAM(vram), WithReserve(reserve))
	require.NoError(t, err)
	assert.Equal(t, 10, p.Layers[0].Slots)
	assert.Equal(t, 10, p.Layers[1].Slots)
	assert.Equal(t, e0/2, p.Unused)
	assert.Equal(t, vram, p.NonExpert+p.Reserve+p.Pinned+p.Slots+p.Unused)
	assert.Equal(t, 4*(e0+e1), p.WorkingSet)
	assert.Equal(t, HostMapped, p.Host.Mode)
	assert.Equal(t, m.TotalExpertBytes(), p.TotalExpert)
	assert.GreaterOrEqual(t, p.Host.Bytes, m.TotalExpertBytes())

	// Never more slots than experts.
	p, err = NewPlan(m, WithVRAM(1<<40))
	require.NoError(t, err)
	assert.Equal(t, 16, p.Layers[0].Slots)
	assert.Equal(t, 16, p.Layers[1].Slots)
}

func TestPlanTooSmall(t *testing.T) {
	m := openTestModel(t)
	need := m.NonExpertBytes() + 4*(m.ExpertBytes(0)+m.ExpertBytes(1))
	_, err := NewPlan(m, WithVRAM(need))
	require.NoError(t, err)
	_, err = NewPlan(m, WithVRAM(need-1))
	require.ErrorIs(t, err, ErrBudget)
	var be *BudgetError
	require.True(t, errors.As(err, &be))
	assert.Equal(t, "VRAM", be.Budget)
	assert.Equal(t, need-m.NonExpertBytes(), be.Need)
	assert.Equal(t, need-1-m.NonExpertBytes(), be.Have)
	assert.Contains(t, err.Error(), "top-4 experts of each of 2 layers")
	assert.Contains(t, err.Error(), "non-expert weights")

	// A reserve larger than the budget leaves nothing.
	_, err = NewPlan(m, WithVRAM(need), WithReserve(need))
	require.ErrorIs(t, err, ErrBudget)

	// Host: the LRU needs room for one layer's top-k of each size.
	_, err = NewPlan(m, WithVRAM(need), WithHostBudget(3*m.ExpertBytes(1)))
	require.ErrorIs(t, err, ErrBudget)
	assert.Contains(t, err.Error(), "host budget too small")
	require.True(t, errors.As(err, &be))
	_, err = NewPlan(m, WithVRAM(need), WithHostBudget(be.Least))
	require.NoError(t, err, "the least host budget works")
	_, err = NewPlan(m, WithVRAM(need), WithHostBudget(be.Least-2))
	require.ErrorIs(t, err, ErrBudget, "and is about the least")

	// The least VRAM budget works, with a reserve too.
	_, err = NewPlan(m, WithVRAM(need-1), WithReserve(1000))
	require.True(t, errors.As(err, &be))
	assert.Equal(t, need+1000, be.Least)
	assert.Contains(t, err.Error(), "the least VRAM budget that works is")
	_, err = NewPlan(m, WithVRAM(be.Least), WithReserve(1000))
	require.NoError(t, err)

	for _, opt := range []Option{WithVRAM(0), WithVRAM(-1), WithSlots(0), WithHostBudget(-1), WithReserve(-1), WithHostChunk(0), WithPolicy(nil)} {
		_, err := NewPlan(m, WithVRAM(need), opt)
		assert.ErrorIs(t, err, ErrInvalid)
	}
	_, err = NewPlan(m)
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = NewPlan(m, WithSlots(3))
	assert.ErrorIs(t, err, ErrInvalid, "fewer slots than the top-k")
}

func TestPlanPinnedAndSlots(t *testing.T) {
	m := openTestModel(t)
	hot := &profile.HotSet{Layers: make([]profile.LayerHotSet, 2)}
	hot.Layers[0].Experts = []int{3, 1, 4}
	hot.Layers[1].Experts = make([]int, 16)
	for i := range hot.Layers[1].Experts {
		hot.Layers[1].Experts[i] = i
	}
	p, err := NewPlan(m, WithSlots(6), WithHotSet(hot), WithHostBudget(20*m.ExpertBytes(1)), WithHostChunk(5*m.ExpertBytes(1)))
	require.NoError(t, err)
	assert.Equal(t, []int{3, 1, 4}, p.Layers[0].Pinned)
	assert.Equal(t, 6, p.Layers[0].Slots)
	assert.Equal(t, 0, p.Layers[1].Slots, "all pinned: no dynamic slots")
	assert.Equal(t, 3*m.ExpertBytes(0)+16*m.ExpertBytes(1), p.Pinned)
	assert.Equal(t, p.NonExpert+p.Pinned+p.Slots, p.VRAM, "WithSlots alone states what it needs")
	assert.Equal(t, HostLRU, p.Host.Mode)
	assert.LessOrEqual(t, p.Host.Bytes, p.Host.Budget)
	assert.Equal(t, 4, p.Host.Chunks)

	text := p.String()
	for _, want := range []string{"pinned-lru", "expert copies", "pinning ~", "layers", " 0\n", " 1\n"} {
		assert.Contains(t, text, want)
	}
	js, err := p.JSON()
	require.NoError(t, err)
	var back map[string]any
	require.NoError(t, json.Unmarshal(js, &back))
	assert.Equal(t, "pinned-lru", back["host"].(map[string]any)["mode"])
	assert.Len(t, back["layers"], 2)
	var round Plan
	require.NoError(t, json.Unmarshal(js, &round))
	assert.Equal(t, p.Host.Mode, round.Host.Mode)
	assert.Equal(t, p.Host.Bytes, round.Host.Bytes)
	assert.Equal(t, p.Host.Entries, round.Host.Entries)
	assert.Equal(t, p.Layers, round.Layers)
	assert.Error(t, round.Host.Mode.UnmarshalText([]byte("paged")))

	bad := &profile.HotSet{Layers: make([]profile.LayerHotSet, 3)}
	bad.Layers[2].Experts = []int{0}
	_, err = NewPlan(m, WithSlots(6), WithHotSet(bad))
	assert.ErrorIs(t, err, ErrInvalid)
	bad.Layers[2].Experts = nil
	bad.Layers[0].Experts = []int{5, 5}
	_, err = NewPlan(m, WithSlots(6), WithHotSet(bad))
	assert.ErrorIs(t, err, ErrInvalid)
}

func TestLayerRanges(t *testing.T) {
	var ls []LayerPlan
	for _, l := range []int{0, 1, 2, 4, 6, 7} {
		ls = append(ls, LayerPlan{Layer: l})
	}
	assert.Equal(t, "0-2,4,6-7", layerRanges(ls))
	assert.True(t, strings.HasPrefix(layerRanges(ls[3:4]), "4"))
}

// testProfile profiles 500 tokens of the test model's shape whose routing
// favours low expert ids, as a real router favours some experts.
func testProfile(t *testing.T, m *experts.Model) *profile.Profile {
	t.Helper()
	id := profile.ModelID{Arch: m.Arch, Layers: m.Params.NumLayers, Experts: m.Params.NumExperts, ExpertsUsed: m.Params.NumExpertsUsed}
	rec, err := profile.NewRecorder(id)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		for l := range id.Layers {
			var ids []int32
			for len(ids) < id.ExpertsUsed {
				e := int32(float64(id.Experts) * rng.Float64() * rng.Float64())
				if !slices.Contains(ids, e) {
					ids = append(ids, e)
				}
			}
			require.NoError(t, rec.Record(l, ids, nil))
		}
	}
	return rec.Profile()
}

func TestPlanHotProfile(t *testing.T) {
	m := openTestModel(t)
	prof := testProfile(t, m)
	e0, e1 := m.ExpertBytes(0), m.ExpertBytes(1)
	reserve := int64(100 << 10)
	expertVRAM := 12 * (e0 + e1)
	vram := m.NonExpertBytes() + reserve + expertVRAM
	workingSet := 4 * (e0 + e1)

	p, err := NewPlan(m, WithVRAM(vram), WithReserve(reserve), WithHotProfile(prof, 0.25))
	require.NoError(t, err)
	require.NotNil(t, p.HotSet)
	assert.Equal(t, profile.Global, p.HotSet.Mode)
	assert.Equal(t, p.HotSet.Bytes, p.Pinned)
	assert.LessOrEqual(t, p.Pinned, expertVRAM/4)
	assert.Greater(t, p.Pinned, expertVRAM/4-max(e0, e1), "fills its share")
	for _, l := range p.Layers {
		assert.Equal(t, p.HotSet.Layers[l.Layer].Experts, l.Pinned)
	}
	assert.Contains(t, p.String(), "of the profile's selections")

	// All of it: capped so that every layer keeps its top-k slots.
	p, err = NewPlan(m, WithVRAM(vram), WithReserve(reserve), WithHotProfile(prof, 1))
	require.NoError(t, err)
	assert.LessOrEqual(t, p.Pinned, expertVRAM-workingSet)
	assert.Greater(t, p.Pinned, expertVRAM-workingSet-max(e0, e1))
	for _, l := range p.Layers {
		assert.GreaterOrEqual(t, l.Slots, l.TopK, "layer %d", l.Layer)
	}
	// The same choice as selecting it by hand.
	want, err := profile.SelectHotSet(prof, []int64{e0, e1}, expertVRAM-workingSet, profile.Global)
	require.NoError(t, err)
	assert.Equal(t, want, p.HotSet)

	// No room beyond the working set: nothing pinned.
	p, err = NewPlan(m, WithVRAM(m.NonExpertBytes()+workingSet), WithHotProfile(prof, 0.5))
	require.NoError(t, err)
	assert.Zero(t, p.Pinned)

	other := *prof
	other.Layers = other.Layers[:1]
	_, err = NewPlan(m, WithVRAM(vram), WithHotProfile(&other, 0.5))
	assert.ErrorIs(t, err, profile.ErrModelMismatch)
	assert.ErrorIs(t, err, ErrInvalid)
	_, err = NewPlan(m, WithSlots(8), WithHotProfile(prof, 0.5))
	assert.ErrorIs(t, err, ErrInvalid, "no VRAM budget")
	_, err = NewPlan(m, WithVRAM(vram), WithHotProfile(prof, 0.5), WithHotSet(&profile.HotSet{}))
	assert.ErrorIs(t, err, ErrInvalid)
	for _, f := range []float64{0, -0.5, 1.5} {
		_, err = NewPlan(m, WithVRAM(vram), WithHotProfile(prof, f))
		assert.ErrorIs(t, err, ErrInvalid, "fraction %v", f)
	}
	_, err = NewPlan(m, WithVRAM(vram), WithHotProfile(nil, 0.5))
	assert.ErrorIs(t, err, ErrInvalid)
}

// TestPlanFullSizePreset plans Qwen3.5-35B-A3B (18 GiB of experts in 40
// layers of two expert sizes) on a 16 GiB card, opened without its weights.
func TestPlanFullSizePreset(t *testing.T) {
	w, err := synth.NewWriter("qwen35moe-35b-a3b")
	require.NoError(t, err)
	m, err := synth.OpenShape(w, t.TempDir())
	require.NoError(t, err)
	defer m.Close()
	p, err := NewPlan(m, WithVRAM(16<<30))
	require.NoError(t, err)
	require.Len(t, p.Layers, 40)
	for _, l := range p.Layers {
		assert.GreaterOrEqual(t, l.Slots, 8*20, "layer %d: slots", l.Layer)
	}
	assert.Equal(t, p.VRAM, p.NonExpert+p.Slots+p.Unused)
	assert.Less(t, p.Unused, m.ExpertBytes(0))
	assert.Equal(t, HostMapped, p.Host.Mode)
}

// TestPlanSlotShares sizes the layers' slots by shares, with WithSlots' total
// and with a VRAM budget.
func TestPlanSlotShares(t *testing.T) {
	m := openTestModel(t)
	shares := map[int]float64{0: 3, 1: 1}
	p, err := NewPlan(m, WithSlots(8), WithSlotShares(shares))
	require.NoError(t, err)
	assert.Equal(t, 12, p.Layers[0].Slots, "the working set of 4, then 3 of every 4 slots beyond")
	assert.Equal(t, 4, p.Layers[1].Slots)

	e0, e1 := m.ExpertBytes(0), m.ExpertBytes(1)
	vram := m.NonExpertBytes() + 8*(e0+e1)
	even, err := NewPlan(m, WithVRAM(vram))
	require.NoError(t, err)
	assert.Equal(t, 8, even.Layers[0].Slots)
	p, err = NewPlan(m, WithVRAM(vram), WithSlotShares(map[int]float64{1: 1}))
	require.NoError(t, err)
	assert.Equal(t, 4, p.Layers[0].Slots, "no share: the working set only")
	assert.Equal(t, int((8*(e0+e1)-4*e0)/e1), p.Layers[1].Slots, "the rest of the budget")
	assert.Less(t, p.Unused, e1)

	for _, bad := range []map[int]float64{nil, {0: 0}, {0: -1, 1: 1}, {0: math.Inf(1)}} {
		_, err := NewPlan(m, WithSlots(8), WithSlotShares(bad))
		assert.ErrorIs(t, err, ErrInvalid, "%v", bad)
	}
}
