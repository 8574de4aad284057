// Package chat renders conversations in ChatML, the prompt format of the
// Qwen3 and Qwen3.5/3.6 models:
//
//	<|im_start|>system
//	You are a helpful assistant.<|im_end|>
//	<|im_start|>user
//	What is the capital of France?<|im_end|>
//	<|im_start|>assistant
//
// The reply is generated after the assistant prefix, and the special tokens
// <|im_start|> and <|im_end|> are recognized when the prompt is tokenized.
// The Qwen templates differ only after that prefix, in how they treat the
// model's <think> reasoning block (see Thinking):
//
//	template (GGUF tokenizer.chat_template)   thinking on        thinking off
//	Qwen3 (qwen3moe)                          NoThinkBlock       ThinkingDisabled
//	Qwen3.5 / Qwen3.6 (qwen35moe)             ThinkingEnabled    ThinkingDisabled
//	test models' minimal template             NoThinkBlock       -
//
// Tools and images are not rendered.
package chat
