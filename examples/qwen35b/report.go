package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/rotary-moe/rotary/profile"
	"github.com/rotary-moe/rotary/rotary"
	"github.com/rotary-moe/rotary/rotary/engine"
)

// describePlan writes where the experts live, in two lines.
func describePlan(w io.Writer, path string, id profile.ModelID, p *rotary.Plan) {
	minSlots, maxSlots, pinned, experts := -1, 0, 0, 0
	for _, l := range p.Layers {
		if minSlots < 0 || l.Slots < minSlots {
			minSlots = l.Slots
		}
		maxSlots = max(maxSlots, l.Slots)
		pinned += len(l.Pinned)
		experts += l.Experts
	}
	slots := fmt.Sprint(minSlots)
	if maxSlots != minSlots {
		slots = fmt.Sprintf("%d-%d", minSlots, maxSlots)
	}
	fmt.Fprintf(w, "model   %s: %s, %d layers, top-%d of %d experts, %s of them\n",
		path, id.Arch, id.Layers, id.ExpertsUsed, id.Experts, rotary.FormatSize(p.TotalExpert))
	fmt.Fprintf(w, "budget  VRAM %s: %s non-expert, %s reserve, %s experts (%d pinned, %s slots per layer)",
		rotary.FormatSize(p.VRAM), rotary.FormatSize(p.NonExpert), rotary.FormatSize(p.Reserve),
		rotary.FormatSize(p.Pinned+p.Slots), pinned, slots)
	switch p.Host.Mode {
	case rotary.HostLRU:
		fmt.Fprintf(w, "; host %s: copies of %d of %d experts\n", rotary.FormatSize(p.Host.Bytes), p.Host.Entries, experts)
	default:
		fmt.Fprintf(w, "; host: the file's mapping (%s of experts)\n", rotary.FormatSize(p.Host.Bytes))
	}
}

// report writes the speeds and the runtime's counters: each phase's, and
// total's since the engine was opened.
func report(w io.Writer, g *engine.Generation, total engine.Stats, mode rotary.HostMode) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, p := range []struct {
		name string
		ph   engine.Phase
	}{{"prefill", g.Prefill}, {"decode", g.Decode}} {
		fmt.Fprintf(tw, "%s\t%d tokens in %s\t%.1f tokens/s\tVRAM hit rate %s\n",
			p.name, p.ph.Tokens, seconds(p.ph.Elapsed), p.ph.TokensPerSecond(), percent(p.ph.Stats.VRAM))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch g.Stop {
	case "end":
		fmt.Fprintln(w, "        (the model ended the text before -n)")
	case "context":
		fmt.Fprintln(w, "        (the context is full: -ctx)")
	case "interrupted":
		fmt.Fprintln(w, "        (interrupted: the figures are the run's so far)")
	}
	s := total.Stats
	fmt.Fprintf(w, "experts VRAM hit rate %s: %d hits (%d on pinned experts), %d misses copied in\n",
		percent(s.VRAM), s.VRAM.Hits, s.PinnedHits, s.VRAM.Misses)
	if mode == rotary.HostLRU {
		fmt.Fprintf(w, "        host hit rate %s: %d misses served from pinned copies, %d read from the file first\n",
			percent(s.Host), s.Host.Hits, s.Host.Misses)
		fmt.Fprintf(w, "moved   %s to the device in %d copies; %s read from the file into host memory: %d misses + %d experts of the warm-up\n",
			rotary.FormatSize(s.VRAM.Bytes), s.VRAM.Misses, rotary.FormatSize(s.Host.Bytes), s.Host.Misses, s.HostAhead)
	} else {
		fmt.Fprintf(w, "        host: all %d misses served from the file's mapping\n", s.Host.Hits)
		fmt.Fprintf(w, "moved   %s to the device in %d copies\n", rotary.FormatSize(s.VRAM.Bytes), s.VRAM.Misses)
	}
	if p := s.Prefetch; s.Prefetched > 0 || p.Predicted > 0 {
		fmt.Fprintf(w, "ahead   %d experts prefetched: %d useful (%s), %d late, %d wasted (%s); predictions' recall %.1f%%, precision %.1f%%\n",
			s.Prefetched, p.Useful, rotary.FormatSize(p.UsefulBytes), p.Late, p.Wasted, rotary.FormatSize(p.WastedBytes),
			100*p.Recall(), 100*p.Precision())
	}
	fmt.Fprintf(w, "waited  %s for experts in %d acquires (copies %s, compute stalled %s, host blocked %s)\n",
		seconds(total.Wait), total.Acquires, seconds(s.TransferTime), seconds(s.StallTime), seconds(s.HostWait))
	return nil
}

func percent(t rotary.TierStats) string {
	if t.Hits+t.Misses == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*t.HitRate())
}

func seconds(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// jsonResult is -json's object.
type jsonResult struct {
	Model           string          `json:"model"`
	ModelID         profile.ModelID `json:"model_id"`
	PromptTokens    []int32         `json:"prompt_tokens"`
	GeneratedTokens []int32         `json:"generated_tokens"`
	Text            string          `json:"text"`
	Stop            string          `json:"stop"`
	// Interrupted is a run a signal stopped: the figures are so far.
	Interrupted bool         `json:"interrupted"`
	Stats       jsonStats    `json:"stats"`
	Plan        *rotary.Plan `json:"plan"`
}

type jsonStats struct {
	Prefill jsonPhase `json:"prefill"`
	Decode  jsonPhase `json:"decode"`
	Experts jsonTiers `json:"experts"`
}

type jsonPhase struct {
	Tokens          int       `json:"tokens"`
	Seconds         float64   `json:"seconds"`
	TokensPerSecond float64   `json:"tokens_per_second"`
	Experts         jsonTiers `json:"experts"`
}

type jsonTiers struct {
	VRAM            jsonTier     `json:"vram"`
	PinnedHits      uint64       `json:"pinned_hits"`
	Host            jsonTier     `json:"host"`
	Prefetched      uint64       `json:"prefetched"`
	Prefetch        jsonPrefetch `json:"prefetch"`
	HostAhead       uint64       `json:"host_ahead"`
	Acquires        int          `json:"acquires"`
	WaitSeconds     float64      `json:"wait_seconds"`
	TransferSeconds float64      `json:"transfer_seconds"`
	StallSeconds    float64      `json:"stall_seconds"`
	HostWaitSeconds float64      `json:"host_wait_seconds"`
	BytesToDevice   int64        `json:"bytes_to_device"`
	BytesFromFile   int64        `json:"bytes_from_file"`
}

type jsonPrefetch struct {
	Useful      uint64  `json:"useful"`
	Late        uint64  `json:"late"`
	Wasted      uint64  `json:"wasted"`
	UsefulBytes int64   `json:"useful_bytes"`
	WastedBytes int64   `json:"wasted_bytes"`
	Recall      float64 `json:"recall"`
	Precision   float64 `json:"precision"`
}

type jsonTier struct {
	Hits    uint64  `json:"hits"`
	Misses  uint64  `json:"misses"`
	HitRate float64 `json:"hit_rate"`
}

func newJSONResult(path string, id profile.ModelID, plan *rotary.Plan, g *engine.Generation, total engine.Stats) jsonResult {
	return jsonResult{
		Model: path, ModelID: id,
		PromptTokens: g.Prompt, GeneratedTokens: nonNil(g.Tokens), Text: g.Text, Stop: g.Stop,
		Interrupted: g.Stop == "interrupted",
		Stats:       jsonStats{Prefill: newJSONPhase(g.Prefill), Decode: newJSONPhase(g.Decode), Experts: newJSONTiers(total)},
		Plan:        plan,
	}
}

func nonNil(ids []int32) []int32 {
	if ids == nil {
		return []int32{}
	}
	return ids
}

func newJSONPhase(p engine.Phase) jsonPhase {
	return jsonPhase{Tokens: p.Tokens, Seconds: p.Elapsed.Seconds(), TokensPerSecond: p.TokensPerSecond(), Experts: newJSONTiers(p.Stats)}
}

func newJSONTiers(s engine.Stats) jsonTiers {
	return jsonTiers{
		VRAM:       jsonTier{Hits: s.VRAM.Hits, Misses: s.VRAM.Misses, HitRate: s.VRAM.HitRate()},
		PinnedHits: s.PinnedHits,
		Host:       jsonTier{Hits: s.Host.Hits, Misses: s.Host.Misses, HitRate: s.Host.HitRate()},
		Prefetched: s.Prefetched, HostAhead: s.HostAhead, Acquires: s.Acquires,
		Prefetch: jsonPrefetch{Useful: s.Prefetch.Useful, Late: s.Prefetch.Late, Wasted: s.Prefetch.Wasted,
			UsefulBytes: s.Prefetch.UsefulBytes, WastedBytes: s.Prefetch.WastedBytes,
			Recall: s.Prefetch.Recall(), Precision: s.Prefetch.Precision()},
		WaitSeconds: s.Wait.Seconds(), TransferSeconds: s.TransferTime.Seconds(),
		StallSeconds: s.StallTime.Seconds(), HostWaitSeconds: s.HostWait.Seconds(),
		BytesToDevice: s.VRAM.Bytes, BytesFromFile: s.Host.Bytes,
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
