package device

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/cuda/cudatest"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/synth"
	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/internal/residency"
)

var bg = context.Background()

// tinyModel writes and opens qwen3moe-tiny (2 MoE layers of 16 experts,
// top 4, random weights).
func tinyModel(t testing.TB) *experts.Model {
	t.Helper()
	path := t.TempDir() + "/tiny.gguf"
	require.NoError(t, synth.Write(bg, path, "qwen3moe-tiny"))
	m, err := experts.OpenModel(path)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// fileBytes is expert e of layer l as a slot holds it, read from the file.
func fileBytes(t testing.TB, m *experts.Model, l, e int) []byte {
	t.Helper()
	b, err := m.AppendExpert(nil, l, e)
	require.NoError(t, err)
	return b
}

// twin is the host's decisions for one layer: the residency core run on a
// copy of the device's tables.
func twin(t testing.TB, res rotary.Residency, counts []uint64) *residency.Table {
	t.Helper()
	var ev residency.Evictor = residency.LRU{}
	if counts != nil {
		ev = &residency.LFU{Counts: slices.Clone(counts)}
	}
	tab := residency.NewTable(len(res.SlotOf), len(res.ExpertIn), res.Pinned, ev)
	copy(tab.SlotOf, res.SlotOf)
	copy(tab.ExpertIn, res.ExpertIn)
	copy(tab.LastUse, res.LastUse)
	tab.Tick = res.Tick
	return tab
}

// routing draws rows tokens of k distinct experts of n, skewed towards low
// ids so that some experts hit often and others rarely.
func routing(rng *rand.Rand, rows, k, n int) []int32 {
	var ids []int32
	for range rows {
		var row []int32
		for len(row) < k {
			e := int32(min(int(float64(n)*rng.Float64()*rng.Float64()*1.5), n-1))
			if !slices.Contains(row, e) {
				row = append(row, e)
			}
		}
		ids = append(ids, row...)
	}
	return ids
}

// union is a step's experts: the distinct ids, ascending.
func union(ids []int32) []int {
	out := make([]int, 0, len(ids))
	for _, id := range ids {
		out = append(out, int(id))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestResolveMatchesHost replays random routings, single tokens and
// batches, through three implementations of a layer's residency and holds
// them to the same decisions at every step: the resolve kernel on the
// device, its host twin (the residency core), and the host runtime's
// Acquire and Release. It checks, under LRU and LFU, with pinned experts:
// the slot of every routed id, the misses and their victims, the tables
// whole (slot of each expert, expert of each slot, recency, tick) over 300
// steps, and that every resident expert's slot holds the file's bytes for
// it after the fill kernel's copies. The stats the kernels count in mapped
// memory match the host's.
func TestResolveMatchesHost(t *testing.T) {
	m := tinyModel(t)
	hot := &profile.HotSet{Layers: make([]profile.LayerHotSet, m.Params.NumLayers)}
	layers := m.MoELayers()
	hot.Layers[layers[0]].Experts = []int{0, 3}
	want := map[[2]int][]byte{}
	for _, l := range layers {
		for e := range m.Params.NumExperts {
			want[[2]int{l, e}] = fileBytes(t, m, l, e)
		}
	}
	for _, policy := range []rotary.Policy{rotary.LRU, rotary.LFU} {
		t.Run(policy.Name(), func(t *testing.T) {
			cudatest.Run(t, func(t *testing.T, c cudatest.Case) {
				opts := []rotary.Option{rotary.WithSlots(9), rotary.WithHotSet(hot), rotary.WithPolicy(policy)}
				rt, err := rotary.Open(bg, m, c.Device, append(opts, rotary.WithDeviceResidency())...)
				require.NoError(t, err)
				t.Cleanup(func() { require.NoError(t, rt.Close()) })
				r, err := New(bg, c.Device, rt)
				cudatest.Skip(t, err)
				t.Cleanup(func() { require.NoError(t, r.Close()) })

				// The host runtime, on a host device of its own.
				hdev, err := cuda.NewHost()
				require.NoError(t, err)
				t.Cleanup(func() { hdev.Close() })
				host, err := rotary.Open(bg, m, hdev, opts...)
				require.NoError(t, err)
				t.Cleanup(func() { require.NoError(t, host.Close()) })

				twins := map[int]*residency.Table{}
				for _, l := range layers {
					res, counts, err := r.Tables(bg, c.Stream, l)
					require.NoError(t, err)
					twins[l] = twin(t, res, counts)
				}
				k := m.Params.NumExpertsUsed
				rng := rand.New(rand.NewPCG(1, uint64(len(policy.Name()))))
				ids := c.Alloc(t, 4*9)
				slotIds := c.Alloc(t, 4*9)
				var hits, misses uint64
				for step := range 300 {
					l := layers[step%len(layers)]
					rows := 1
					if step%7 == 3 {
						rows = 2 // a batch: 8 ids, some experts twice
					}
					routed := routing(rng, rows, k, m.Params.NumExperts)
					require.NoError(t, c.Stream.CopyHtoD(ids, 0, cuda.Bytes(routed)))
					require.NoError(t, r.Resolve(c.Stream, l, ids, len(routed), slotIds))
					got := cudatest.Download[int32](t, c, slotIds, len(routed))
					gotMisses, err := r.Misses(bg, c.Stream, l)
					require.NoError(t, err)

					tab := twins[l]
					experts := union(routed)
					slots, wantMisses, ok := tab.Resolve(experts, nil, nil)
					require.True(t, ok)
					for i, id := range routed {
						require.Equal(t, int32(slots[slices.Index(experts, int(id))]), got[i], "step %d: slot of expert %d", step, id)
					}
					require.Len(t, gotMisses, len(wantMisses), "step %d", step)
					for j, w := range wantMisses {
						require.Equal(t, w, gotMisses[j], "step %d", step)
						require.NotContains(t, experts, w.Evicted, "step %d: an expert the step uses was evicted", step)
						require.GreaterOrEqual(t, w.Slot, tab.Pinned, "step %d: a pinned slot was taken", step)
					}
					hits += uint64(len(experts) - len(wantMisses))
					misses += uint64(len(wantMisses))

					set, err := host.Acquire(bg, l, experts, nil)
					require.NoError(t, err)
					for i, v := range set.Experts {
						require.Equal(t, slots[i], v.Slot, "step %d: the host runtime's slot of expert %d", step, experts[i])
					}
					require.NoError(t, host.Release(set, nil))

					res, _, err := r.Tables(bg, c.Stream, l)
					require.NoError(t, err)
					hres, err := host.Residency(l)
					require.NoError(t, err)
					for _, other := range []rotary.Residency{hres, {SlotOf: tab.SlotOf, ExpertIn: tab.ExpertIn, LastUse: tab.LastUse, Held: tab.Held, Pinned: tab.Pinned, Tick: tab.Tick}} {
						require.Equal(t, other.SlotOf, res.SlotOf, "step %d", step)
						require.Equal(t, other.ExpertIn, res.ExpertIn, "step %d", step)
						require.Equal(t, other.LastUse, res.LastUse, "step %d", step)
						require.Equal(t, other.Tick, res.Tick, "step %d", step)
					}
					if step%25 == 24 {
						plane, err := rt.Plane(l)
						require.NoError(t, err)
						buf := make([]byte, plane.Buf.Size())
						require.NoError(t, c.Stream.CopyDtoH(buf, plane.Buf, 0))
						require.NoError(t, c.Stream.Synchronize(bg))
						for s, e := range res.ExpertIn {
							if e >= 0 {
								got := buf[int64(s)*plane.SlotBytes : int64(s+1)*plane.SlotBytes]
								require.True(t, bytes.Equal(want[[2]int{l, int(e)}], got), "step %d: slot %d should hold expert %d's bytes", step, s, e)
							}
						}
					}
				}
				st := rt.Stats()
				require.Equal(t, hits, st.VRAM.Hits)
				require.Equal(t, misses, st.VRAM.Misses)
				hst := host.Stats()
				require.Equal(t, hst.VRAM.Hits, st.VRAM.Hits)
				require.Equal(t, hst.PinnedHits, st.PinnedHits)
				require.Equal(t, hst.VRAM.Bytes, st.VRAM.Bytes)

				_, err = rt.Acquire(bg, layers[0], []int{1}, nil)
				require.ErrorIs(t, err, rotary.ErrOnDevice)
			})
		})
	}
}
