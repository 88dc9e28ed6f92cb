package oidc

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// rawClaims decodes a verified ID token's claims, keeping numbers exact.
func rawClaims(t *gooidc.IDToken) (map[string]any, error) {
	var m map[string]any
	err := decodeClaims(t.Claims, &m)
	return m, err
}

// decodeClaims runs a go-oidc Claims method into a map with json.Number
// numbers (a numeric id must not become 1.2e+07).
func decodeClaims(claims func(any) error, m *map[string]any) error {
	var raw json.RawMessage
	if err := claims(&raw); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(m)
}

// lookup finds a claim by its exact name or, failing that, by a dotted
// path into nested objects (realm_access.roles). Namespaced claims such as
// https://example.com/groups are found by their exact name first.
func lookup(c map[string]any, name string) (any, bool) {
	if name == "" {
		return nil, false
	}
	if v, ok := c[name]; ok {
		return v, true
	}
	if !strings.Contains(name, ".") {
		return nil, false
	}
	var cur any = c
	for _, part := range strings.Split(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// claimString returns a string claim ("" when absent or not a string).
func claimString(c map[string]any, name string) string {
	v, _ := lookup(c, name)
	s, _ := v.(string)
	return s
}

// claimStrings returns a list claim: an array of strings (other elements
// skipped) or a single string as a one-element list.
func claimStrings(c map[string]any, name string) []string {
	v, _ := lookup(c, name)
	switch x := v.(type) {
	case string:
		if x == "" {
			return nil
		}
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	return nil
}

// claimTrue is true only for a boolean true or the string "true" (as some
// providers send it); absent, false or anything else is false.
func claimTrue(c map[string]any, name string) bool {
	v, _ := lookup(c, name)
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return strings.EqualFold(x, "true")
	}
	return false
}

// claimTime reads a NumericDate claim.
func claimTime(c map[string]any, name string) time.Time {
	v, _ := lookup(c, name)
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}
	}
	if i, err := n.Int64(); err == nil && i > 0 {
		return time.Unix(i, 0)
	}
	if f, err := n.Float64(); err == nil && f > 0 {
		return time.Unix(int64(f), 0)
	}
	return time.Time{}
}

// claimText renders any claim value as text for Identity.Extra: strings
// as they are, lists of strings comma-joined, anything else as JSON.
func claimText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case []any:
		parts := make([]string, 0, len(x))
		allStrings := true
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				allStrings = false
				break
			}
			parts = append(parts, s)
		}
		if allStrings {
			return strings.Join(parts, ",")
		}
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// identity maps verified claims to an identity keyed on (iss, sub). The
// email counts as verified only when the email_verified claim says so.
func (p *Provider) identity(iss, sub string, c map[string]any) *identity.Identity {
	id := &identity.Identity{
		Subject:  sub,
		Issuer:   iss,
		Provider: p.name,
		Email:    claimString(c, p.s.claims.Email),
		Name:     claimString(c, p.s.claims.Name),
		Groups:   claimStrings(c, p.s.claims.Groups),
		AMR:      claimStrings(c, "amr"),
		ACR:      claimString(c, "acr"),
		AuthTime: claimTime(c, "auth_time"),
	}
	id.EmailVerified = id.Email != "" && claimTrue(c, p.s.claims.EmailVerified)
	for _, name := range p.s.claims.Extra {
		if v, ok := lookup(c, name); ok {
			if id.Extra == nil {
				id.Extra = map[string]string{}
			}
			id.Extra[name] = claimText(v)
		}
	}
	return id
}
