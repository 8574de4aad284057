package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/profile"
)

// ModelID is m's identity for profiles and traces: architecture, layer
// count, experts per layer and per token, and a hash of the tensor table
// (every tensor's name, type and shape, in file order). Two files of the same
// model quantized differently get different hashes, so a profile recorded on
// one is not mistaken for the other's; profile.ModelID.Check compares them.
func ModelID(m *experts.Model) profile.ModelID {
	h := sha256.New()
	for _, t := range m.File.Tensors() {
		fmt.Fprintf(h, "%s\t%s\t%v\n", t.Name, t.Type, t.Dims)
	}
	return profile.ModelID{
		Name:        m.Params.Name,
		Arch:        m.Arch,
		Layers:      m.Params.NumLayers,
		Experts:     m.Params.NumExperts,
		ExpertsUsed: m.Params.NumExpertsUsed,
		TensorHash:  "sha256:" + hex.EncodeToString(h.Sum(nil)[:16]),
	}
}
