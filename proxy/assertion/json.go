package assertion

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// appendString appends s to dst as a JSON string literal. Invalid UTF-8 is
// replaced by U+FFFD, as encoding/json does; U+2028 and U+2029 are escaped
// so the output is also safe to embed in JavaScript.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendName appends ,"name": for a fixed claim name that needs no escaping.
func appendName(dst []byte, name string) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	return append(dst, '"', ':')
}

func appendStringMember(dst []byte, name, value string) []byte {
	if value == "" {
		return dst
	}
	return appendString(appendName(dst, name), value)
}

func appendArrayMember(dst []byte, name string, values []string) []byte {
	if len(values) == 0 {
		return dst
	}
	dst = appendName(dst, name)
	for i, v := range values {
		if i == 0 {
			dst = append(dst, '[')
		} else {
			dst = append(dst, ',')
		}
		dst = appendString(dst, v)
	}
	return append(dst, ']')
}

func appendTimeMember(dst []byte, name string, t time.Time) []byte {
	if t.IsZero() {
		return dst
	}
	return strconv.AppendInt(appendName(dst, name), t.Unix(), 10)
}

// appendClaims appends c as a JSON object. Every member is written with a
// leading comma; the first comma is then turned into the opening brace.
func appendClaims(dst []byte, c *Claims) []byte {
	start := len(dst)
	dst = appendStringMember(dst, "iss", c.Issuer)
	dst = appendStringMember(dst, "sub", c.Subject)
	dst = appendStringMember(dst, "aud", c.Audience)
	dst = appendStringMember(dst, "gh_aud", c.IdentityAudience)
	dst = appendStringMember(dst, "gh_prov", c.Provider)
	dst = appendStringMember(dst, "email", c.Email)
	if c.EmailVerified {
		dst = append(appendName(dst, "email_verified"), "true"...)
	}
	dst = appendStringMember(dst, "name", c.Name)
	dst = appendArrayMember(dst, "groups", c.Groups)
	dst = appendArrayMember(dst, "roles", c.Roles)
	if len(c.Scopes) > 0 {
		mark := len(dst)
		dst = append(appendName(dst, "scope"), '"')
		n := 0
		for _, s := range c.Scopes {
			if !validScope(s) {
				continue
			}
			if n > 0 {
				dst = append(dst, ' ')
			}
			dst = append(dst, s...) // a valid scope-token needs no escaping
			n++
		}
		if n == 0 {
			dst = dst[:mark]
		} else {
			dst = append(dst, '"')
		}
	}
	dst = appendArrayMember(dst, "amr", c.AMR)
	dst = appendStringMember(dst, "acr", c.ACR)
	dst = appendTimeMember(dst, "auth_time", c.AuthTime)
	dst = appendArrayMember(dst, "gh_consent", c.Consent)
	if len(c.Extra) > 0 {
		names := make([]string, 0, len(c.Extra))
		for name := range c.Extra {
			if name != "" && !IsReserved(name) {
				names = append(names, name)
			}
		}
		slices.Sort(names) // deterministic output
		for _, name := range names {
			dst = append(dst, ',')
			dst = appendString(dst, name)
			dst = append(dst, ':')
			dst = appendString(dst, c.Extra[name])
		}
	}
	dst = appendTimeMember(dst, "iat", c.IssuedAt)
	dst = appendTimeMember(dst, "nbf", c.NotBefore)
	dst = appendTimeMember(dst, "exp", c.Expiry)
	dst = appendStringMember(dst, "jti", c.ID)
	if len(dst) == start {
		return append(dst, '{', '}')
	}
	dst[start] = '{'
	return append(dst, '}')
}

// decodeObject decodes a JSON object into its members, keeping each value
// raw. Unlike encoding/json it refuses duplicate member names (a classic
// source of parser differentials) and trailing data.
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	members := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("object member name is not a string")
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
		return nil, errors.New("trailing data after JSON object")
	}
	return members, nil
}

// memberString returns the string member name, reporting whether it is
// present. A present member of another type (including null) is an error.
func memberString(m map[string]json.RawMessage, name string) (string, bool, error) {
	raw, ok := m[name]
	if !ok {
		return "", false, nil
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' {
		return "", true, fmt.Errorf("%s is not a string", name)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, fmt.Errorf("%s: %v", name, err)
	}
	return s, true, nil
}

func memberStrings(m map[string]json.RawMessage, name string) ([]string, error) {
	raw, ok := m[name]
	if !ok {
		return nil, nil
	}
	var elems []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' {
		return nil, fmt.Errorf("%s is not an array", name)
	}
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if len(elems) == 0 {
		return nil, nil
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		if len(e) == 0 || e[0] != '"' {
			return nil, fmt.Errorf("%s[%d] is not a string", name, i)
		}
		if err := json.Unmarshal(e, &out[i]); err != nil {
			return nil, fmt.Errorf("%s[%d]: %v", name, i, err)
		}
	}
	return out, nil
}

// maxNumericDate is 9999-12-31T23:59:59Z; later dates are refused.
const maxNumericDate = 253402300799

// memberTime returns the NumericDate member name (RFC 7519 section 2): a
// JSON number of seconds since the epoch, possibly fractional.
func memberTime(m map[string]json.RawMessage, name string) (time.Time, bool, error) {
	raw, ok := m[name]
	if !ok {
		return time.Time{}, false, nil
	}
	s := string(raw)
	if s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return time.Time{}, true, fmt.Errorf("%s is not a number", name)
	}
	if !strings.ContainsAny(s, ".eE") {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec < 0 || sec > maxNumericDate {
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

// parseClaims builds Claims from a decoded payload, checking member types.
func parseClaims(m map[string]json.RawMessage) (*Claims, error) {
	c := new(Claims)
	var err error
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"iss", &c.Issuer},
		{"sub", &c.Subject},
		{"gh_aud", &c.IdentityAudience},
		{"gh_prov", &c.Provider},
		{"email", &c.Email},
		{"name", &c.Name},
		{"acr", &c.ACR},
		{"jti", &c.ID},
	} {
		if *f.dst, _, err = memberString(m, f.name); err != nil {
			return nil, err
		}
	}
	// aud may be an array in general JWTs; Gatehouse never emits one, so an
	// array is refused rather than searched.
	if c.Audience, _, err = memberString(m, "aud"); err != nil {
		return nil, err
	}
	if raw, ok := m["email_verified"]; ok {
		switch string(raw) {
		case "true":
			c.EmailVerified = true
		case "false":
		default:
			return nil, errors.New("email_verified is not a boolean")
		}
	}
	for _, f := range []struct {
		name string
		dst  *[]string
	}{
		{"groups", &c.Groups},
		{"roles", &c.Roles},
		{"amr", &c.AMR},
		{"gh_consent", &c.Consent},
	} {
		if *f.dst, err = memberStrings(m, f.name); err != nil {
			return nil, err
		}
	}
	scope, _, err := memberString(m, "scope")
	if err != nil {
		return nil, err
	}
	if fields := strings.Fields(scope); len(fields) > 0 {
		c.Scopes = fields
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{
		{"auth_time", &c.AuthTime},
		{"iat", &c.IssuedAt},
		{"nbf", &c.NotBefore},
		{"exp", &c.Expiry},
	} {
		if *f.dst, _, err = memberTime(m, f.name); err != nil {
			return nil, err
		}
	}
	for name, raw := range m {
		if IsReserved(name) || len(raw) == 0 || raw[0] != '"' {
			continue
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		if c.Extra == nil {
			c.Extra = make(map[string]string)
		}
		c.Extra[name] = v
	}
	return c, nil
}
