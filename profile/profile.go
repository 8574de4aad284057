package profile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/rotary-moe/rotary/internal/atomicfile"
)

// Version is the profile file format version written by Save and Encode.
// Version 2 added the cross-layer transition counts (Layer.Transitions);
// Decode reads versions 1 and 2, and a reader of version 1 rejects version 2
// files with an error naming both versions.
const Version = 2

// minVersion is the oldest version Decode reads: version 1 files are version 2
// files without transition counts.
const minVersion = 1

// TransitionDepth is how many routed layers back Layer.Transitions
// reach: from the routed layer before and from the one before that.
const TransitionDepth = 2

// ReuseBuckets is the number of buckets of a reuse-distance histogram. Bucket b
// counts reuses at distance d with 2^b <= d < 2^(b+1); the last bucket is open.
const ReuseBuckets = 32

// maxProfileBytes bounds what Decode reads: a profile of 4096 layers × 256
// experts with co-activation counts is about 1 GB of JSON, far beyond any real use.
const maxProfileBytes = 1 << 30

// A Profile is a model's router statistics over a workload: per layer and expert,
// how often the router selected it and with how much routing weight, plus reuse
// distances and, optionally, co-activation counts. It is what a Recorder produces
// and what hot-set selection and the charts consume. Its JSON form is the profile
// file (see Encode).
type Profile struct {
	Version  int     `json:"version"`
	Model    ModelID `json:"model"`
	Workload string  `json:"workload,omitempty"` // a label for the recorded workload
	// Tokens is the number of tokens recorded: the largest per-layer token count.
	Tokens int64 `json:"tokens"`
	// Layers holds one entry per model layer, indexed by layer number; dense
	// layers have no tokens.
	Layers []Layer `json:"layers"`
}

// Layer holds one layer's statistics. A token of a layer is one Record call
// for that layer: tokens are counted per layer.
type Layer struct {
	// Tokens is the number of tokens routed through this layer.
	Tokens int64 `json:"tokens"`
	// WeightedTokens is how many of them came with routing weights (Mass covers
	// only those).
	WeightedTokens int64 `json:"weighted_tokens"`
	// Counts[e] is how many tokens selected expert e.
	Counts []uint64 `json:"counts"`
	// Mass[e] is the sum of expert e's routing weights over the weighted tokens.
	Mass []float64 `json:"mass"`
	// FirstUse counts selections of an expert not selected before in this layer.
	FirstUse uint64 `json:"first_use"`
	// Reuse is the histogram of reuse distances over the other selections: the
	// distance of a selection of expert e at token t is t minus the last token
	// before t that selected e (1: the previous token did). See ReuseBuckets.
	Reuse []uint64 `json:"reuse"`
	// CoActivation counts, for each pair of experts i < j, the tokens that selected
	// both; nil unless the recorder was made WithCoActivation. Index with
	// Profile.CoActivation.
	CoActivation []uint64 `json:"co_activation,omitempty"`
	// Transitions[d-1][i*Experts+j] counts the tokens that selected expert i
	// at the d-th routed layer before this one and expert j at this one (d =
	// 1..TransitionDepth): what predicting a layer's experts from the layers
	// before needs. Nil unless the recorder was made WithTransitions; zero
	// where there is no such layer (the first routed layers).
	Transitions [][]uint64 `json:"transitions,omitempty"`
}

// Transition returns how many tokens selected expert i at the d-th routed
// layer before layer and expert j at layer, or 0 when transitions were not
// recorded or an argument is out of range.
func (p *Profile) Transition(layer, d, i, j int) uint64 {
	n := p.Model.Experts
	if layer < 0 || layer >= len(p.Layers) || d < 1 || d > len(p.Layers[layer].Transitions) || i < 0 || j < 0 || i >= n || j >= n {
		return 0
	}
	return p.Layers[layer].Transitions[d-1][i*n+j]
}

// HasTransitions reports whether the profile holds transition counts.
func (p *Profile) HasTransitions() bool {
	for _, l := range p.Layers {
		if l.Transitions != nil {
			return true
		}
	}
	return false
}

// Selections returns the number of routed selections of the layer (the sum of
// its Counts): with a fixed top-k, Tokens × k.
func (l *Layer) Selections() uint64 {
	var n uint64
	for _, c := range l.Counts {
		n += c
	}
	return n
}

// Ranked returns the layer's expert ids ordered by selection count, most
// selected first; ties keep id order.
func (l *Layer) Ranked() []int {
	ids := make([]int, len(l.Counts))
	for i := range ids {
		ids[i] = i
	}
	slices.SortStableFunc(ids, func(a, b int) int {
		switch {
		case l.Counts[a] > l.Counts[b]:
			return -1
		case l.Counts[a] < l.Counts[b]:
			return 1
		}
		return 0
	})
	return ids
}

// Coverage returns, for n = 1..experts, the share of the layer's selections
// that go to its n most selected experts (the layer's popularity curve). It is
// nil for a layer with no selections.
func (l *Layer) Coverage() []float64 {
	total := l.Selections()
	if total == 0 {
		return nil
	}
	out := make([]float64, len(l.Counts))
	var sum uint64
	for i, e := range l.Ranked() {
		sum += l.Counts[e]
		out[i] = float64(sum) / float64(total)
	}
	return out
}

// newProfile returns an empty profile for m with all per-layer slices allocated.
func newProfile(m ModelID, coActivation bool) *Profile {
	p := &Profile{Version: Version, Model: m, Layers: make([]Layer, m.Layers)}
	for i := range p.Layers {
		l := &p.Layers[i]
		l.Counts = make([]uint64, m.Experts)
		l.Mass = make([]float64, m.Experts)
		l.Reuse = make([]uint64, ReuseBuckets)
		if coActivation {
			l.CoActivation = make([]uint64, pairCount(m.Experts))
		}
	}
	return p
}

// pairCount is the number of unordered pairs of n experts.
func pairCount(n int) int { return n * (n - 1) / 2 }

// pairIndex is the position of the pair (i, j), i < j < n, in a row-major upper
// triangle without the diagonal.
func pairIndex(i, j, n int) int { return i*(2*n-i-1)/2 + j - i - 1 }

// CoActivation returns how many tokens of layer selected both experts i and j
// (i != j), or 0 when co-activation was not recorded or an argument is out of range.
func (p *Profile) CoActivation(layer, i, j int) uint64 {
	n := p.Model.Experts
	if layer < 0 || layer >= len(p.Layers) || i < 0 || j < 0 || i >= n || j >= n || i == j {
		return 0
	}
	pairs := p.Layers[layer].CoActivation
	if pairs == nil {
		return 0
	}
	if i > j {
		i, j = j, i
	}
	return pairs[pairIndex(i, j, n)]
}

// Check returns a *MismatchError (errors.Is ErrModelMismatch) if the profile
// was not recorded on model.
func (p *Profile) Check(model ModelID) error { return model.Check(p.Model) }

// Merge adds other's statistics to p. Both must describe the same model
// (ErrModelMismatch otherwise). Co-activation and transition counts survive
// only where both profiles have them. Workload labels are joined with "+", each label once.
// Reuse distances are not recomputed across the two: other's first uses stay first uses.
func (p *Profile) Merge(other *Profile) error {
	if err := p.Model.Check(other.Model); err != nil {
		return err
	}
	if err := other.Validate(); err != nil {
		return err
	}
	if p.Model.TensorHash == "" {
		p.Model.TensorHash = other.Model.TensorHash
	}
	for _, w := range strings.Split(other.Workload, "+") {
		switch {
		case w == "" || slices.Contains(strings.Split(p.Workload, "+"), w):
		case p.Workload == "":
			p.Workload = w
		default:
			p.Workload += "+" + w
		}
	}
	p.Tokens += other.Tokens
	for i := range p.Layers {
		dst, src := &p.Layers[i], &other.Layers[i]
		dst.Tokens += src.Tokens
		dst.WeightedTokens += src.WeightedTokens
		dst.FirstUse += src.FirstUse
		addCounts(dst.Counts, src.Counts)
		addCounts(dst.Reuse, src.Reuse)
		for e, m := range src.Mass {
			dst.Mass[e] += m
		}
		if dst.CoActivation != nil && src.CoActivation != nil {
			addCounts(dst.CoActivation, src.CoActivation)
		} else {
			dst.CoActivation = nil
		}
		if dst.Transitions != nil && src.Transitions != nil {
			for d := range dst.Transitions {
				addCounts(dst.Transitions[d], src.Transitions[d])
			}
		} else {
			dst.Transitions = nil
		}
	}
	return nil
}

func addCounts(dst, src []uint64) {
	for i, c := range src {
		dst[i] += c
	}
}

// Encode writes the profile as indented JSON: the profile file format. Fields
// are those of Profile and Layer under their json tags; "version" is Version.
func (p *Profile) Encode(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	if err := enc.Encode(p); err != nil {
		return fmt.Errorf("profile: encode: %w", err)
	}
	return nil
}

// Decode reads a profile written by Encode and validates its shape.
func Decode(r io.Reader) (*Profile, error) {
	return decode(r, "")
}

// errIsTrace explains a routing trace given where a profile is read.
const errIsTrace = "this is a routing trace, not a profile (examples/heatmap -profile turns a trace into one)"

func decode(r io.Reader, source string) (*Profile, error) {
	br := bufio.NewReader(io.LimitReader(r, maxProfileBytes))
	if magic, err := br.Peek(len(binaryMagic)); err == nil && bytes.Equal(magic, binaryMagic[:]) {
		return nil, &FormatError{Format: "profile", Source: source, Msg: errIsTrace}
	}
	var v struct {
		Profile
		Format string `json:"format"` // a trace's header has one
	}
	if err := json.NewDecoder(br).Decode(&v); err != nil {
		return nil, &FormatError{Format: "profile", Source: source, Msg: "bad JSON", Err: err}
	}
	if v.Format == traceFormat {
		return nil, &FormatError{Format: "profile", Source: source, Msg: errIsTrace}
	}
	p := v.Profile
	if p.Version < minVersion || p.Version > Version {
		return nil, &FormatError{Format: "profile", Source: source,
			Msg: fmt.Sprintf("version %d, this package reads %d to %d", p.Version, minVersion, Version), Err: ErrVersion}
	}
	p.Version = Version // what it is now: version 1 is version 2 without transitions
	if err := p.Validate(); err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			fe.Source = source
		}
		return nil, err
	}
	return &p, nil
}

// Validate checks that every slice has the length the model implies: what
// Decode checks of a file, for a profile built or changed in memory.
func (p *Profile) Validate() error {
	bad := func(where, format string, args ...any) error {
		return &FormatError{Format: "profile", Where: where, Msg: fmt.Sprintf(format, args...)}
	}
	if err := p.Model.Validate(); err != nil {
		return &FormatError{Format: "profile", Where: "model", Msg: "bad model identity", Err: err}
	}
	if len(p.Layers) != p.Model.Layers {
		return bad("layers", "%d layer entries for a %d-layer model", len(p.Layers), p.Model.Layers)
	}
	if p.Tokens < 0 {
		return bad("tokens", "negative token count %d", p.Tokens)
	}
	n := p.Model.Experts
	for i := range p.Layers {
		l := &p.Layers[i]
		where := fmt.Sprintf("layer %d", i)
		switch {
		case l.Tokens < 0 || l.WeightedTokens < 0 || l.WeightedTokens > l.Tokens:
			return bad(where, "token counts %d (weighted %d)", l.Tokens, l.WeightedTokens)
		case len(l.Counts) != n:
			return bad(where, "%d counts for %d experts", len(l.Counts), n)
		case len(l.Mass) != n:
			return bad(where, "%d weight sums for %d experts", len(l.Mass), n)
		case len(l.Reuse) != ReuseBuckets:
			return bad(where, "%d reuse buckets, want %d", len(l.Reuse), ReuseBuckets)
		case l.CoActivation != nil && len(l.CoActivation) != pairCount(n):
			return bad(where, "%d co-activation counts for %d experts, want %d", len(l.CoActivation), n, pairCount(n))
		case l.Transitions != nil && len(l.Transitions) != TransitionDepth:
			return bad(where, "transitions from %d layers back, want %d", len(l.Transitions), TransitionDepth)
		}
		for d, tr := range l.Transitions {
			if len(tr) != n*n {
				return bad(where, "%d transition counts from %d layers back for %d experts, want %d", len(tr), d+1, n, n*n)
			}
		}
	}
	return nil
}

// Save writes the profile to path (see Encode). If writing fails, a file
// already at path is left as it was.
func (p *Profile) Save(path string) error {
	return saveFile(path, p.Encode)
}

// saveFile writes path through atomicfile with a buffer: an existing file is
// replaced only by a complete new one, and a failed encode leaves no
// truncated profile or trace to be read as a shorter one.
func saveFile(path string, encode func(io.Writer) error) error {
	if err := atomicfile.Write(path, encode); err != nil {
		return fmt.Errorf("profile: save: %w", err)
	}
	return nil
}

// Load reads a profile file (see Encode).
func Load(path string) (*Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("profile: load: %w", err)
	}
	defer f.Close()
	return decode(bufio.NewReader(f), path)
}

// LoadFor reads a profile file that must have been recorded on model: a profile
// of another model is an error that is a *MismatchError (errors.Is ErrModelMismatch).
func LoadFor(path string, model ModelID) (*Profile, error) {
	p, err := Load(path)
	if err != nil {
		return nil, err
	}
	if err := p.Check(model); err != nil {
		return nil, fmt.Errorf("profile: load %s: %w", path, err)
	}
	return p, nil
}
