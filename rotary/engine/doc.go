// Package engine puts a Qwen MoE model together with the rotary runtime on
// the host backend: the forward pass of rotary/model computes on
// the CPU, and every routed expert it uses comes through rotary.Acquire, so
// the expert-rotation path (slots, host tier, copies, eviction) runs end to
// end on any machine.
//
// In a few lines:
//
//	e, err := engine.Open(ctx, "model.gguf", engine.WithVRAM(16<<30))
//	...
//	defer e.Close()
//	g, err := e.Generate(ctx, prompt, 100, engine.WithStream(func(text []byte) error {
//		_, err := os.Stdout.Write(text)
//		return err
//	}))
//
// Generate tokenizes the prompt (rotary/model/tokenizer, from the GGUF
// vocabulary), runs it, and samples (greedily, or with a rotary/model/sample
// Sampler) until an end-of-generation token, the token limit or a full
// sequence; rotary/model/chat renders conversations into prompts, and
// GenerateTokens takes a prompt already tokenized. A ctx that is done stops
// a generation after the token in hand: what it has comes back with Stop
// "interrupted". Each Generation carries the prefill's and the decode's
// time and counters. For control of each step, Net gives the forward pass
// itself.
//
// New opens an Engine over a GGUF model: a cuda.HostDevice whose capacity is
// the VRAM budget, a rotary.Runtime planned for that budget (minus the
// model's non-expert weights and the sequence state), and a model.Net whose
// ExpertSource is a Source. A Source asks the runtime for the union of the
// experts a forward step routes to, once per layer, waits for their copies,
// and hands the model views of the slots' bytes; the model's micro-batch is
// capped so that any such union fits a layer's slots.
//
// ModelID is the model identity that profiles and traces carry (architecture,
// shape and a hash of the tensor table), and Routes passes the routing the
// model computes to a profile.Recorder and a streaming profile.TraceWriter
// (WithRoutes has Generate mark its segments and flush it step by step).
package engine
