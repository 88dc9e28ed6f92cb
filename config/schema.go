package config

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
)

// Schema returns a JSON Schema (draft 2020-12) of gatehouse.yaml, generated
// from the config types and their doc tags, so that editors can complete
// and check policies. Unknown keys are refused (additionalProperties:
// false), as the loader does.
func Schema() ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}}
	root := g.object(reflect.TypeFor[Config]())
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = "https://gatehouse.dev/schema/gatehouse.schema.json"
	root["title"] = "Gatehouse policy"
	root["required"] = []string{"version"}
	props := root["properties"].(map[string]any)
	props["version"] = map[string]any{"const": 1, "description": "Policy format version. Must be 1."}
	props["providers"] = map[string]any{
		"type":                 "object",
		"description":          "Identity providers by name. The type key selects the provider's settings.",
		"additionalProperties": g.providers(),
	}
	props["audiences"] = map[string]any{
		"type":                 "object",
		"description":          "How each audience signs in.",
		"propertyNames":        map[string]any{"enum": audienceKinds},
		"additionalProperties": g.schemaFor(reflect.TypeFor[Audience]()),
	}
	if len(g.defs) > 0 {
		root["$defs"] = g.defs
	}
	return json.MarshalIndent(root, "", "  ")
}

type schemaGen struct{ defs map[string]any }

var enums = map[string][]string{
	"Log.Format": {"json", "console"}, "Log.Level": {"debug", "info", "warn", "error"}, "Log.User": {"hash", "omit", "plain"},
	"Session.Store": {"cookie", "server"}, "Session.SameSite": {"lax", "strict", "none"},
	"Match.PathType": {"prefix", "exact", "regex"}, "SubRule.PathType": {"prefix", "exact", "regex"},
	"Forward.UserClaim":    {"sub", "email", "name"},
	"SAMLProvider.Binding": {"redirect", "post"}, "SAMLProvider.SLOBinding": {"redirect", "post"},
	"SAMLProvider.NameIDFormat": {"email", "persistent", "transient", "unspecified"},
	"OIDCOptions.ResponseMode":  {"query", "form_post"},
}

func (g *schemaGen) providers() any {
	var names []string
	for n := range providerTypes {
		names = append(names, n)
	}
	sort.Strings(names)
	var oneOf []any
	for _, n := range names {
		s := g.object(providerTypes[n].typ)
		s["properties"].(map[string]any)["type"] = map[string]any{"const": n, "description": "Provider type."}
		s["required"] = []string{"type"}
		oneOf = append(oneOf, s)
	}
	return map[string]any{"oneOf": oneOf}
}

func (g *schemaGen) schemaFor(t reflect.Type) map[string]any {
	switch t {
	case durationType:
		return map[string]any{"type": "string", "pattern": `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`, "description": "A duration such as 30s, 15m or 12h."}
	case stringListType:
		return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "array", "items": map[string]any{"type": "string"}}}}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schemaFor(t.Elem())
	case reflect.Struct:
		name := t.Name()
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = map[string]any{} // placeholder against recursion
			g.defs[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/$defs/" + name}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": g.schemaFor(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schemaFor(t.Elem())}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return map[string]any{"type": "integer"}
	}
	return map[string]any{}
}

// object describes a struct: its yaml keys, doc tags and enums.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			if tag == "-" || !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if opts == "inline" {
				walk(f.Type)
				continue
			}
			s := g.schemaFor(f.Type)
			if doc := f.Tag.Get("doc"); doc != "" {
				if _, isRef := s["$ref"]; isRef {
					s = map[string]any{"allOf": []any{s}, "description": doc}
				} else {
					s["description"] = doc
				}
			}
			if e, ok := enums[t.Name()+"."+f.Name]; ok {
				s["enum"] = e
			}
			props[name] = s
		}
	}
	walk(t)
	return map[string]any{"type": "object", "properties": props, "additionalProperties": false}
}
