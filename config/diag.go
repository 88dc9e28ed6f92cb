package config

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a line and column in a policy file (both 1-based).
type Pos struct{ Line, Col int }

// Source remembers where each key path of a loaded policy was written, so
// that diagnostics found later (for example while compiling the policy) can
// still name file:line:column.
type Source struct {
	// File is the file name as given to Load or Parse.
	File string
	pos  map[string]Pos
}

func newSource(file string) *Source { return &Source{File: file, pos: map[string]Pos{}} }

func (s *Source) set(path string, line, col int) {
	if _, ok := s.pos[path]; !ok {
		s.pos[path] = Pos{line, col}
	}
}

// At returns the position of a key path such as "routes[3].allow.roles[0]".
// When the path itself was not written (a missing key), it returns the
// position of its nearest written parent.
func (s *Source) At(path string) Pos {
	if s == nil {
		return Pos{}
	}
	for p := path; p != ""; p = parentPath(p) {
		if pos, ok := s.pos[p]; ok {
			return pos
		}
	}
	return Pos{1, 1}
}

// Diag builds a Diagnostic for a key path.
func (s *Source) Diag(path, msg, hint string) Diagnostic {
	d := Diagnostic{Path: path, Msg: msg, Hint: hint}
	if s != nil {
		d.File = s.File
		p := s.At(path)
		d.Line, d.Col = p.Line, p.Col
	}
	return d
}

// parentPath strips the last element of a key path: "a.b[2]" -> "a.b",
// "a.b" -> "a".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// Diagnostic is one problem in a policy file.
type Diagnostic struct {
	File      string
	Line, Col int
	// Path is the key path, e.g. routes[3].allow.roles.
	Path string
	// Msg says what is wrong.
	Msg string
	// Hint says how to fix it; may be empty.
	Hint string
}

// Error formats the diagnostic as "file:line:col: path: msg (hint)".
func (d Diagnostic) Error() string {
	var b strings.Builder
	if d.File != "" {
		fmt.Fprintf(&b, "%s:%d:%d: ", d.File, d.Line, d.Col)
	}
	if d.Path != "" {
		b.WriteString(d.Path)
		b.WriteString(": ")
	}
	b.WriteString(d.Msg)
	if d.Hint != "" {
		b.WriteString(" (")
		b.WriteString(d.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Diagnostics is every problem found in a policy, sorted by position. It is
// the error type returned by Load, Parse and policy compilation.
type Diagnostics []Diagnostic

// Error lists all diagnostics, one per line.
func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.Error()
	}
	return strings.Join(lines, "\n")
}

// Sort orders diagnostics by file position, then path, for stable output.
func (ds Diagnostics) Sort() {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return a.Path < b.Path
	})
}

// Suggest returns the candidate closest to word by edit distance, or "" when
// none is close enough to be a plausible typo.
func Suggest(word string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := levenshtein(strings.ToLower(word), strings.ToLower(c))
		if bestD < 0 || d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(word) <= 3 {
		limit = 1
	}
	if bestD < 0 || bestD > limit || bestD >= len(word) {
		return ""
	}
	return best
}

// didYouMean formats a Suggest result as a hint.
func didYouMean(word string, candidates []string) string {
	if s := Suggest(word, candidates); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	if len(candidates) > 0 && len(candidates) <= 12 {
		sorted := append([]string(nil), candidates...)
		sort.Strings(sorted)
		return "one of: " + strings.Join(sorted, ", ")
	}
	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
