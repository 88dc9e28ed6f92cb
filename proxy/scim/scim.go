// Package scim is a stateless SCIM 2.0 (RFC 7643, RFC 7644) endpoint that
// identity providers call to provision and deprovision people.
//
// Gatehouse keeps no user directory: sessions come from the IdP at sign-in.
// The endpoint therefore stores nothing. It understands enough SCIM for the
// provisioning connectors of Okta, Entra ID and OneLogin to work, and turns
// what matters to Gatehouse, a deactivation (active=false) or a deletion,
// into a revocation of every session of that person on every replica.
//
// Consequences of keeping no directory:
//
//   - A user's id is derived from its userName and back: "u-" followed by
//     the unpadded base64url encoding of the lower-cased userName. Ids
//     therefore reveal the userName, which the IdP knows anyway.
//   - Searches (GET /Users, with or without a filter) always find nobody, so
//     IdPs create people (POST) and later update them through the id that
//     creation returned. A creation of someone "already there" succeeds.
//     An IdP import (Okta "Import Users") sees nobody.
//   - GET /Users/<id> returns the resource rebuilt from the id, active.
//   - A change of userName keeps the id of the original userName.
package scim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"
)

// Limits.
const (
	// MaxBodyBytes is the largest request body accepted.
	MaxBodyBytes = 64 << 10
	// MinTokenBytes is the shortest bearer token New accepts.
	MinTokenBytes = 32
	// maxUserNameBytes bounds a userName (and so an id).
	maxUserNameBytes = 1024
	// maxRevokeNames bounds the names one request may revoke (the
	// userName and the emails of one person).
	maxRevokeNames = 16
)

// Schema and message URNs.
const (
	schemaUser     = "urn:ietf:params:scim:schemas:core:2.0:User"
	schemaError    = "urn:ietf:params:scim:api:messages:2.0:Error"
	schemaList     = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	schemaSPConfig = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	schemaResType  = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	schemaSchema   = "urn:ietf:params:scim:schemas:core:2.0:Schema"

	contentType = "application/scim+json"
	idPrefix    = "u-"
)

// Options configure a Handler.
type Options struct {
	// Token is the shared bearer secret the IdP sends
	// (Authorization: Bearer ...). Required, at least MinTokenBytes long.
	Token string
	// Revoke ends every session of the person named (userName or an
	// email, lower-cased), on every replica. Called for DELETE and for
	// active=false. An error makes the request fail with 503, which IdPs
	// retry.
	Revoke func(ctx context.Context, name string) error
	// Logger receives one line per deprovisioning, with hashed names.
	// Nil logs nothing.
	Logger *zap.Logger
	// Now is the clock for meta.lastModified; nil means time.Now.
	Now func() time.Time
}

// Handler serves the SCIM endpoint. It expects the gateway to strip its
// mount prefix, so it sees "/Users", "/Users/<id>",
// "/ServiceProviderConfig", "/ResourceTypes" and "/Schemas".
type Handler struct {
	tokenHash [sha256.Size]byte
	revoke    func(context.Context, string) error
	log       *zap.Logger
	now       func() time.Time
}

// New checks o and returns a Handler.
func New(o Options) (*Handler, error) {
	if o.Token == "" {
		return nil, errors.New("scim: token is required")
	}
	if len(o.Token) < MinTokenBytes {
		return nil, fmt.Errorf("scim: token must be at least %d bytes, got %d", MinTokenBytes, len(o.Token))
	}
	for _, c := range o.Token {
		if c <= ' ' || c == 0x7f {
			return nil, errors.New("scim: token must not contain spaces or control characters (an HTTP header cannot carry them faithfully)")
		}
	}
	if o.Revoke == nil {
		return nil, errors.New("scim: Revoke is required")
	}
	h := &Handler{
		tokenHash: sha256.Sum256([]byte(o.Token)),
		revoke:    o.Revoke,
		log:       o.Logger,
		now:       o.Now,
	}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h, nil
}

// UserID returns the id of the user named userName.
func UserID(userName string) string {
	return idPrefix + base64.RawURLEncoding.EncodeToString([]byte(strings.ToLower(userName)))
}

var strictB64 = base64.RawURLEncoding.Strict()

// UserNameFromID returns the (lower-case) userName an id was made from.
func UserNameFromID(id string) (string, error) {
	enc, ok := strings.CutPrefix(id, idPrefix)
	if !ok || enc == "" {
		return "", errors.New(`ids are "u-" followed by base64url`)
	}
	if len(enc) > base64.RawURLEncoding.EncodedLen(maxUserNameBytes) {
		return "", errors.New("id too long")
	}
	raw, err := strictB64.DecodeString(enc)
	if err != nil {
		return "", errors.New("id is not valid base64url")
	}
	name := string(raw)
	if err := checkUserName(name); err != nil {
		return "", err
	}
	if strings.ToLower(name) != name {
		return "", errors.New("id is not canonical")
	}
	return name, nil
}

// checkUserName rejects names that no IdP sends and that could not have
// come from a session.
func checkUserName(name string) error {
	switch {
	case name == "":
		return errors.New("userName is empty")
	case len(name) > maxUserNameBytes:
		return fmt.Errorf("userName longer than %d bytes", maxUserNameBytes)
	case !utf8.ValidString(name):
		return errors.New("userName is not valid UTF-8")
	case strings.TrimSpace(name) != name:
		return errors.New("userName has surrounding spaces")
	}
	for _, c := range name {
		if unicode.IsControl(c) {
			return errors.New("userName contains control characters")
		}
	}
	return nil
}

// ---------------------------------------------------------------------
// Errors and responses

// scimError is an error answered as a SCIM error message.
type scimError struct {
	status   int
	scimType string
	detail   string
}

func (e *scimError) Error() string { return e.detail }

func errBad(scimType, format string, args ...any) *scimError {
	return &scimError{status: http.StatusBadRequest, scimType: scimType, detail: fmt.Sprintf(format, args...)}
}

type errorBody struct {
	Schemas  []string `json:"schemas"`
	Status   string   `json:"status"`
	ScimType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own types are marshalled; never expected
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Schemas: []string{schemaError}, Status: "500", Detail: "internal error"})
	}
	hd := w.Header()
	hd.Set("Content-Type", contentType)
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, e *scimError) {
	writeJSON(w, e.status, errorBody{
		Schemas:  []string{schemaError},
		Status:   strconv.Itoa(e.status),
		ScimType: e.scimType,
		Detail:   e.detail,
	})
}

type meta struct {
	ResourceType string `json:"resourceType"`
	Location     string `json:"location,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
}

type userResource struct {
	Schemas     []string        `json:"schemas"`
	ID          string          `json:"id"`
	ExternalID  string          `json:"externalId,omitempty"`
	UserName    string          `json:"userName"`
	DisplayName string          `json:"displayName,omitempty"`
	Name        json.RawMessage `json:"name,omitempty"`
	Active      bool            `json:"active"`
	Emails      json.RawMessage `json:"emails,omitempty"`
	Meta        meta            `json:"meta"`
}

type listResponse struct {
	Schemas      []string `json:"schemas"`
	TotalResults int      `json:"totalResults"`
	StartIndex   int      `json:"startIndex"`
	ItemsPerPage int      `json:"itemsPerPage"`
	Resources    []any    `json:"Resources"`
}

// ---------------------------------------------------------------------
// Routing

// ServeHTTP answers one SCIM request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e := h.authenticate(r); e != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse-scim"`)
		writeError(w, e)
		return
	}
	p := r.URL.Path
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	base := baseURL(r)
	switch {
	case p == "/Users":
		switch r.Method {
		case http.MethodGet:
			h.list(w, r)
		case http.MethodPost:
			h.create(w, r, base)
		default:
			methodNotAllowed(w, "GET, POST")
		}
	case strings.HasPrefix(p, "/Users/"):
		h.user(w, r, base, strings.TrimPrefix(p, "/Users/"))
	case p == "/ServiceProviderConfig", p == "/ResourceTypes", strings.HasPrefix(p, "/ResourceTypes/"),
		p == "/Schemas", strings.HasPrefix(p, "/Schemas/"):
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		h.discovery(w, base, p)
	default:
		writeError(w, &scimError{status: http.StatusNotFound, detail: "no such endpoint: only /Users, /ServiceProviderConfig, /ResourceTypes and /Schemas are served"})
	}
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, &scimError{status: http.StatusMethodNotAllowed, detail: "method not supported here; allowed: " + allow})
}

// authenticate checks the bearer token in constant time. Hashing both
// sides first gives equal lengths, so the comparison time does not reveal
// the token's length either.
func (h *Handler) authenticate(r *http.Request) *scimError {
	unauth := func(d string) *scimError {
		return &scimError{status: http.StatusUnauthorized, detail: d}
	}
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return unauth("missing bearer token (Authorization: Bearer <token>)")
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(authz), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return unauth("authorization scheme must be Bearer")
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	if subtle.ConstantTimeCompare(sum[:], h.tokenHash[:]) != 1 {
		return unauth("invalid bearer token")
	}
	return nil
}

// baseURL rebuilds the public URL of the SCIM root for meta.location. The
// gateway strips its prefix from r.URL.Path but not from r.RequestURI, so
// the prefix is what the original path has in front of the stripped one.
// IdPs only call SCIM over HTTPS, often through a proxy that terminates
// TLS in front of Gatehouse, so the scheme is always https. Without a
// usable Host the location is the bare path.
func baseURL(r *http.Request) string {
	prefix := ""
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil && u.Path != "" {
		if full, stripped := u.Path, r.URL.Path; strings.HasSuffix(full, stripped) {
			prefix = strings.TrimSuffix(full[:len(full)-len(stripped)], "/")
		}
	}
	host := r.Host
	if host == "" || strings.ContainsAny(host, "/\\@?# \t\r\n") {
		return prefix
	}
	return "https://" + host + prefix
}

// ---------------------------------------------------------------------
// Users

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	start := 1
	if v, err := strconv.Atoi(q.Get("startIndex")); err == nil && v > 1 {
		start = v
	}
	// count (page size) is accepted and has nothing to limit: we keep no
	// directory, so every search, filtered or not, finds nobody.
	writeJSON(w, http.StatusOK, listResponse{
		Schemas:    []string{schemaList},
		StartIndex: start,
		Resources:  []any{},
	})
}

func (h *Handler) user(w http.ResponseWriter, r *http.Request, base, id string) {
	switch r.Method {
	case http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		methodNotAllowed(w, "GET, PUT, PATCH, DELETE")
		return
	}
	name, err := UserNameFromID(id)
	if err != nil {
		writeError(w, errBad("invalidValue", "unknown user id format: %v", err))
		return
	}
	loc := base + "/Users/" + id
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, userResource{
			Schemas:  []string{schemaUser},
			ID:       id,
			UserName: name,
			Active:   true,
			Meta:     meta{ResourceType: "User", Location: loc},
		})
	case http.MethodDelete:
		if e := h.deprovision(r.Context(), "delete", []string{name}); e != nil {
			writeError(w, e)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		h.replace(w, r, id, name, loc)
	case http.MethodPatch:
		h.patch(w, r, id, name, loc)
	}
}

// flexBool is a SCIM boolean as IdPs send it: true, false, or a string
// "True"/"false" in any case (Entra ID sends strings in PATCH values).
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	var v bool
	if err := json.Unmarshal(data, &v); err == nil {
		*b = flexBool(v)
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true":
			*b = true
			return nil
		case "false":
			*b = false
			return nil
		}
	}
	return fmt.Errorf("not a boolean: %.40s", data)
}

// userBody is a User as POSTed or PUT. encoding/json matches attribute
// names without case, as SCIM (RFC 7643 §2.1) requires.
type userBody struct {
	ExternalID  string          `json:"externalId"`
	UserName    *string         `json:"userName"`
	DisplayName string          `json:"displayName"`
	Name        json.RawMessage `json:"name"`
	Active      *flexBool       `json:"active"`
	Emails      json.RawMessage `json:"emails"`
}

// readBody reads a JSON request body of at most MaxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *scimError) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != contentType && mt != "application/json") {
			return nil, errBad("invalidSyntax", "Content-Type must be application/scim+json or application/json, got %q", truncate(ct, 80))
		}
	}
	if r.Body == nil {
		return nil, errBad("invalidSyntax", "request body is required")
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errBad("invalidSyntax", "request body exceeds %d KiB", MaxBodyBytes>>10)
		}
		return nil, errBad("invalidSyntax", "cannot read request body")
	}
	if n == 0 {
		return nil, errBad("invalidSyntax", "request body is required")
	}
	return buf.Bytes(), nil
}

// decode unmarshals a JSON object into v.
func decode(body []byte, v any) *scimError {
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' {
		return errBad("invalidSyntax", "request body must be a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return errBad("invalidSyntax", "invalid JSON at byte %d: %v", se.Offset, se)
		case errors.As(err, &te):
			return errBad("invalidValue", "attribute %q has the wrong type: %v is not %v", te.Field, te.Value, te.Type)
		default:
			return errBad("invalidValue", "invalid request body: %v", truncate(err.Error(), 200))
		}
	}
	return nil
}

// parseUser decodes and checks a User body.
func parseUser(body []byte) (*userBody, []string, *scimError) {
	var u userBody
	if e := decode(body, &u); e != nil {
		return nil, nil, e
	}
	if u.UserName != nil {
		*u.UserName = strings.TrimSpace(*u.UserName)
		if err := checkUserName(*u.UserName); err != nil {
			return nil, nil, errBad("invalidValue", "%v", err)
		}
	}
	if isNull(u.Name) {
		u.Name = nil
	}
	emails, e := emailValues(u.Emails)
	if e != nil {
		return nil, nil, e
	}
	if isNull(u.Emails) {
		u.Emails = nil
	}
	return &u, emails, nil
}

func isNull(m json.RawMessage) bool {
	return len(m) == 0 || string(bytes.TrimSpace(m)) == "null"
}

// emailValues returns the values of a SCIM emails attribute: an array of
// objects (or, leniently, one object) with a "value".
func emailValues(raw json.RawMessage) ([]string, *scimError) {
	if isNull(raw) {
		return nil, nil
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		var one map[string]json.RawMessage
		if err := json.Unmarshal(raw, &one); err != nil {
			return nil, errBad("invalidValue", "emails must be an array of objects with a value")
		}
		list = append(list, one)
	}
	var out []string
	for _, m := range list {
		for k, v := range m {
			if !strings.EqualFold(k, "value") || isNull(v) {
				continue
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, errBad("invalidValue", "emails[].value must be a string")
			}
			out = append(out, s)
		}
	}
	return out, nil
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request, base string) {
	body, e := readBody(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	u, emails, e := parseUser(body)
	if e != nil {
		writeError(w, e)
		return
	}
	if u.UserName == nil {
		writeError(w, errBad("invalidValue", "userName is required"))
		return
	}
	active := u.Active == nil || bool(*u.Active)
	if !active {
		if e := h.deprovision(r.Context(), "created inactive", append([]string{*u.UserName}, emails...)); e != nil {
			writeError(w, e)
			return
		}
	}
	id := UserID(*u.UserName)
	loc := base + "/Users/" + id
	res := h.resource(id, *u.UserName, active, loc, u)
	w.Header().Set("Location", loc)
	writeJSON(w, http.StatusCreated, res)
}

func (h *Handler) replace(w http.ResponseWriter, r *http.Request, id, name, loc string) {
	body, e := readBody(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	u, emails, e := parseUser(body)
	if e != nil {
		writeError(w, e)
		return
	}
	userName := name
	if u.UserName != nil {
		userName = *u.UserName
	}
	active := u.Active == nil || bool(*u.Active)
	if !active {
		// The id's userName, a new userName if this PUT renames, and
		// every email: sessions may carry any of them.
		if e := h.deprovision(r.Context(), "deactivate", append([]string{name, userName}, emails...)); e != nil {
			writeError(w, e)
			return
		}
	}
	writeJSON(w, http.StatusOK, h.resource(id, userName, active, loc, u))
}

func (h *Handler) resource(id, userName string, active bool, loc string, u *userBody) userResource {
	res := userResource{
		Schemas:  []string{schemaUser},
		ID:       id,
		UserName: userName,
		Active:   active,
		Meta:     meta{ResourceType: "User", Location: loc, LastModified: h.now().UTC().Format(time.RFC3339)},
	}
	if u != nil {
		res.ExternalID = u.ExternalID
		res.DisplayName = u.DisplayName
		res.Name = u.Name
		res.Emails = u.Emails
	}
	return res
}

// ---------------------------------------------------------------------
// PATCH

type patchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
}

type patchBody struct {
	Schemas    []string  `json:"schemas"`
	Operations []patchOp `json:"Operations"`
}

// attr normalizes an attribute name or path: the core User schema URN
// prefix is dropped and case folded ("urn:...:User:active" → "active").
func attr(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if rest, ok := strings.CutPrefix(s, strings.ToLower(schemaUser)+":"); ok {
		s = rest
	}
	return s
}

// patchState is what a PatchOp changed that matters to us.
type patchState struct {
	active     *bool
	userName   string
	emails     []string
	emailsJSON json.RawMessage
}

func (st *patchState) setActive(raw json.RawMessage) *scimError {
	var b flexBool
	if isNull(raw) || json.Unmarshal(raw, &b) != nil {
		return errBad("invalidValue", "active must be true or false")
	}
	v := bool(b)
	st.active = &v
	return nil
}

func (st *patchState) setUserName(raw json.RawMessage) *scimError {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return errBad("invalidValue", "userName must be a string")
	}
	s = strings.TrimSpace(s)
	if err := checkUserName(s); err != nil {
		return errBad("invalidValue", "%v", err)
	}
	st.userName = s
	return nil
}

func (st *patchState) setEmails(raw json.RawMessage) *scimError {
	vals, e := emailValues(raw)
	if e != nil {
		return e
	}
	st.emails = append(st.emails, vals...)
	if !isNull(raw) && bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		st.emailsJSON = raw
	}
	return nil
}

// apply records one attribute (already normalized by attr) set to raw.
func (st *patchState) apply(path string, raw json.RawMessage) *scimError {
	switch {
	case path == "active":
		return st.setActive(raw)
	case path == "username":
		return st.setUserName(raw)
	case path == "emails":
		return st.setEmails(raw)
	case path == "emails.value" || (strings.HasPrefix(path, "emails[") && strings.HasSuffix(path, "].value")):
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return errBad("invalidValue", "%s must be a string", path)
		}
		st.emails = append(st.emails, s)
	}
	return nil // other attributes are accepted and not kept
}

func (h *Handler) patch(w http.ResponseWriter, r *http.Request, id, name, loc string) {
	body, e := readBody(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	var pb patchBody
	if e := decode(body, &pb); e != nil {
		writeError(w, e)
		return
	}
	if len(pb.Operations) == 0 {
		writeError(w, errBad("invalidSyntax", "PatchOp needs at least one entry in Operations"))
		return
	}
	var st patchState
	for i, op := range pb.Operations {
		switch strings.ToLower(strings.TrimSpace(op.Op)) {
		case "add", "replace":
		case "remove":
			continue // removing attributes we do not keep changes nothing
		default:
			writeError(w, errBad("invalidSyntax", "Operations[%d].op %q is not add, replace or remove", i, truncate(op.Op, 40)))
			return
		}
		if p := attr(op.Path); p != "" {
			if e := st.apply(p, op.Value); e != nil {
				writeError(w, e)
				return
			}
			continue
		}
		// No path: the value is an object of attributes.
		var obj map[string]json.RawMessage
		if isNull(op.Value) || json.Unmarshal(op.Value, &obj) != nil {
			writeError(w, errBad("invalidValue", "Operations[%d]: without a path, value must be an object of attributes", i))
			return
		}
		for k, v := range obj {
			if e := st.apply(attr(k), v); e != nil {
				writeError(w, e)
				return
			}
		}
	}
	userName := name
	if st.userName != "" {
		userName = st.userName
	}
	active := st.active == nil || *st.active
	if !active {
		if e := h.deprovision(r.Context(), "deactivate", append([]string{name, userName}, st.emails...)); e != nil {
			writeError(w, e)
			return
		}
	}
	res := h.resource(id, userName, active, loc, nil)
	res.Emails = st.emailsJSON
	writeJSON(w, http.StatusOK, res)
}

// ---------------------------------------------------------------------
// Revocation

// deprovision revokes every distinct name (lower-cased, trimmed, empty ones
// dropped) and logs the deprovisioning with hashed names only.
func (h *Handler) deprovision(ctx context.Context, reason string, names []string) *scimError {
	seen := make(map[string]bool, len(names))
	var todo []string
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "" || seen[n] {
			continue
		}
		if err := checkUserName(n); err != nil {
			return errBad("invalidValue", "cannot revoke a name: %v", err)
		}
		seen[n] = true
		todo = append(todo, n)
	}
	if len(todo) > maxRevokeNames {
		return errBad("invalidValue", "too many names to revoke (%d, at most %d): send fewer emails", len(todo), maxRevokeNames)
	}
	hashes := make([]string, len(todo))
	var errs []error
	for i, n := range todo {
		hashes[i] = nameHash(n)
		if err := h.revoke(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		h.log.Error("scim: deprovisioning failed; the IdP will retry",
			zap.String("reason", reason), zap.Strings("user_hashes", hashes), zap.Error(err))
		return &scimError{status: http.StatusServiceUnavailable, detail: "sessions could not be revoked right now; retry later"}
	}
	h.log.Info("scim: deprovisioned",
		zap.String("reason", reason), zap.Strings("user_hashes", hashes))
	return nil
}

// nameHash identifies a person in logs without naming them: the first 16
// hex digits of SHA-256 of the lower-cased name.
func nameHash(name string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(name)))
	return hex.EncodeToString(sum[:8])
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// ---------------------------------------------------------------------
// Discovery (RFC 7644 §4)

type supported struct {
	Supported bool `json:"supported"`
}

type spConfig struct {
	Schemas []string  `json:"schemas"`
	Patch   supported `json:"patch"`
	Bulk    struct {
		Supported      bool `json:"supported"`
		MaxOperations  int  `json:"maxOperations"`
		MaxPayloadSize int  `json:"maxPayloadSize"`
	} `json:"bulk"`
	Filter struct {
		Supported  bool `json:"supported"`
		MaxResults int  `json:"maxResults"`
	} `json:"filter"`
	ChangePassword supported `json:"changePassword"`
	Sort           supported `json:"sort"`
	Etag           supported `json:"etag"`
	AuthSchemes    []authSch `json:"authenticationSchemes"`
	Meta           meta      `json:"meta"`
}

type authSch struct {
	Type        string `json:"type"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Primary     bool   `json:"primary"`
}

type resourceType struct {
	Schemas     []string `json:"schemas"`
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Endpoint    string   `json:"endpoint"`
	Description string   `json:"description"`
	Schema      string   `json:"schema"`
	Meta        meta     `json:"meta"`
}

type schemaAttr struct {
	Name          string       `json:"name"`
	Type          string       `json:"type"`
	MultiValued   bool         `json:"multiValued"`
	Description   string       `json:"description"`
	Required      bool         `json:"required"`
	CaseExact     bool         `json:"caseExact"`
	Mutability    string       `json:"mutability"`
	Returned      string       `json:"returned"`
	Uniqueness    string       `json:"uniqueness"`
	SubAttributes []schemaAttr `json:"subAttributes,omitempty"`
}

type schemaDoc struct {
	Schemas     []string     `json:"schemas"`
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Attributes  []schemaAttr `json:"attributes"`
	Meta        meta         `json:"meta"`
}

func userSchema(base string) schemaDoc {
	str := func(name, desc string, required bool, uniq string) schemaAttr {
		return schemaAttr{Name: name, Type: "string", Description: desc, Required: required,
			Mutability: "readWrite", Returned: "default", Uniqueness: uniq}
	}
	emails := schemaAttr{Name: "emails", Type: "complex", MultiValued: true,
		Description: "Email addresses; each is revoked too when the user is deactivated.",
		Mutability:  "readWrite", Returned: "default", Uniqueness: "none",
		SubAttributes: []schemaAttr{
			str("value", "The email address.", false, "none"),
			str("type", "A label such as work.", false, "none"),
			{Name: "primary", Type: "boolean", Description: "Whether this is the primary address.",
				Mutability: "readWrite", Returned: "default", Uniqueness: "none"},
		}}
	return schemaDoc{
		Schemas:     []string{schemaSchema},
		ID:          schemaUser,
		Name:        "User",
		Description: "User account (Gatehouse keeps no directory; see its SCIM documentation)",
		Attributes: []schemaAttr{
			str("userName", "The name the person signs in with; matched without case against session subjects and emails.", true, "server"),
			{Name: "active", Type: "boolean", Description: "false ends every session of the person.",
				Mutability: "readWrite", Returned: "default", Uniqueness: "none"},
			emails,
			str("externalId", "The IdP's identifier, echoed and not kept.", false, "none"),
			str("displayName", "Echoed and not kept.", false, "none"),
		},
		Meta: meta{ResourceType: "Schema", Location: base + "/Schemas/" + schemaUser},
	}
}

func userResourceType(base string) resourceType {
	return resourceType{
		Schemas:     []string{schemaResType},
		ID:          "User",
		Name:        "User",
		Endpoint:    "/Users",
		Description: "People whose deactivation or deletion ends their Gatehouse sessions",
		Schema:      schemaUser,
		Meta:        meta{ResourceType: "ResourceType", Location: base + "/ResourceTypes/User"},
	}
}

func (h *Handler) discovery(w http.ResponseWriter, base, p string) {
	notFound := func() {
		writeError(w, &scimError{status: http.StatusNotFound, detail: "no such resource"})
	}
	switch {
	case p == "/ServiceProviderConfig":
		var c spConfig
		c.Schemas = []string{schemaSPConfig}
		c.Patch.Supported = true
		c.Filter.Supported = true // accepted; finds nobody (no directory)
		c.AuthSchemes = []authSch{{
			Type: "oauthbearertoken", Name: "OAuth Bearer Token", Primary: true,
			Description: "A shared bearer token in the Authorization header (Authorization: Bearer <token>)",
		}}
		c.Meta = meta{ResourceType: "ServiceProviderConfig", Location: base + "/ServiceProviderConfig"}
		writeJSON(w, http.StatusOK, c)
	case p == "/ResourceTypes":
		writeJSON(w, http.StatusOK, listResponse{Schemas: []string{schemaList}, TotalResults: 1, StartIndex: 1,
			ItemsPerPage: 1, Resources: []any{userResourceType(base)}})
	case p == "/ResourceTypes/User":
		writeJSON(w, http.StatusOK, userResourceType(base))
	case p == "/Schemas":
		writeJSON(w, http.StatusOK, listResponse{Schemas: []string{schemaList}, TotalResults: 1, StartIndex: 1,
			ItemsPerPage: 1, Resources: []any{userSchema(base)}})
	case p == "/Schemas/"+schemaUser:
		writeJSON(w, http.StatusOK, userSchema(base))
	default:
		notFound()
	}
}
