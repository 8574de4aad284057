package chat

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary/model/tokenizer"
)

var question = []Message{{User, "What is the capital of France?"}}

// TestOracleChatSequence checks the prompt against the token sequence "chat"
// of the oracle goldens, which llama.cpp tokenized for both architectures.
func TestOracleChatSequence(t *testing.T) {
	want := []int32{757, 84, 494, 198, 54, 71, 267, 334, 264, 685, 279, 683, 30, 758, 198, 757, 64, 82, 82, 711, 384, 198}
	prompt, err := Prompt(question, NoThinkBlock)
	require.NoError(t, err)
	assert.Equal(t, "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n", prompt)

	// The oracle's tokenizer case for the whole exchange.
	exchange, err := Format(append(question, Message{Assistant, "The capital of France is Paris."}))
	require.NoError(t, err)
	wantExchange := append(want[:len(want):len(want)], 51, 329, 685, 279, 683, 334, 345, 296, 274, 13, 758, 198)

	for _, model := range []string{"qwen3moe-tiny-q8_0.gguf", "qwen35moe-tiny-f32.gguf"} {
		f, err := experts.Open(filepath.Join("..", "..", "..", "experts", "testdata", model))
		require.NoError(t, err)
		tok, err := tokenizer.FromGGUF(f)
		require.NoError(t, f.Close())
		require.NoError(t, err)
		assert.Equal(t, want, tok.Encode(prompt), model)
		assert.Equal(t, wantExchange, tok.Encode(exchange), model)
	}
}

func TestThinkingModes(t *testing.T) {
	const base = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
	for mode, suffix := range map[Thinking]string{
		NoThinkBlock:     "",
		ThinkingDisabled: "<think>\n\n</think>\n\n",
		ThinkingEnabled:  "<think>\n",
	} {
		got, err := Prompt(question, mode)
		require.NoError(t, err)
		assert.Equal(t, base+suffix, got)
	}
	_, err := Prompt(question, Thinking(7))
	assert.Error(t, err)
}

func TestFormat(t *testing.T) {
	msgs := []Message{
		{System, "Be brief."},
		{User, "2+2?"},
		{Assistant, "<think>\nEasy.\n</think>\n\n4"},
		{User, "3+3?"},
		{Assistant, "<think>\nAgain.\n</think>\n\n6"},
	}
	got, err := Format(msgs)
	require.NoError(t, err)
	assert.Equal(t, "<|im_start|>system\nBe brief.<|im_end|>\n"+
		"<|im_start|>user\n2+2?<|im_end|>\n"+
		"<|im_start|>assistant\n4<|im_end|>\n"+ // reasoning before the last user turn is dropped
		"<|im_start|>user\n3+3?<|im_end|>\n"+
		"<|im_start|>assistant\n<think>\nAgain.\n</think>\n\n6<|im_end|>\n", got)

	empty, err := Format(nil)
	require.NoError(t, err)
	assert.Empty(t, empty)

	_, err = Format([]Message{{User, "hi"}, {"tool", "{}"}})
	assert.ErrorIs(t, err, ErrRole)
	_, err = Prompt([]Message{{"", "hi"}}, NoThinkBlock)
	assert.ErrorIs(t, err, ErrRole)
}

func TestSplitThinking(t *testing.T) {
	for reply, want := range map[string][2]string{
		"<think>\nLet me see.\n</think>\n\nParis.": {"Let me see.", "Paris."},
		"Let me see.\n</think>\n\nParis.":          {"Let me see.", "Paris."}, // prompt opened <think>
		"Paris.":                                   {"", "Paris."},
		"<think>\n\n</think>\n\nParis.":            {"", "Paris."},
		"a</think>b</think>\nc":                    {"a</think>b", "c"},
	} {
		reasoning, answer := SplitThinking(reply)
		assert.Equal(t, want, [2]string{reasoning, answer}, "%q", reply)
	}
}
