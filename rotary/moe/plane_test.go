package moe_test

import (
	"testing"

	"github.com/rotary-moe/rotary/cuda"
	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/moe"
	"github.com/stretchr/testify/require"
)

func TestPlaneOf(t *testing.T) {
	dev, err := cuda.NewHost()
	require.NoError(t, err)
	defer dev.Close()
	buf, err := dev.Alloc(1 << 20)
	require.NoError(t, err)
	// Q4_K gate and up (FF 512 rows of Embd 256), Q6_K down (256 rows of 512).
	gate, down := int64(512*144), int64(256*2*210)
	separate := rotary.Plane{Layer: 3, Buf: buf, SlotBytes: 2*gate + down, Slots: 2, Parts: []rotary.PartLayout{
		{Role: experts.PartGate, Type: experts.TypeQ4_K, Cols: 256, Rows: 512, Offset: 0, Size: gate},
		{Role: experts.PartUp, Type: experts.TypeQ4_K, Cols: 256, Rows: 512, Offset: gate, Size: gate},
		{Role: experts.PartDown, Type: experts.TypeQ6_K, Cols: 512, Rows: 256, Offset: 2 * gate, Size: down},
	}}
	want := moe.Plane{Buf: buf, SlotBytes: 2*gate + down, Gate: moe.Part{Off: 0, Type: experts.TypeQ4_K},
		Up: moe.Part{Off: gate, Type: experts.TypeQ4_K}, Down: moe.Part{Off: 2 * gate, Type: experts.TypeQ6_K}, FF: 512, Embd: 256}
	got, err := moe.PlaneOf(separate)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.NoError(t, got.Check())

	merged := separate
	merged.Parts = []rotary.PartLayout{
		{Role: experts.PartGateUp, Type: experts.TypeQ4_K, Cols: 256, Rows: 1024, Offset: 0, Size: 2 * gate},
		separate.Parts[2],
	}
	got, err = moe.PlaneOf(merged)
	require.NoError(t, err)
	require.Equal(t, want, got)

	for name, parts := range map[string][]rotary.PartLayout{
		"no down":        separate.Parts[:2],
		"no up":          {separate.Parts[0], separate.Parts[2]},
		"twice the gate": {separate.Parts[0], separate.Parts[0], separate.Parts[2]},
		"merged and up":  {merged.Parts[0], separate.Parts[1], separate.Parts[2]},
		"down mismatch":  {separate.Parts[0], separate.Parts[1], {Role: experts.PartDown, Type: experts.TypeQ6_K, Cols: 256, Rows: 256, Size: down}},
	} {
		t.Run(name, func(t *testing.T) {
			bad := separate
			bad.Parts = parts
			_, err := moe.PlaneOf(bad)
			require.ErrorIs(t, err, moe.ErrShape)
		})
	}
}
