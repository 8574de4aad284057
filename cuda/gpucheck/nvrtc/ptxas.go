package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// resources is ptxas's report on one function for one architecture. Sizes
// are bytes.
type resources struct {
	Registers   int `json:"registers"`
	SpillStores int `json:"spill_stores"`
	SpillLoads  int `json:"spill_loads"`
	Shared      int `json:"shared"` // static shared memory
	Stack       int `json:"stack"`  // the stack frame, in local memory
}

func (r resources) spills() bool { return r.SpillStores > 0 || r.SpillLoads > 0 }

// buildLog is what an NVRTC program log says: ptxas's resources for every
// function it reported on, and every warning.
type buildLog struct {
	functions map[string]*resources
	warnings  []string
}

var (
	// ptxas info    : Compiling entry function 'k' for 'sm_90'
	reEntry = regexp.MustCompile(`^ptxas info\s*: Compiling entry function '([^']+)'`)
	// ptxas info    : Function properties for k
	reProperties = regexp.MustCompile(`^ptxas info\s*: Function properties for (\S+)`)
	// ptxas         .     160 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
	reFrame = regexp.MustCompile(`(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads`)
	// ptxas info    : Used 38 registers, used 1 barriers, 256 bytes smem, 384 bytes cmem[0]
	reUsed   = regexp.MustCompile(`^ptxas info\s*: Used (\d+) registers`)
	reShared = regexp.MustCompile(`(\d+) bytes smem`)
	// any line that says "warning", whoever wrote it: NVRTC has no -Werror
	reWarning = regexp.MustCompile(`(?i)\bwarning\b`)
)

// parseLog reads an NVRTC log compiled with --ptxas-options=-v. A figure
// belongs to the function the last "Compiling entry function" or "Function
// properties for" line named; ptxas reports a device function that was not
// inlined with its stack and spills but no registers of its own. A figure
// with no function before it is an error: the format is not the one this
// reads, and a silent zero would pass a spill.
func parseLog(log string) (buildLog, error) {
	b := buildLog{functions: make(map[string]*resources)}
	var current *resources
	function := func(name string) *resources {
		r := b.functions[name]
		if r == nil {
			r = &resources{}
			b.functions[name] = r
		}
		return r
	}
	for i, line := range strings.Split(log, "\n") {
		line = strings.TrimSpace(line)
		if reWarning.MatchString(line) {
			b.warnings = append(b.warnings, line)
			continue
		}
		if m := reEntry.FindStringSubmatch(line); m != nil {
			current = function(m[1])
			continue
		}
		if m := reProperties.FindStringSubmatch(line); m != nil {
			current = function(m[1])
			continue
		}
		frame, used := reFrame.FindStringSubmatch(line), reUsed.FindStringSubmatch(line)
		if frame == nil && used == nil {
			continue
		}
		if current == nil {
			return b, fmt.Errorf("log line %d: resources of no function: %q", i+1, line)
		}
		var err error
		if frame != nil {
			err = numbers(frame[1:], &current.Stack, &current.SpillStores, &current.SpillLoads)
		} else {
			err = numbers(used[1:], &current.Registers)
			if m := reShared.FindStringSubmatch(line); m != nil && err == nil {
				err = numbers(m[1:], &current.Shared)
			}
		}
		if err != nil {
			return b, fmt.Errorf("log line %d: %w", i+1, err)
		}
	}
	return b, nil
}

// numbers reads digits a regular expression matched into dst, in order.
func numbers(digits []string, dst ...*int) error {
	for i, d := range digits {
		n, err := strconv.Atoi(d)
		if err != nil {
			return err
		}
		*dst[i] = n
	}
	return nil
}
