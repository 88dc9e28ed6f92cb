package config

import (
	"fmt"
	"reflect"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as a Go duration string ("30s",
// "12h", "1h30m").
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses a duration string. The loader has already checked the
// syntax with a precise position; this only converts.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return v, nil
}

// StringList accepts either one string or a list of strings.
type StringList []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			*l = nil
			return nil
		}
		*l = StringList{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(StringList, 0, len(n.Content))
		for _, c := range n.Content {
			out = append(out, c.Value)
		}
		*l = out
		return nil
	}
	return fmt.Errorf("expected a string or a list of strings")
}

type providerKind struct {
	typ reflect.Type
	set func(*Provider, any)
}

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

// ProviderTypes returns the known provider type names and the struct type
// holding each one's settings (used by the schema generator).
func ProviderTypes() map[string]reflect.Type {
	out := make(map[string]reflect.Type, len(providerTypes))
	for k, v := range providerTypes {
		out[k] = v.typ
	}
	return out
}
