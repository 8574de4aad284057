package synth

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"

	"github.com/rotary-moe/rotary/experts"
)

// ErrUnknownPreset means a synthetic-model preset name that Presets does not
// list.
var ErrUnknownPreset = errors.New("synth: unknown synthetic model preset")

// An Option configures Write and NewWriter.
type Option interface{ apply(*config) }

type config struct {
	seed    uint64
	workers int
	write   []experts.WriteOption
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// defaultSeed seeds Write when WithSeed is not given.
const defaultSeed = 1

// WithSeed sets the seed of the weights and tokenizer: the same preset and
// seed always give the same bytes.
func WithSeed(seed uint64) Option { return optionFunc(func(c *config) { c.seed = seed }) }

// WithWorkers sets how many goroutines generate tensor data (default, and
// for 0: GOMAXPROCS, at most 8; a negative n is an error from Write and
// NewWriter). The output does not depend on it.
func WithWorkers(n int) Option { return optionFunc(func(c *config) { c.workers = n }) }

// WithWriteOptions passes options to the underlying experts.Writer
// (experts.WithAlignment, experts.WithProgress).
func WithWriteOptions(opts ...experts.WriteOption) Option {
	return optionFunc(func(c *config) { c.write = append(c.write, opts...) })
}

func newConfig(opts []Option) (config, error) {
	c := config{seed: defaultSeed}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.workers < 0 {
		return c, fmt.Errorf("synth: WithWorkers(%d) is negative", c.workers)
	}
	if c.workers == 0 {
		c.workers = min(runtime.GOMAXPROCS(0), 8)
	}
	return c, nil
}

// synthFileType is how a preset stores its weights.
type synthFileType int

const (
	// synthQ4KM is llama-quantize's Q4_K_M mix, laid out as llama-quantize
	// writes files.
	synthQ4KM synthFileType = iota
	// synthF32 is all-F32, laid out as convert_hf_to_gguf.py writes files.
	synthF32
)

// synthPreset holds the hyper-parameters of a synthetic model. Fields that
// an architecture does not use are zero.
type synthPreset struct {
	name  string
	arch  string // "qwen35moe" or "qwen3moe"
	ftype synthFileType

	layers, embd, ctxLen            int
	heads, kvHeads, headDim         int
	experts, expertsUsed, expertFFN int
	sharedFFN, ffnLength            int
	vocab, regularTokens            int // total tokens; tokens before the special ones
	ropeBase, rmsEps                float32
	ropeDims                        int
	ropeSections                    [4]int32
	fullAttnInterval                int
	ssmConv, ssmState, ssmGroups    int
	ssmTimeStepRank, ssmInner       int
}

// synthPresets are the models Write writes. The full-size ones have
// the shapes of the published checkpoints (Hugging Face config.json of
// Qwen/Qwen3.5-35B-A3B and Qwen/Qwen3-30B-A3B as llama.cpp converts them);
// the -small and -tiny-f32 ones have exactly the shapes of the llama.cpp
// oracle models in testdata; the -tiny ones are the smallest files with the
// Q4_K_M type mix of a model with more than 8 experts.
var synthPresets = []synthPreset{
	{
		name: "qwen35moe-35b-a3b", arch: "qwen35moe", ftype: synthQ4KM,
		layers: 40, embd: 2048, ctxLen: 262144,
		heads: 16, kvHeads: 2, headDim: 256,
		experts: 256, expertsUsed: 8, expertFFN: 512, sharedFFN: 512,
		vocab: 248320, regularTokens: 248044,
		ropeBase: 1e7, rmsEps: 1e-6, ropeDims: 64, ropeSections: [4]int32{11, 11, 10, 0},
		fullAttnInterval: 4,
		ssmConv:          4, ssmState: 128, ssmGroups: 16, ssmTimeStepRank: 32, ssmInner: 4096,
	},
	{
		name: "qwen3moe-30b-a3b", arch: "qwen3moe", ftype: synthQ4KM,
		layers: 48, embd: 2048, ctxLen: 40960,
		heads: 32, kvHeads: 4, headDim: 128,
		experts: 128, expertsUsed: 8, expertFFN: 768, ffnLength: 6144,
		vocab: 151936, regularTokens: 151643,
		ropeBase: 1e6, rmsEps: 1e-6,
	},
	{
		name: "qwen35moe-tiny", arch: "qwen35moe", ftype: synthQ4KM,
		layers: 2, embd: 256, ctxLen: 4096,
		heads: 2, kvHeads: 1, headDim: 256,
		experts: 16, expertsUsed: 4, expertFFN: 256, sharedFFN: 256,
		vocab: 1024, regularTokens: 1021,
		ropeBase: 1e7, rmsEps: 1e-6, ropeDims: 64, ropeSections: [4]int32{11, 11, 10, 0},
		fullAttnInterval: 2,
		ssmConv:          4, ssmState: 128, ssmGroups: 1, ssmTimeStepRank: 2, ssmInner: 256,
	},
	{
		name: "qwen3moe-tiny", arch: "qwen3moe", ftype: synthQ4KM,
		layers: 2, embd: 256, ctxLen: 4096,
		heads: 4, kvHeads: 2, headDim: 128,
		experts: 16, expertsUsed: 4, expertFFN: 256, ffnLength: 768,
		vocab: 1024, regularTokens: 1021,
		ropeBase: 1e6, rmsEps: 1e-6,
	},
	{
		name: "qwen35moe-small", arch: "qwen35moe", ftype: synthQ4KM,
		layers: 4, embd: 256, ctxLen: 4096,
		heads: 2, kvHeads: 1, headDim: 256,
		experts: 8, expertsUsed: 2, expertFFN: 256, sharedFFN: 256,
		vocab: 759, regularTokens: 756,
		ropeBase: 1e7, rmsEps: 1e-6, ropeDims: 64, ropeSections: [4]int32{11, 11, 10, 0},
		fullAttnInterval: 4,
		ssmConv:          4, ssmState: 128, ssmGroups: 1, ssmTimeStepRank: 2, ssmInner: 256,
	},
	{
		name: "qwen3moe-small", arch: "qwen3moe", ftype: synthQ4KM,
		layers: 2, embd: 256, ctxLen: 4096,
		heads: 4, kvHeads: 2, headDim: 128,
		experts: 8, expertsUsed: 2, expertFFN: 256, ffnLength: 768,
		vocab: 759, regularTokens: 756,
		ropeBase: 1e6, rmsEps: 1e-6,
	},
	{
		name: "qwen35moe-tiny-f32", arch: "qwen35moe", ftype: synthF32,
		layers: 4, embd: 64, ctxLen: 4096,
		heads: 2, kvHeads: 1, headDim: 64,
		experts: 16, expertsUsed: 4, expertFFN: 32, sharedFFN: 64,
		vocab: 759, regularTokens: 756,
		ropeBase: 1e7, rmsEps: 1e-6, ropeDims: 16, ropeSections: [4]int32{3, 3, 2, 0},
		fullAttnInterval: 2,
		ssmConv:          4, ssmState: 32, ssmGroups: 2, ssmTimeStepRank: 4, ssmInner: 128,
	},
	{
		name: "qwen3moe-tiny-f32", arch: "qwen3moe", ftype: synthF32,
		layers: 2, embd: 64, ctxLen: 4096,
		heads: 4, kvHeads: 2, headDim: 32,
		experts: 16, expertsUsed: 4, expertFFN: 64, ffnLength: 192,
		vocab: 759, regularTokens: 756,
		ropeBase: 1e6, rmsEps: 1e-6,
	},
}

// Presets lists the names Write accepts, sorted.
func Presets() []string {
	names := make([]string, len(synthPresets))
	for i, p := range synthPresets {
		names[i] = p.name
	}
	slices.Sort(names)
	return names
}

func synthLookup(name string) (*synthPreset, error) {
	for i := range synthPresets {
		if synthPresets[i].name == name {
			return &synthPresets[i], nil
		}
	}
	return nil, fmt.Errorf("%w: %q (known: %v)", ErrUnknownPreset, name, Presets())
}

// Write writes a complete synthetic GGUF model of the named preset
// to path: llama.cpp's metadata keys, a byte-level BPE tokenizer and every
// tensor, with seeded random weights of sane scale. The data is generated
// while it is written, in parallel, so memory use stays small whatever the
// model's size. Like Writer.WriteFile, it never leaves a partial file at
// path.
func Write(ctx context.Context, path, preset string, opts ...Option) error {
	w, err := NewWriter(preset, opts...)
	if err != nil {
		return err
	}
	return w.WriteFile(ctx, path)
}

// NewWriter returns the Writer that Write uses, for writing the model
// somewhere other than a file or learning its Size first.
func NewWriter(preset string, opts ...Option) (*experts.Writer, error) {
	p, err := synthLookup(preset)
	if err != nil {
		return nil, err
	}
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	w, err := experts.NewWriter(c.write...)
	if err != nil {
		return nil, err
	}
	tok := synthBuildVocab(p, c.seed)
	if err := synthSetMetadata(w, p, tok); err != nil {
		return nil, err
	}
	for _, t := range synthPlan(p) {
		fill := synthFiller(t, synthMix(c.seed, synthHashString(t.name)), c.workers)
		if err := w.AddTensor(t.name, t.typ, t.dims, fill); err != nil {
			return nil, err
		}
	}
	return w, nil
}
