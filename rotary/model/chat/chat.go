package chat

import (
	"errors"
	"fmt"
	"strings"
)

// ErrRole reports a message role the template does not render.
var ErrRole = errors.New("chat: unsupported role")

// Role is the author of a message.
type Role string

// Roles of the ChatML conversation.
const (
	System    Role = "system"
	User      Role = "user"
	Assistant Role = "assistant"
)

// Message is one turn of a conversation.
type Message struct {
	Role    Role
	Content string
}

// Thinking selects what follows the assistant generation prefix
// "<|im_start|>assistant\n".
type Thinking int

const (
	// NoThinkBlock adds nothing: plain ChatML, as the minimal template of the
	// test models and Qwen3's template with thinking enabled (the model
	// opens <think> itself).
	NoThinkBlock Thinking = iota
	// ThinkingDisabled adds an empty, closed block "<think>\n\n</think>\n\n",
	// as Qwen3's and Qwen3.5/3.6's templates do for enable_thinking=false:
	// the model answers without reasoning.
	ThinkingDisabled
	// ThinkingEnabled opens the block, "<think>\n", as Qwen3.5/3.6's template
	// does by default: the model starts with its reasoning.
	ThinkingEnabled
)

const (
	imStart = "<|im_start|>"
	imEnd   = "<|im_end|>"
	// thinkEnd closes the reasoning block in Qwen3 and Qwen3.5 output.
	thinkEnd = "</think>"
)

// Format renders msgs in ChatML, each as "<|im_start|>role\ncontent<|im_end|>\n".
// Like the Qwen3 and Qwen3.5 templates, it drops the reasoning of assistant
// messages that precede the last user message: everything up to the last
// "</think>" and the newlines after it.
func Format(msgs []Message) (string, error) {
	lastUser := -1
	for i, m := range msgs {
		if m.Role == User {
			lastUser = i
		}
	}
	var b strings.Builder
	for i, m := range msgs {
		switch m.Role {
		case System, User, Assistant:
		default:
			return "", fmt.Errorf("%w: %q in message %d", ErrRole, m.Role, i)
		}
		content := m.Content
		if m.Role == Assistant && i < lastUser {
			_, content = SplitThinking(content)
		}
		b.WriteString(imStart)
		b.WriteString(string(m.Role))
		b.WriteByte('\n')
		b.WriteString(content)
		b.WriteString(imEnd)
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// Prompt renders msgs followed by the prefix that asks the model for the
// assistant's reply, shaped by thinking.
func Prompt(msgs []Message, thinking Thinking) (string, error) {
	s, err := Format(msgs)
	if err != nil {
		return "", err
	}
	s += imStart + string(Assistant) + "\n"
	switch thinking {
	case NoThinkBlock:
	case ThinkingDisabled:
		s += "<think>\n\n</think>\n\n"
	case ThinkingEnabled:
		s += "<think>\n"
	default:
		return "", fmt.Errorf("chat: unknown thinking mode %d", thinking)
	}
	return s, nil
}

// SplitThinking separates a reply into its reasoning (the text before the
// last "</think>", without an opening "<think>" and surrounding newlines) and
// its answer (the text after it, without leading newlines). A reply without
// "</think>" is all answer.
func SplitThinking(reply string) (reasoning, answer string) {
	k := strings.LastIndex(reply, thinkEnd)
	if k < 0 {
		return "", reply
	}
	reasoning = strings.TrimPrefix(strings.TrimLeft(reply[:k], "\n"), "<think>")
	return strings.Trim(reasoning, "\n"), strings.TrimLeft(reply[k+len(thinkEnd):], "\n")
}
