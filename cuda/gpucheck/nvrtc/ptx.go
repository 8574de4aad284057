package main

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ptxFunction is what the checks want to know of one function of a PTX
// module.
type ptxFunction struct {
	name  string
	entry bool     // a kernel (.entry), not a device function (.func)
	f64   int      // instructions in double precision
	local int      // bytes of .local memory it declares
	calls []string // the module's functions its body names: what it calls
}

// ptxModule is a PTX module's functions, in order, and the functions it
// declares .extern: calls that nothing in the module defines.
type ptxModule struct {
	functions []ptxFunction
	externs   []string
}

var (
	// .visible .entry k(   .func  (.param .b32 func_retval0) _Z6helperPKfi(
	reHeader = regexp.MustCompile(`^((?:\.\w+\s+)*)\.(entry|func)\s+(?:\([^)]*\)\s*)?([A-Za-z_$%][\w$]*)`)
	// .local .align 16 .b8 	__local_depot0[160];
	reLocal = regexp.MustCompile(`^\.local\b.*\.[bufs](8|16|32|64)\s+[\w$%]+(?:\[(\d+)\])?`)
	// an instruction with a double-precision type: add.f64, cvt.f64.f32
	reF64  = regexp.MustCompile(`\.f64\b`)
	reWord = regexp.MustCompile(`[A-Za-z_$][\w$]*`)
)

// parsePTX reads the functions of a PTX module as NVRTC writes it: a
// function's header starts a line, its body is the braces that follow (with
// nested call blocks), and a declaration ends at a ";" before any brace.
func parsePTX(ptx string) (ptxModule, error) {
	var (
		m      ptxModule
		header []string // header, extern, kind, name of the function being read
		fn     *ptxFunction
		depth  int
		words  = map[string][]string{} // every word of each body
	)
	for i, raw := range strings.Split(ptx, "\n") {
		line := strings.TrimSpace(raw)
		if j := strings.Index(line, "//"); j >= 0 {
			line = strings.TrimSpace(line[:j])
		}
		if line == "" {
			continue
		}
		switch {
		case fn != nil: // in a body
			depth += strings.Count(line, "{") - strings.Count(line, "}")
			if depth == 0 {
				m.functions = append(m.functions, *fn)
				fn = nil
				continue
			}
			if l := reLocal.FindStringSubmatch(line); l != nil {
				n, err := localBytes(l[1], l[2])
				if err != nil {
					return m, fmt.Errorf("PTX line %d: %w", i+1, err)
				}
				fn.local += n
			}
			if !strings.HasPrefix(line, ".") && reF64.MatchString(line) {
				fn.f64++
			}
			words[fn.name] = append(words[fn.name], reWord.FindAllString(line, -1)...)
		case header != nil: // between a header and its body or ";"
			if strings.HasPrefix(line, "{") {
				fn = &ptxFunction{name: header[3], entry: header[2] == "entry"}
				depth = strings.Count(line, "{") - strings.Count(line, "}")
				header = nil
			} else if strings.HasSuffix(line, ";") {
				m.declare(header)
				header = nil
			}
		default:
			h := reHeader.FindStringSubmatch(line)
			switch {
			case h == nil:
			case strings.Contains(line, "{"): // the body opens on the header's line
				fn = &ptxFunction{name: h[3], entry: h[2] == "entry"}
				depth = strings.Count(line, "{") - strings.Count(line, "}")
			case strings.HasSuffix(line, ";"): // declared on one line
				m.declare(h)
			default:
				header = h
			}
		}
	}
	if fn != nil || header != nil {
		return m, fmt.Errorf("PTX ends inside a function")
	}
	known := slices.Clone(m.externs)
	for _, f := range m.functions {
		known = append(known, f.name)
	}
	for i := range m.functions {
		f := &m.functions[i]
		for _, w := range words[f.name] {
			if w != f.name && slices.Contains(known, w) && !slices.Contains(f.calls, w) {
				f.calls = append(f.calls, w)
			}
		}
	}
	return m, nil
}

// declare notes a declaration (a header without a body): a function
// declared .extern is one nothing in the module defines.
func (m *ptxModule) declare(header []string) {
	if strings.Contains(header[1], ".extern") && !slices.Contains(m.externs, header[3]) {
		m.externs = append(m.externs, header[3])
	}
}

// localBytes is the size of a .local declaration of bits-wide elements,
// count of them ("" for one).
func localBytes(bits, count string) (int, error) {
	b, err := strconv.Atoi(bits)
	if err != nil {
		return 0, err
	}
	n := 1
	if count != "" {
		if n, err = strconv.Atoi(count); err != nil {
			return 0, err
		}
	}
	return b / 8 * n, nil
}

// reaches lists the functions f calls, directly or not, each once.
func (m ptxModule) reaches(f string) []string {
	var seen []string
	var visit func(string)
	visit = func(name string) {
		for _, g := range m.functions {
			if g.name != name {
				continue
			}
			for _, c := range g.calls {
				if !slices.Contains(seen, c) {
					seen = append(seen, c)
					visit(c)
				}
			}
		}
	}
	visit(f)
	return seen
}
