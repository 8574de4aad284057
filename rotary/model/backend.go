package model

import "context"

// Tensor is a matrix of float32 activations held by a Backend: one row per
// token (or cache position), Cols values per row. The model never reads a
// tensor's values except through Backend.Read.
type Tensor interface {
	Rows() int
	Cols() int
}

// Heads describes where attention heads sit in the rows of a tensor: head h
// of a row is the Dim values starting at column Offset + h·Stride. Plain
// heads have Stride == Dim; qwen35moe's query projection interleaves each
// query head with its output gate (Stride 2·Dim, the gate at Offset Dim).
type Heads struct {
	Count, Dim, Stride, Offset int
}

// Rope is rotary position embedding, NEOX style (value i paired with value
// i+Dims/2), over the first Dims values of each head.
type Rope struct {
	Dims int
	Base float32
}

// KVCache is one attention layer's cache: row p of K and V holds the keys
// and values (all KV heads) of position p.
type KVCache struct {
	K, V Tensor
}

// Attention describes causal self-attention of a batch of query rows at
// positions Pos, Pos+1, ... over everything cached before them and the
// batch's own keys and values.
type Attention struct {
	Q      Tensor
	QHeads Heads
	// Gate, when not nil, scales the output of each head by sigmoid of the
	// gate values laid out as GateHeads (qwen35moe's gated attention).
	Gate      Tensor
	GateHeads Heads
	// K and V hold the batch's keys and values, KVHeads·HeadDim per row;
	// Attention stores them into Cache at rows Pos, Pos+1, ...
	K, V    Tensor
	KVHeads int
	Cache   KVCache
	Pos     int
	Scale   float32
	// QNorm and KNorm, when they have data, RMS-normalise each query and
	// key head (Eps) and scale it (one weight per head dimension) before
	// Rope rotates it for its position: qwen's norm and NEOX rope, which
	// Attend runs first, so that a GPU fuses it with the cache store.
	QNorm, KNorm Weight
	Eps          float32
	Rope         Rope
}

// DeltaNet describes one Gated DeltaNet layer's recurrence over a batch.
type DeltaNet struct {
	// QKV is the convolved projection (after SiLU): per row KHeads query
	// heads, KHeads key heads, then VHeads value heads, HeadDim values each.
	// Value head j reads query/key head j mod KHeads (llama.cpp's GGUF order).
	QKV Tensor
	// Alpha and Beta are the raw per-value-head projections (VHeads per row):
	// decay = exp(softplus(alpha + DTBias)·A), write strength = sigmoid(beta).
	Alpha, Beta Tensor
	DTBias, A   Weight
	// State holds VHeads matrices of HeadDim×HeadDim, updated in place.
	State                   Tensor
	KHeads, VHeads, HeadDim int
	// Eps guards the L2 normalisation of queries and keys.
	Eps float32
}

// Residual is the sum that closes a block of a layer: A + B·sigmoid(Gate)
// + C, added in that order (B unscaled when Gate is nil, no C when C is
// nil). Gate has one column: qwen35moe's shared-expert gate.
type Residual struct {
	A, B, Gate, C Tensor
}

// Routing is the expert choice of a batch: token t uses experts
// IDs[t·K : (t+1)·K] (most probable first) with weights Weights[t·K : (t+1)·K].
// A backend that decides residency on its device may leave IDs and Weights
// nil (see RoutingReader).
type Routing struct {
	K       int
	IDs     []int32
	Weights []float32
	// Tensor is the routing as the backend that made it holds it (the GPU
	// backend's ids and weights in device memory), for its MoE to read
	// without a copy; nil when the backend keeps none.
	Tensor Tensor
}

// A RoutingReader is a backend whose Route may keep the routing on its
// device, leaving Routing.IDs and Weights nil: ReadRouting reads them into
// r, for the hooks that need them (WithRoutingHook, WithRoutingReplay). The
// backend's MoE then uses r.IDs as the hooks left them.
type RoutingReader interface {
	ReadRouting(r *Routing) error
}

// A RoutingLogger is a backend that can hand the model the routing of a
// whole step once it has run, instead of reading each layer's back while
// the step runs: what lets the routing hook (WithRoutingHook) watch a
// backend that keeps the routing on its device, and its steps be graphs.
type RoutingLogger interface {
	// LogRouting asks for the log; false means the backend reads every
	// routing back as Route returns it (Routing.IDs is set), and the hook
	// is called as the step runs.
	LogRouting() bool
	// LoggedRouting waits for the step's work, then calls fn with the
	// routing of each MoE layer of the step, in order. fn must not keep
	// r's slices.
	LoggedRouting(fn func(layer int, r Routing)) error
}

// A StepGrapher is a backend that can capture a one-token forward step as
// a graph and replay it at later positions, so that a decode step costs the
// host a launch and the read of its logits. The model uses it for steps of
// one token with no hook that reads activations or routing.
type StepGrapher interface {
	// BeginDecode starts a one-token step of the sequence and logits kind
	// key, token at position pos, in place of BeginStep. When it replays a
	// step captured for key it returns the tensor the step computes its
	// logits into: the step's work is queued, and only the logits are left
	// to read. Otherwise (nil) the model runs the step's operations, which
	// the backend may capture, and calls EndDecode before reading the
	// logits.
	BeginDecode(key StepKey, token int32, pos int) (replayedLogits Tensor)
	// EndDecode ends a step BeginDecode did not replay. logits is the
	// tensor of the step's logits once the model has queued all of the
	// step; a captured step is then launched now. nil says the step is
	// incomplete (an operation failed, the context was cancelled): a capture
	// of it is dropped unrun. An error says the step's work did not run
	// (its capture failed): the model runs the step again, without
	// BeginDecode.
	EndDecode(logits Tensor) error
}

// StepKey identifies the steps a captured graph replays: those of one
// sequence (a State) computing the same logits.
type StepKey struct {
	State  uint64
	Logits Logits
}

// Backend computes the operations the models are made of. Every method may
// assume shapes were checked by the model; tensors passed as dst are
// distinct from inputs unless a method says otherwise.
//
// Errors are uniform: every operation that computes returns one. A backend
// that queues work asynchronously (a GPU) may report a failure of earlier
// work from a later call; once an operation fails, the rest of the step
// fails too, and the next step starts afresh unless the device itself
// faulted (then every step fails). A step that failed leaves its sequence's
// state half-updated: reset it. Allocation
// (NewTensor, NewState, Slice) cannot return an error: a backend that fails
// to allocate returns a tensor the next operation refuses, with the reason.
type Backend interface {
	// BeginStep starts a forward step (one micro-batch through the layers):
	// the tensors NewTensor returned before it may be reused from now on.
	BeginStep()
	// NewTensor allocates a rows×cols tensor, valid until the next
	// BeginStep. Its values are undefined until an operation writes them.
	NewTensor(rows, cols int) Tensor
	// NewState allocates a rows×cols tensor of zeros that keeps its values
	// across steps, for a sequence's caches and recurrent state; it lives
	// as long as the backend.
	NewState(rows, cols int) Tensor
	// Zero sets every value of t to zero.
	Zero(t Tensor) error
	// Slice is rows [lo, hi) of t, sharing its storage.
	Slice(t Tensor, lo, hi int) Tensor
	// Read copies t's values into dst, row after row, once the work queued
	// before it is done.
	Read(dst []float32, t Tensor) error

	// Embed writes row tokens[i] of table into row i of dst.
	Embed(dst Tensor, table Weight, tokens []int32) error
	// MatMul writes x·wᵀ: dst[t][r] = Σ_c w[r][c]·x[t][c].
	MatMul(dst, x Tensor, w Weight) error
	// RMSNorm normalises each row of x (dst may be x) and scales it by w.
	RMSNorm(dst, x Tensor, w Weight, eps float32) error
	// Add writes a+b (dst may be a or b).
	Add(dst, a, b Tensor) error
	// SwiGLU writes SiLU(gate)·up (dst may be gate or up).
	SwiGLU(dst, gate, up Tensor) error
	// AddGated writes a + b·sigmoid(gate), gate having one column (dst may
	// be a or b).
	AddGated(dst, a, b, gate Tensor) error
	// AddNorm writes r's sum into sum (which may be r.A) and its RMSNorm,
	// scaled by w, into dst: a layer's residual sum fused with the next
	// block's norm. The sums and the norm round as Add, AddGated and
	// RMSNorm would one after the other.
	AddNorm(sum, dst Tensor, r Residual, w Weight, eps float32) error

	// Attend normalises and rotates a's queries and keys in place (when
	// a.QNorm has data), stores the keys and values in its cache and writes
	// the attention output, heads one after the other, into dst.
	Attend(dst Tensor, a Attention) error

	// ConvSiLU runs the causal depthwise convolution (kernel ne = [K, C])
	// over x, continuing from state (K-1 rows of C, updated), and applies SiLU.
	ConvSiLU(dst, x, state Tensor, kernel Weight) error
	// DeltaNet runs the gated delta rule over the batch, writing VHeads
	// outputs of HeadDim per row into dst and updating d.State.
	DeltaNet(dst Tensor, d DeltaNet) error
	// GatedRMSNorm normalises each len(w)-value group of x, scales it by w
	// and multiplies by SiLU(z): the output gate of Gated DeltaNet (dst may
	// be x).
	GatedRMSNorm(dst, x, z Tensor, w Weight, eps float32) error

	// Route turns router logits (one row per token) into the top k experts
	// per token, weights renormalised to sum 1 when normalize is set. The
	// host slices of the result are valid until the next Route.
	Route(logits Tensor, k int, normalize bool) (Routing, error)
	// MoE writes Σₖ weight·Down(SiLU(Gate·x)·(Up·x)) over each row's routed
	// experts of layer into dst, adding the k terms in routing order. r is
	// what this backend's Route returned for x. The backend owns the
	// experts' residency: it obtains the layer's routed experts (the CPU
	// backend from an ExpertSource, the GPU backend from rotary on the
	// device) and gives them back when it no longer reads them.
	MoE(ctx context.Context, dst, x Tensor, layer int, r Routing) error
}
