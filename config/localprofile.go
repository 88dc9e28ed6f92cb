package config

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// ProfileField is an extra profile field of local accounts (progressive
// profiling). It is asked for only when a route requires its id as a
// claim (require: { claims: [phone] }) and the account has no value yet;
// the value is stored with the account and carried in the identity's
// extra claims under the id, so a route can forward it (forward.claims).
type ProfileField struct {
	ID      string `yaml:"id" doc:"Claim name of the field: lower-case letters, digits and '_', starting with a letter, at most 32 characters (e.g. phone). Routes name it in require.claims and forward.claims."`
	Label   string `yaml:"label" doc:"Label shown on the form, e.g. \"Phone number\"."`
	Kind    string `yaml:"kind" doc:"text (default), tel, email, url, country (ISO 3166-1 alpha-2 code, stored upper-case) or date (YYYY-MM-DD). Chooses the keyboard on phones and how the value is checked."`
	Max     int    `yaml:"max" doc:"Maximum length in characters. Default 64, at most 1024."`
	Pattern string `yaml:"pattern" doc:"Regular expression (Go RE2 syntax) the whole value must match, after the kind's own check, e.g. '\\+?[0-9 ]{6,20}'."`
	Hint    string `yaml:"hint" doc:"Help text shown under the field, e.g. \"Used only to reach you about your orders.\""`
}

// ProfileKinds are the accepted profile field kinds.
var ProfileKinds = []string{"text", "tel", "email", "url", "country", "date"}

// MaxProfileFields bounds the profile fields of one provider.
const MaxProfileFields = 32

// claimNameRE is the syntax of profile field ids and required claims.
var claimNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// ValidClaimName reports whether s can name a profile field or a required
// claim.
func ValidClaimName(s string) bool { return claimNameRE.MatchString(s) }

// reservedProfileIDs are names the local provider already fills from the
// account itself, or that identity headers and assertions use.
var reservedProfileIDs = map[string]bool{
	"name": true, "email": true, "email_verified": true, "sub": true, "subject": true, "iss": true, "aud": true,
	"amr": true, "acr": true, "groups": true, "roles": true, "scope": true, "scopes": true, "auth_time": true,
}

// CompileProfilePattern compiles a field's pattern anchored to the whole
// value.
func CompileProfilePattern(p string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + p + `)$`)
}

// validateProfile checks a local provider's profile fields.
func validateProfile(fields []ProfileField) []FieldError {
	var errs []FieldError
	add := func(key, hint, format string, args ...any) {
		errs = append(errs, FieldError{Key: key, Msg: fmt.Sprintf(format, args...), Hint: hint})
	}
	if len(fields) > MaxProfileFields {
		add("profile", "", "%d profile fields; at most %d", len(fields), MaxProfileFields)
	}
	seen := map[string]int{}
	for i, f := range fields {
		key := fmt.Sprintf("profile[%d]", i)
		switch {
		case f.ID == "":
			add(key+".id", "e.g. id: phone", "a profile field needs an id")
		case !ValidClaimName(f.ID):
			add(key+".id", "lower-case letters, digits and '_', starting with a letter, at most 32 characters", "invalid id %q", f.ID)
		case reservedProfileIDs[f.ID]:
			add(key+".id", "the account already provides it; choose another id", "id %q is reserved", f.ID)
		default:
			if j, ok := seen[f.ID]; ok {
				add(key+".id", fmt.Sprintf("profile[%d] has it already", j), "duplicate id %q", f.ID)
			}
			seen[f.ID] = i
		}
		label := strings.TrimSpace(f.Label)
		switch {
		case label == "":
			add(key+".label", `e.g. label: "Phone number"`, "a profile field needs a label")
		case utf8.RuneCountInString(label) > 100:
			add(key+".label", "at most 100 characters", "label too long")
		case strings.IndexFunc(label, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
			add(key+".label", "", "control character in the label")
		}
		if f.Kind != "" && !containsString(ProfileKinds, f.Kind) {
			add(key+".kind", didYouMean(f.Kind, ProfileKinds), "unknown kind %q", f.Kind)
		}
		if f.Max < 0 || f.Max > 1024 {
			add(key+".max", "between 1 and 1024", "max %d out of range", f.Max)
		}
		if f.Pattern != "" {
			if len(f.Pattern) > 1000 {
				add(key+".pattern", "at most 1000 bytes", "pattern too long")
			} else if _, err := CompileProfilePattern(f.Pattern); err != nil {
				add(key+".pattern", "Go RE2 syntax; the whole value must match", "invalid pattern: %v", err)
			}
		}
		if utf8.RuneCountInString(f.Hint) > 300 {
			add(key+".hint", "at most 300 characters", "hint too long")
		}
	}
	return errs
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// requireClaims checks the claim names a route or rule requires.
func (v *validator) requireClaims(path string, claims []string) {
	seen := map[string]bool{}
	for i, c := range claims {
		switch {
		case !ValidClaimName(c):
			v.add(fmt.Sprintf("%s[%d]", path, i), "a profile field id: lower-case letters, digits and '_', starting with a letter, at most 32 characters", "invalid claim name %q", c)
		case seen[c]:
			v.add(fmt.Sprintf("%s[%d]", path, i), "", "claim %q is listed twice", c)
		}
		seen[c] = true
	}
	if len(claims) > 16 {
		v.add(path, "", "%d required claims; at most 16", len(claims))
	}
}
