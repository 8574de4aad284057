package chat_test

import (
	"fmt"

	"github.com/rotary-moe/rotary/rotary/model/chat"
)

func ExamplePrompt() {
	msgs := []chat.Message{
		{Role: chat.System, Content: "You are a helpful assistant."},
		{Role: chat.User, Content: "What is the capital of France?"},
	}
	prompt, err := chat.Prompt(msgs, chat.ThinkingDisabled)
	if err != nil {
		panic(err)
	}
	fmt.Print(prompt)
	// Output:
	// <|im_start|>system
	// You are a helpful assistant.<|im_end|>
	// <|im_start|>user
	// What is the capital of France?<|im_end|>
	// <|im_start|>assistant
	// <think>
	//
	// </think>
}

func ExampleSplitThinking() {
	reasoning, answer := chat.SplitThinking("<think>\nThe user asks for a capital.\n</think>\n\nParis.")
	fmt.Printf("%q %q\n", reasoning, answer)
	// Output: "The user asks for a capital." "Paris."
}
