package experts

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// PartRole names one projection of an expert.
type PartRole uint8

// The parts of an expert. A file stores either gate and up separately or
// both in one merged gate_up tensor.
const (
	PartGate PartRole = iota
	PartUp
	PartDown
	PartGateUp
)

func (r PartRole) String() string {
	switch r {
	case PartGate:
		return "gate"
	case PartUp:
		return "up"
	case PartDown:
		return "down"
	case PartGateUp:
		return "gate_up"
	}
	return "part(" + strconv.Itoa(int(r)) + ")"
}

// ExpertPart is one projection matrix of one expert: Rows rows of Cols
// elements of Type, Size contiguous bytes at file offset Offset, a slice of
// the stacked Tensor.
type ExpertPart struct {
	Role   PartRole
	Tensor *TensorInfo // the stacked tensor of all the layer's experts
	Type   Type
	Cols   uint64 // ne0: the input dimension
	Rows   uint64 // ne1: the output dimension
	Offset int64  // absolute file offset
	Size   int64
}

// Expert locates the weights of expert ID of layer Layer. Parts are gate,
// up, down, or gate_up, down for a file with merged gate/up tensors.
type Expert struct {
	Layer, ID int
	Parts     []ExpertPart
}

// Size is the expert's size in bytes, all parts together.
func (e Expert) Size() int64 {
	var n int64
	for _, p := range e.Parts {
		n += p.Size
	}
	return n
}

// ExpertLayer indexes the routed experts of one MoE layer. All experts of a
// layer have the same layout; expert e's part i lies e*Parts[i].Size bytes
// after expert 0's.
type ExpertLayer struct {
	Layer      int
	NumExperts int
	// Router is the gating matrix (ffn_gate_inp.weight), ne = [embedding, experts].
	Router *TensorInfo
	// Parts are expert 0's parts, in Expert's order.
	Parts []ExpertPart
	// ExpertBytes is the size of one expert, all parts together.
	ExpertBytes int64
}

// Expert returns expert e of the layer.
func (l *ExpertLayer) Expert(e int) (Expert, error) {
	if e < 0 || e >= l.NumExperts {
		return Expert{}, fmt.Errorf("%w: expert %d of layer %d (it has %d)", ErrOutOfRange, e, l.Layer, l.NumExperts)
	}
	parts := make([]ExpertPart, len(l.Parts))
	for i, p := range l.Parts {
		p.Offset += int64(e) * p.Size
		parts[i] = p
	}
	return Expert{Layer: l.Layer, ID: e, Parts: parts}, nil
}

// SharedExpert holds the tensors of a layer's always-active shared expert.
type SharedExpert struct {
	Layer          int
	Gate, Up, Down *TensorInfo
	// InputGate (ffn_gate_inp_shexp.weight, one row of EmbeddingDim) scales
	// the shared expert's output by sigmoid(InputGate · x); nil where the
	// model has no such gate.
	InputGate *TensorInfo
}

// MoELayers returns the indices of the layers with routed experts, ascending.
func (m *Model) MoELayers() []int { return append([]int(nil), m.moeLayers...) }

// Experts returns the expert index of a layer, or false if the layer has no
// routed experts.
func (m *Model) Experts(layer int) (*ExpertLayer, bool) {
	if layer < 0 || layer >= len(m.layers) || m.layers[layer] == nil {
		return nil, false
	}
	return m.layers[layer], true
}

// Expert returns expert e of a layer.
func (m *Model) Expert(layer, e int) (Expert, error) {
	l, ok := m.Experts(layer)
	if !ok {
		return Expert{}, fmt.Errorf("%w: layer %d has no routed experts", ErrOutOfRange, layer)
	}
	return l.Expert(e)
}

// AppendExpert appends the bytes of expert e of layer to dst, its parts
// back to back in the model's order (gate, up, down, or gate_up, down), read
// from the file: what a slot of rotary's planes holds for the expert.
func (m *Model) AppendExpert(dst []byte, layer, e int) ([]byte, error) {
	ex, err := m.Expert(layer, e)
	if err != nil {
		return dst, err
	}
	for _, p := range ex.Parts {
		n := len(dst)
		dst = append(dst, make([]byte, p.Size)...)
		if _, err := m.File.ReadAt(dst[n:], p.Offset); err != nil {
			return dst[:n], fmt.Errorf("experts: reading expert %d of layer %d (%s): %w", e, layer, p.Role, err)
		}
	}
	return dst, nil
}

// ExpertBytes is the size of one expert of a layer (0 for a layer without
// routed experts).
func (m *Model) ExpertBytes(layer int) int64 {
	if l, ok := m.Experts(layer); ok {
		return l.ExpertBytes
	}
	return 0
}

// ExpertTensors returns the stacked tensors that hold the routed experts of
// every MoE layer (ffn_{gate,up,down}_exps or ffn_gate_up_exps, those of the
// Parts of Experts), in the order of the file's tensor table. Their sizes add
// up to TotalExpertBytes; all other tensors make up NonExpertBytes.
func (m *Model) ExpertTensors() []*TensorInfo { return slices.Clone(m.expertTensors) }

// TotalExpertBytes is the size of all routed experts of all layers.
func (m *Model) TotalExpertBytes() int64 { return m.totalExpertBytes }

// NonExpertBytes is the size of all other tensors (embeddings, attention,
// routers, shared experts, ...): what stays resident. Padding between
// tensors is not counted.
func (m *Model) NonExpertBytes() int64 { return m.nonExpertBytes }

// SharedExpert returns a layer's shared expert, or false if it has none.
func (m *Model) SharedExpert(layer int) (SharedExpert, bool) {
	if layer < 0 || layer >= len(m.shared) || m.shared[layer] == nil {
		return SharedExpert{}, false
	}
	return *m.shared[layer], true
}

// layerTensors collects the MoE tensors of one layer by name.
type layerTensors struct {
	gate, up, down, gateUp, router    *TensorInfo
	shGate, shUp, shDown, shInputGate *TensorInfo
}

// slot returns where the tensor named suffix (after "blk.N.") belongs.
func (lt *layerTensors) slot(suffix string) **TensorInfo {
	switch suffix {
	case "ffn_gate_exps.weight":
		return &lt.gate
	case "ffn_up_exps.weight":
		return &lt.up
	case "ffn_down_exps.weight":
		return &lt.down
	case "ffn_gate_up_exps.weight":
		return &lt.gateUp
	case "ffn_gate_inp.weight":
		return &lt.router
	case "ffn_gate_shexp.weight":
		return &lt.shGate
	case "ffn_up_shexp.weight":
		return &lt.shUp
	case "ffn_down_shexp.weight":
		return &lt.shDown
	case "ffn_gate_inp_shexp.weight":
		return &lt.shInputGate
	}
	return nil
}

// splitBlockName splits "blk.N.rest" into N and rest.
func splitBlockName(name string) (int, string, bool) {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return 0, "", false
	}
	num, suffix, ok := strings.Cut(rest, ".")
	if !ok || num == "" || len(num) > 9 || (len(num) > 1 && num[0] == '0') {
		return 0, "", false
	}
	n := 0
	for _, c := range []byte(num) {
		if c < '0' || c > '9' {
			return 0, "", false
		}
		n = n*10 + int(c-'0')
	}
	return n, suffix, true
}

// inconsistent reports a tensor that does not fit the model.
func (m *Model) inconsistent(t *TensorInfo, field, format string, args ...any) error {
	return &FormatError{
		Path:   m.File.path,
		Field:  tensorField(t.Name) + " " + field,
		Offset: t.infoOffset,
		Err:    fmt.Errorf("%w: "+format, append([]any{ErrInconsistentModel}, args...)...),
	}
}

// index finds every layer's expert tensors, checks them and sums the sizes.
func (m *Model) index() error {
	h := &m.Params
	byLayer := make([]layerTensors, h.NumLayers)
	var total int64
	for _, t := range m.File.tensors {
		total += t.Size
		layer, suffix, ok := splitBlockName(t.Name)
		if !ok || (&layerTensors{}).slot(suffix) == nil {
			continue
		}
		if layer >= h.NumLayers {
			return m.inconsistent(t, "name", "layer %d, but block_count is %d", layer, h.NumLayers)
		}
		*byLayer[layer].slot(suffix) = t
	}
	if h.VocabSize == 0 {
		if emb, ok := m.File.Tensor("token_embd.weight"); ok && len(emb.Dims) == 2 && emb.Dims[1] <= math.MaxInt32 {
			h.VocabSize = int(emb.Dims[1])
		}
	}

	m.layers = make([]*ExpertLayer, h.NumLayers)
	m.shared = make([]*SharedExpert, h.NumLayers)
	for layer := range byLayer {
		lt := &byLayer[layer]
		el, err := m.expertLayer(layer, lt)
		if err != nil {
			return err
		}
		if el != nil {
			m.layers[layer] = el
			m.moeLayers = append(m.moeLayers, layer)
			m.totalExpertBytes += el.ExpertBytes * int64(el.NumExperts)
		}
		se, err := m.sharedExpert(layer, lt)
		if err != nil {
			return err
		}
		m.shared[layer] = se
	}
	if len(m.moeLayers) == 0 {
		return fmt.Errorf("%w: no blk.N.ffn_{gate,up,down}_exps.weight tensors", ErrNoExperts)
	}
	routed := map[*TensorInfo]bool{}
	for _, l := range m.moeLayers {
		for _, p := range m.layers[l].Parts {
			routed[p.Tensor] = true
		}
	}
	m.nonExpertBytes = total
	for _, t := range m.File.tensors {
		if routed[t] {
			m.expertTensors = append(m.expertTensors, t)
			m.nonExpertBytes -= t.Size
		}
	}
	return nil
}

// expertLayer checks a layer's stacked expert tensors and builds its index;
// nil for a layer without any.
func (m *Model) expertLayer(layer int, lt *layerTensors) (*ExpertLayer, error) {
	h := &m.Params
	if lt.gate == nil && lt.up == nil && lt.down == nil && lt.gateUp == nil {
		return nil, nil
	}
	var stacks []*TensorInfo
	var roles []PartRole
	switch {
	case lt.gateUp != nil && (lt.gate != nil || lt.up != nil):
		return nil, m.inconsistent(lt.gateUp, "name", "layer %d has both merged gate_up and separate gate/up experts", layer)
	case lt.gateUp != nil:
		stacks, roles = []*TensorInfo{lt.gateUp}, []PartRole{PartGateUp}
	case lt.gate == nil || lt.up == nil:
		return nil, m.inconsistent(firstOf(lt.gate, lt.up, lt.down), "name", "layer %d lacks its ffn_gate_exps or ffn_up_exps tensor", layer)
	default:
		stacks, roles = []*TensorInfo{lt.gate, lt.up}, []PartRole{PartGate, PartUp}
	}
	if lt.down == nil {
		return nil, m.inconsistent(stacks[0], "name", "layer %d lacks its ffn_down_exps tensor", layer)
	}
	stacks, roles = append(stacks, lt.down), append(roles, PartDown)
	if lt.router == nil {
		return nil, m.inconsistent(stacks[0], "name", "layer %d lacks its router ffn_gate_inp.weight", layer)
	}

	embd := uint64(h.EmbeddingDim)
	for _, t := range stacks {
		if n := len(t.Dims); n != 3 && !(n == 2 && h.NumExperts == 1) {
			return nil, m.inconsistent(t, "dims", "%d dimensions, want [cols, rows, experts]", n)
		}
		if experts := dim(t, 2); experts != uint64(h.NumExperts) {
			return nil, m.inconsistent(t, "dims[2]", "%d experts, expert_count is %d", experts, h.NumExperts)
		}
	}
	// Every part maps embedding-sized vectors to the expert's hidden size or
	// back; gate and up (or gate_up, twice as tall) feed down.
	ffn := dim(lt.down, 0)
	if dim(lt.down, 1) != embd {
		return nil, m.inconsistent(lt.down, "dims[1]", "%d rows, embedding_length is %d", dim(lt.down, 1), embd)
	}
	for i, t := range stacks[:len(stacks)-1] {
		rows := ffn
		if roles[i] == PartGateUp {
			rows = 2 * ffn
		}
		if dim(t, 0) != embd || dim(t, 1) != rows {
			return nil, m.inconsistent(t, "dims", "shape %v, want [%d %d %d]", t.Dims, embd, rows, h.NumExperts)
		}
	}
	if h.ExpertFFNDim == 0 {
		h.ExpertFFNDim = int(ffn)
	} else if uint64(h.ExpertFFNDim) != ffn {
		return nil, m.inconsistent(lt.down, "dims[0]", "expert hidden size %d, expert_feed_forward_length is %d", ffn, h.ExpertFFNDim)
	}
	if dim(lt.router, 0) != embd || dim(lt.router, 1) != uint64(h.NumExperts) || len(lt.router.Dims) > 2 {
		return nil, m.inconsistent(lt.router, "dims", "shape %v, want [%d %d]", lt.router.Dims, embd, h.NumExperts)
	}

	el := &ExpertLayer{Layer: layer, NumExperts: h.NumExperts, Router: lt.router}
	for i, t := range stacks {
		size := t.Stride(2)
		el.Parts = append(el.Parts, ExpertPart{
			Role: roles[i], Tensor: t, Type: t.Type,
			Cols: dim(t, 0), Rows: dim(t, 1),
			Offset: t.Offset, Size: size,
		})
		el.ExpertBytes += size
	}
	return el, nil
}

// sharedExpert checks a layer's shared-expert tensors; nil without any.
func (m *Model) sharedExpert(layer int, lt *layerTensors) (*SharedExpert, error) {
	h := &m.Params
	if lt.shGate == nil && lt.shUp == nil && lt.shDown == nil {
		if lt.shInputGate != nil {
			return nil, m.inconsistent(lt.shInputGate, "name", "layer %d has a shared-expert gate but no shared expert", layer)
		}
		return nil, nil
	}
	for _, t := range []*TensorInfo{lt.shGate, lt.shUp, lt.shDown} {
		if t == nil {
			return nil, m.inconsistent(firstOf(lt.shGate, lt.shUp, lt.shDown), "name", "layer %d lacks one of ffn_{gate,up,down}_shexp.weight", layer)
		}
	}
	embd, ffn := uint64(h.EmbeddingDim), dim(lt.shDown, 0)
	for _, t := range []*TensorInfo{lt.shGate, lt.shUp} {
		if len(t.Dims) != 2 || dim(t, 0) != embd || dim(t, 1) != ffn {
			return nil, m.inconsistent(t, "dims", "shape %v, want [%d %d]", t.Dims, embd, ffn)
		}
	}
	if len(lt.shDown.Dims) != 2 || dim(lt.shDown, 1) != embd {
		return nil, m.inconsistent(lt.shDown, "dims", "shape %v, want [%d %d]", lt.shDown.Dims, ffn, embd)
	}
	if h.SharedExpertFFNDim == 0 {
		h.SharedExpertFFNDim = int(ffn)
	} else if uint64(h.SharedExpertFFNDim) != ffn {
		return nil, m.inconsistent(lt.shDown, "dims[0]", "shared expert hidden size %d, expert_shared_feed_forward_length is %d", ffn, h.SharedExpertFFNDim)
	}
	if g := lt.shInputGate; g != nil && (dim(g, 0) != embd || g.Elements() != embd) {
		return nil, m.inconsistent(g, "dims", "shape %v, want [%d] or [%d 1]", g.Dims, embd, embd)
	}
	return &SharedExpert{Layer: layer, Gate: lt.shGate, Up: lt.shUp, Down: lt.shDown, InputGate: lt.shInputGate}, nil
}

// firstOf returns the first tensor that is not nil; callers know one is.
func firstOf(ts ...*TensorInfo) *TensorInfo {
	for _, t := range ts {
		if t != nil {
			return t
		}
	}
	panic("experts: firstOf without a tensor")
}

// dim is t's size in dimension i, 1 beyond its last dimension (as ggml).
func dim(t *TensorInfo, i int) uint64 {
	if i < len(t.Dims) {
		return t.Dims[i]
	}
	return 1
}
