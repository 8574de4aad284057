// Package tokenizer converts text to token ids and back for Qwen3 and
// Qwen3.5 models, exactly as llama.cpp does, from the vocabulary in a GGUF
// file (tokenizer.ggml.*).
//
// Encoding has three stages, each a reproduction of llama.cpp's:
//
//  1. Special tokens: the texts of control and user-defined tokens
//     ("<|im_start|>", ...) are cut out of the input first, the longest
//     token first, and become their ids.
//  2. Pre-tokenization splits the rest into words with the rule that
//     tokenizer.ggml.pre names, "qwen2" (Qwen3) or "qwen35" (Qwen3.5, whose
//     words also take combining marks). llama.cpp states these rules as
//     regexes with a lookahead; here they are a hand-written scanner with the
//     same leftmost-first semantics, over llama.cpp's character classes
//     (Unicode 15.1 categories, its whitespace set) and its handling of
//     invalid UTF-8 (each bad byte is read as U+FFFD).
//  3. Byte-level BPE: each word's bytes become GPT-2's printable alphabet and
//     adjacent symbols merge by rank, lowest first and leftmost on ties.
//
// Decoding maps each token back to its bytes. A token may end inside a
// multi-byte character; Decoder returns only complete UTF-8 when streaming.
//
// A Tokenizer is immutable and safe for concurrent use.
package tokenizer
