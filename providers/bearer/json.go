package bearer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// object is a decoded JSON object whose member values are kept raw.
type object map[string]json.RawMessage

// decodeObject decodes a JSON object. Unlike encoding/json it refuses
// duplicate member names (a classic source of parser differentials: one
// library reads the first "aud", another the last) and trailing data, and
// member names are matched exactly, never case-insensitively.
func decodeObject(data []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	members := make(object)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("member name is not a string")
		}
		if _, dup := members[name]; dup {
			return nil, fmt.Errorf("duplicate member %q", name)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		members[name] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	return members, nil
}

// isNull reports whether a raw member is JSON null.
func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// str returns the string member name. ok is false when the member is
// absent or null; a member of another type is an error.
func (o object) str(name string) (s string, ok bool, err error) {
	raw, present := o[name]
	if !present || isNull(raw) {
		return "", false, nil
	}
	if len(raw) == 0 || raw[0] != '"' {
		return "", true, fmt.Errorf("%s is not a string", name)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, fmt.Errorf("%s: %v", name, err)
	}
	return s, true, nil
}

// strs returns the member name as a list of strings: a JSON array of
// strings, or one string (then split on spaces when split is set, else a
// list of one). ok is false when the member is absent or null.
func (o object) strs(name string, split bool) (out []string, ok bool, err error) {
	raw, present := o[name]
	if !present || isNull(raw) {
		return nil, false, nil
	}
	switch {
	case len(raw) > 0 && raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, true, fmt.Errorf("%s: %v", name, err)
		}
		if split {
			return strings.Fields(s), true, nil
		}
		if s == "" {
			return nil, true, nil
		}
		return []string{s}, true, nil
	case len(raw) > 0 && raw[0] == '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil, true, fmt.Errorf("%s: %v", name, err)
		}
		out = make([]string, 0, len(elems))
		for i, e := range elems {
			var s string
			if len(e) == 0 || e[0] != '"' {
				return nil, true, fmt.Errorf("%s[%d] is not a string", name, i)
			}
			if err := json.Unmarshal(e, &s); err != nil {
				return nil, true, fmt.Errorf("%s[%d]: %v", name, i, err)
			}
			out = append(out, s)
		}
		return out, true, nil
	}
	return nil, true, fmt.Errorf("%s is neither a string nor a list of strings", name)
}

// maxNumericDate is 9999-12-31T23:59:59Z; later dates are refused.
const maxNumericDate = 253402300799

// time returns the NumericDate member name (RFC 7519 section 2): a JSON
// number of seconds since the epoch, possibly fractional.
func (o object) time(name string) (t time.Time, ok bool, err error) {
	raw, present := o[name]
	if !present || isNull(raw) {
		return time.Time{}, false, nil
	}
	s := string(raw)
	if s == "" || s[0] < '0' || s[0] > '9' {
		return time.Time{}, true, fmt.Errorf("%s is not a non-negative number", name)
	}
	if !strings.ContainsAny(s, ".eE") {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec > maxNumericDate {
			return time.Time{}, true, fmt.Errorf("%s is out of range", name)
		}
		return time.Unix(sec, 0), true, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= 0 && f <= maxNumericDate) {
		return time.Time{}, true, fmt.Errorf("%s is out of range", name)
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), true, nil
}

// scalarText renders a member for Identity.Extra: strings as they are,
// numbers and booleans as their JSON text, lists of strings joined with
// commas. ok is false when absent or null; objects and mixed lists are
// errors.
func (o object) scalarText(name string) (string, bool, error) {
	raw, present := o[name]
	if !present || isNull(raw) || len(raw) == 0 {
		return "", false, nil
	}
	switch c := raw[0]; {
	case c == '"':
		s, _, err := o.str(name)
		return s, true, err
	case c == '[':
		list, _, err := o.strs(name, false)
		return strings.Join(list, ","), true, err
	case c == 't' || c == 'f' || c == '-' || (c >= '0' && c <= '9'):
		return string(raw), true, nil
	}
	return "", true, fmt.Errorf("%s is an object", name)
}
