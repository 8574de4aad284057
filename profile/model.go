package profile

import "fmt"

// Limits on model shapes. They bound what a hostile file can make a reader
// allocate, and they let traces store expert ids as uint16.
const (
	MaxLayers      = 4096
	MaxExperts     = 65535
	MaxExpertsUsed = 255
)

// ModelID identifies the model a profile or trace was recorded on. The caller
// fills it (from the GGUF: architecture, block count, expert counts, and a hash
// of the tensor table that it computes); this package stores and compares it.
type ModelID struct {
	// Name is a human-readable model name used in chart titles. It is not compared.
	Name string `json:"name,omitempty"`
	// Arch is the architecture, e.g. "qwen35moe" or "deepseek2".
	Arch string `json:"arch"`
	// Layers is the model's layer (block) count. Profiles and traces index layers
	// by the model's own layer numbers, so dense layers simply have no routing.
	Layers int `json:"layers"`
	// Experts is the number of routed experts per MoE layer.
	Experts int `json:"experts"`
	// ExpertsUsed is the router's top-k.
	ExpertsUsed int `json:"experts_used"`
	// TensorHash is a hash of the model's tensor table (names, types, shapes),
	// computed by the caller; empty when unknown.
	TensorHash string `json:"tensor_hash,omitempty"`
}

// Validate reports whether the shape is usable: Layers, Experts and ExpertsUsed
// positive and within the package limits, ExpertsUsed <= Experts.
func (m ModelID) Validate() error {
	switch {
	case m.Layers <= 0 || m.Layers > MaxLayers:
		return fmt.Errorf("%w: model has %d layers, want 1..%d", ErrInvalid, m.Layers, MaxLayers)
	case m.Experts <= 0 || m.Experts > MaxExperts:
		return fmt.Errorf("%w: model has %d experts, want 1..%d", ErrInvalid, m.Experts, MaxExperts)
	case m.ExpertsUsed <= 0 || m.ExpertsUsed > MaxExpertsUsed || m.ExpertsUsed > m.Experts:
		return fmt.Errorf("%w: model uses %d experts per token, want 1..min(%d, experts=%d)",
			ErrInvalid, m.ExpertsUsed, MaxExpertsUsed, m.Experts)
	}
	return nil
}

// Check reports whether other (a profile's or trace's identity) describes the
// same model as m. It returns a *MismatchError (errors.Is ErrModelMismatch) for
// the first field that differs. Name is not compared; TensorHash is compared only
// when both sides have one, so a profile built from an external trace (no hash)
// is accepted by a model with the same shape.
func (m ModelID) Check(other ModelID) error {
	switch {
	case m.Arch != other.Arch:
		return &MismatchError{Field: "arch", Want: m.Arch, Got: other.Arch}
	case m.Layers != other.Layers:
		return &MismatchError{Field: "layers", Want: m.Layers, Got: other.Layers}
	case m.Experts != other.Experts:
		return &MismatchError{Field: "experts", Want: m.Experts, Got: other.Experts}
	case m.ExpertsUsed != other.ExpertsUsed:
		return &MismatchError{Field: "experts_used", Want: m.ExpertsUsed, Got: other.ExpertsUsed}
	case m.TensorHash != "" && other.TensorHash != "" && m.TensorHash != other.TensorHash:
		return &MismatchError{Field: "tensor_hash", Want: m.TensorHash, Got: other.TensorHash}
	}
	return nil
}

// String returns the name if set, else the architecture and shape.
func (m ModelID) String() string {
	if m.Name != "" {
		return m.Name
	}
	return fmt.Sprintf("%s (%d layers, top-%d of %d)", m.Arch, m.Layers, m.ExpertsUsed, m.Experts)
}
