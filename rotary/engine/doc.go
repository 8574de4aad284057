// Package engine puts a Qwen MoE model together with the rotary runtime on
// the host backend: the forward pass of rotary/model computes on
// the CPU, and every routed expert it uses comes through rotary.Acquire, so
// the expert-rotation path (slots, host tier, copies, eviction) runs end to
// end on any machine.
//
// New opens an Engine over a GGUF model: a cuda.HostDevice whose capacity is
// the VRAM budget, a rotary.Runtime planned for that budget (minus the
// model's non-expert weights and the sequence state), and a model.Model whose
// ExpertSource is a Source. A Source asks the runtime for the union of the
// experts a forward step routes to, once per layer, waits for their copies,
// and hands the model views of the slots' bytes; the model's micro-batch is
// capped so that any such union fits a layer's slots.
//
// ModelID is the model identity that profiles and traces carry (architecture,
// shape and a hash of the tensor table), and Routes passes the routing the
// model computes to a profile.Recorder and a streaming profile.TraceWriter.
package engine
