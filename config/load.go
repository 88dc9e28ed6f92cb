// Package config loads a Gatehouse policy file (gatehouse.yaml) into typed
// structs. Loading is strict: unknown keys, wrong types and dangling
// references are errors, and every problem is reported at once with
// file:line:column, key path and a hint. ${VAR} and ${VAR:-default} in
// values are replaced from the environment. The package knows nothing of
// HTTP and has no side effects beyond reading the one file it is given.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds a policy file (1 MiB).
const MaxFileSize = 1 << 20

// maxNodes bounds how many YAML nodes a policy may expand to, aliases
// included, so an alias bomb cannot exhaust memory (ATTACKS.md #12).
const maxNodes = 200_000

// LookupEnv finds an environment variable; os.LookupEnv is the usual one.
type LookupEnv func(string) (string, bool)

// Load reads, validates and defaults the policy file at path, expanding
// variables from the process environment. The error, if any, is Diagnostics
// (or a plain error when the file cannot be read).
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := readLimited(f, MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return Parse(path, data, os.LookupEnv)
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("policy file larger than %d bytes", limit)
	}
	return data, nil
}

// Parse is Load on bytes already read; name is used in diagnostics and env
// supplies ${VAR} values (nil means no variables are set).
func Parse(name string, data []byte, env LookupEnv) (*Config, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	src := newSource(name)
	var diags Diagnostics
	if len(data) > MaxFileSize {
		return nil, Diagnostics{{File: name, Line: 1, Col: 1, Msg: fmt.Sprintf("policy file larger than %d bytes", MaxFileSize)}}
	}

	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Diagnostics{{File: name, Line: 1, Col: 1, Msg: "policy file is empty", Hint: "start with 'version: 1'"}}
		}
		return nil, Diagnostics{syntaxDiag(name, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, Diagnostics{{File: name, Line: extra.Line, Col: extra.Column, Msg: "more than one YAML document", Hint: "a policy is one document; remove the '---' separator"}}
	}

	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	w := &walker{src: src, env: env, diags: &diags, providers: map[string]*yaml.Node{}}
	w.walk(doc, reflect.TypeFor[Config](), "")
	if w.nodes > maxNodes {
		diags.Sort()
		return nil, diags
	}
	// The walker neutralised what it reported (unknown keys removed, bad
	// values nulled), so decoding and semantic validation still run and the
	// user sees every problem at once.
	w.prune()

	cfg := &Config{Source: src}
	if err := doc.Decode(cfg); err != nil {
		// The walker checks every type the decoder needs, so this is a bug
		// in the walker; still report it as a diagnostic, never panic.
		return nil, Diagnostics{{File: name, Line: 1, Col: 1, Msg: "cannot decode policy: " + err.Error()}}
	}
	for pname, n := range w.providers {
		p := cfg.Providers[pname]
		kind := providerTypes[p.Type]
		v := reflect.New(kind.typ)
		if err := n.Decode(v.Interface()); err != nil {
			diags = append(diags, src.Diag("providers."+pname, "cannot decode provider: "+err.Error(), ""))
			continue
		}
		kind.set(&p, v.Interface())
		cfg.Providers[pname] = p
	}
	if doc.Kind != yaml.MappingNode {
		diags.Sort()
		return nil, diags
	}
	diags = append(diags, validate(cfg)...)
	if len(diags) > 0 {
		diags.Sort()
		return nil, diags
	}
	applyDefaults(cfg)
	return cfg, nil
}

// syntaxDiag turns a yaml.v3 syntax error ("yaml: line 3: ...") into a
// Diagnostic with the line number it names.
func syntaxDiag(name string, err error) Diagnostic {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 1
	if strings.HasPrefix(msg, "line ") {
		rest := msg[len("line "):]
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				line = n
				msg = strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return Diagnostic{File: name, Line: line, Col: 1, Msg: "YAML syntax error: " + msg}
}

// walker checks a YAML node tree against the Go types it will be decoded
// into: unknown and duplicate keys, scalar syntax (bools, ints, durations)
// and shapes. It also expands ${VAR} in scalars and records positions. It
// exists because yaml.v3's strict mode stops at the first problem, gives no
// column or key path, and is silently dropped by custom unmarshalers
// (go-yaml #460).
type walker struct {
	src       *Source
	env       LookupEnv
	diags     *Diagnostics
	nodes     int
	providers map[string]*yaml.Node
	// drop lists mapping keys reported as unknown, removed by prune.
	drop map[*yaml.Node]map[*yaml.Node]bool
}

// errorf reports a problem at node n and nulls n so that decoding can go on.
func (w *walker) errorf(n *yaml.Node, path, hint, format string, args ...any) {
	*w.diags = append(*w.diags, Diagnostic{
		File: w.src.File, Line: n.Line, Col: n.Column, Path: path,
		Msg: fmt.Sprintf(format, args...), Hint: hint,
	})
	if n.Kind != yaml.DocumentNode {
		*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
	}
}

// unknownKey reports key k of mapping m and schedules the pair for removal.
func (w *walker) unknownKey(m, k *yaml.Node, path, hint, format string, args ...any) {
	*w.diags = append(*w.diags, Diagnostic{
		File: w.src.File, Line: k.Line, Col: k.Column, Path: path,
		Msg: fmt.Sprintf(format, args...), Hint: hint,
	})
	if w.drop == nil {
		w.drop = map[*yaml.Node]map[*yaml.Node]bool{}
	}
	if w.drop[m] == nil {
		w.drop[m] = map[*yaml.Node]bool{}
	}
	w.drop[m][k] = true
}

// prune removes the key/value pairs reported as unknown or duplicate.
func (w *walker) prune() {
	for m, keys := range w.drop {
		out := m.Content[:0]
		for i := 0; i+1 < len(m.Content); i += 2 {
			if !keys[m.Content[i]] {
				out = append(out, m.Content[i], m.Content[i+1])
			}
		}
		m.Content = out
	}
}

var (
	durationType   = reflect.TypeFor[Duration]()
	stringListType = reflect.TypeFor[StringList]()
	providerType   = reflect.TypeFor[Provider]()
)

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	w.nodes++
	if w.nodes > maxNodes {
		if w.nodes == maxNodes+1 {
			w.errorf(n, path, "remove deeply nested aliases", "policy expands to more than %d YAML nodes", maxNodes)
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		w.walk(n.Alias, t, path)
		return
	}
	if path != "" {
		w.src.set(path, n.Line, n.Column)
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map || t.Kind() == reflect.Struct) {
		return // "key:" with no value leaves the zero value
	}
	switch {
	case t == durationType:
		if v, ok := w.scalar(n, path); ok {
			if _, err := parseDuration(v); err != nil {
				w.errorf(n, path, `use a duration like "30s", "15m" or "12h"`, "%v", err)
			}
		}
		return
	case t == stringListType:
		switch n.Kind {
		case yaml.ScalarNode:
			w.scalar(n, path)
		case yaml.SequenceNode:
			for i, c := range n.Content {
				w.walk(c, reflect.TypeFor[string](), fmt.Sprintf("%s[%d]", path, i))
			}
		default:
			w.errorf(n, path, "", "expected a string or a list of strings, got %s", kindName(n))
		}
		return
	case t == providerType:
		w.provider(n, path)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		w.walk(n, t.Elem(), path)
	case reflect.Struct:
		w.structure(n, t, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.errorf(n, path, "", "expected a mapping, got %s", kindName(n))
			return
		}
		seen := map[string]bool{}
		w.pairs(n, path, func(k, v *yaml.Node, merged bool) {
			kp := joinPath(path, k.Value)
			if seen[k.Value] && !merged {
				w.unknownKey(n, k, kp, "remove one of them", "duplicate key %q", k.Value)
				return
			}
			seen[k.Value] = true
			w.src.set(kp, k.Line, k.Column)
			w.walk(v, t.Elem(), kp)
		})
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.errorf(n, path, "write it as a list: [a, b] or one '- item' per line", "expected a list, got %s", kindName(n))
			return
		}
		for i, c := range n.Content {
			w.walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.String:
		w.scalar(n, path)
	case reflect.Bool:
		if v, ok := w.scalar(n, path); ok {
			if v != "true" && v != "false" {
				w.errorf(n, path, "use true or false", "expected a boolean, got %q", v)
			} else {
				n.Tag = "!!bool"
			}
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		if v, ok := w.scalar(n, path); ok {
			if _, err := strconv.Atoi(v); err != nil {
				w.errorf(n, path, "", "expected a whole number, got %q", v)
			} else {
				n.Tag = "!!int"
			}
		}
	default:
		w.errorf(n, path, "", "unsupported value")
	}
}

// scalar checks that n is a scalar, expands ${VAR} in it and pins its tag to
// a string, so that a secret such as "null" or "0x1" stays a string. Callers
// that need another type re-tag after checking the syntax.
func (w *walker) scalar(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		w.errorf(n, path, "", "expected a single value, got %s", kindName(n))
		return "", false
	}
	if n.Tag == "!!null" {
		n.Value = ""
	}
	v, err := expandEnv(n.Value, w.env)
	if err != nil {
		w.errorf(n, path, "set the variable, or give a default with ${VAR:-default}", "%v", err)
		return "", false
	}
	n.Value = v
	n.Tag = "!!str"
	n.Style &^= yaml.TaggedStyle
	return v, true
}

// pairs calls fn for every key/value of a mapping, following "<<" merge keys.
func (w *walker) pairs(n *yaml.Node, path string, fn func(k, v *yaml.Node, merged bool)) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.Tag == "!!merge" {
			var srcs []*yaml.Node
			if v.Kind == yaml.SequenceNode {
				srcs = v.Content
			} else {
				srcs = []*yaml.Node{v}
			}
			for _, s := range srcs {
				for s.Kind == yaml.AliasNode {
					s = s.Alias
				}
				if s.Kind != yaml.MappingNode {
					w.errorf(s, path, "", "a merge key must point to a mapping")
					continue
				}
				w.nodes += len(s.Content)
				if w.nodes > maxNodes {
					w.errorf(s, path, "remove deeply nested aliases", "policy expands to more than %d YAML nodes", maxNodes)
					return
				}
				w.pairs(s, path, func(k, v *yaml.Node, _ bool) { fn(k, v, true) })
			}
			continue
		}
		if k.Kind != yaml.ScalarNode {
			w.unknownKey(n, k, path, "", "keys must be plain strings")
			continue
		}
		fn(k, v, false)
	}
}

type fieldInfo struct {
	name string
	typ  reflect.Type
}

// yamlFields lists a struct's YAML keys, following ",inline" embedding.
func yamlFields(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if opts == "inline" {
			out = append(out, yamlFields(f.Type)...)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, fieldInfo{name, f.Type})
	}
	return out
}

func (w *walker) structure(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.MappingNode {
		w.errorf(n, path, "", "expected a mapping (key: value), got %s", kindName(n))
		return
	}
	fields := yamlFields(t)
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	seen := map[string]bool{}
	w.pairs(n, path, func(k, v *yaml.Node, merged bool) {
		kp := joinPath(path, k.Value)
		var fi *fieldInfo
		for i := range fields {
			if fields[i].name == k.Value {
				fi = &fields[i]
				break
			}
		}
		if fi == nil {
			where := "here"
			if path != "" {
				where = "in " + path
			}
			w.unknownKey(n, k, kp, didYouMean(k.Value, names), "unknown key %q %s", k.Value, where)
			return
		}
		if seen[k.Value] {
			if !merged {
				w.unknownKey(n, k, kp, "remove one of them", "duplicate key %q", k.Value)
			}
			return
		}
		seen[k.Value] = true
		w.src.set(kp, k.Line, k.Column)
		w.walk(v, fi.typ, kp)
	})
}

// provider checks a provider entry against the settings of its type.
func (w *walker) provider(n *yaml.Node, path string) {
	if n.Kind != yaml.MappingNode {
		w.errorf(n, path, "", "expected a mapping with a type key, got %s", kindName(n))
		return
	}
	var typeNode *yaml.Node
	w.pairs(n, path, func(k, v *yaml.Node, _ bool) {
		if k.Value == "type" && typeNode == nil {
			typeNode = v
		}
	})
	known := make([]string, 0, len(providerTypes))
	for k := range providerTypes {
		known = append(known, k)
	}
	if typeNode == nil {
		w.errorf(n, path+".type", didYouMean("", known), "provider has no type")
		return
	}
	typ, ok := w.scalar(typeNode, path+".type")
	if !ok {
		return
	}
	kind, ok := providerTypes[typ]
	if !ok {
		w.errorf(typeNode, path+".type", didYouMean(typ, known), "unknown provider type %q", typ)
		return
	}
	w.structure(n, kind.typ, path)
	name := strings.TrimPrefix(path, "providers.")
	w.providers[name] = n
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	if strings.ContainsAny(key, ".[]") {
		key = strconv.Quote(key)
	}
	return parent + "." + key
}

// expandEnv replaces ${VAR} and ${VAR:-default}; "$$" is a literal "$". A
// "$" not followed by "{" or "$" is kept as is, so passwords and regexes
// with a lone "$" need no escaping.
func expandEnv(s string, env LookupEnv) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf("unclosed ${ in %q", s)
			}
			expr := s[i+2 : i+2+end]
			name, def, hasDef := strings.Cut(expr, ":-")
			if !validEnvName(name) {
				return "", fmt.Errorf("invalid variable name %q", name)
			}
			v, ok := env(name)
			if !ok || (v == "" && hasDef) {
				if !hasDef {
					return "", fmt.Errorf("environment variable %s is not set", name)
				}
				v = def
			}
			b.WriteString(v)
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}
