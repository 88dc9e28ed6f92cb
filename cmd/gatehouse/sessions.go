package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/proxy"
)

// revokeRequest is the body of the admin API's POST /sessions/revoke: one
// of session_id, provider with subject, or user.
type revokeRequest struct {
	SessionID string `json:"session_id,omitempty"`
	Provider  string `json:"provider,omitempty"`
	Subject   string `json:"subject,omitempty"`
	User      string `json:"user,omitempty"`
}

func (q revokeRequest) kind() (string, error) {
	var kinds []string
	if q.SessionID != "" {
		kinds = append(kinds, "session")
	}
	if q.Provider != "" || q.Subject != "" {
		if q.Provider == "" || q.Subject == "" {
			return "", errors.New("provider and subject go together")
		}
		kinds = append(kinds, "subject")
	}
	if q.User != "" {
		kinds = append(kinds, "user")
	}
	if len(kinds) != 1 {
		return "", errors.New("give exactly one of session_id, provider+subject, or user")
	}
	return kinds[0], nil
}

// adminAuthorized checks the admin API's bearer token in constant time
// (on hashes, so the length does not leak either). Without a configured
// token the write endpoints are off.
func adminAuthorized(gw *proxy.Gateway, r *http.Request) (ok bool, configured bool) {
	want := gw.Policy().Config.Server.AdminToken
	if want == "" {
		return false, false
	}
	got, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found {
		return false, true
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1, true
}

// revokeHandler serves POST /sessions/revoke on the admin listener.
func revokeHandler(gw *proxy.Gateway, log *zap.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		answer := func(status int, v map[string]string) {
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(v)
		}
		ok, configured := adminAuthorized(gw, r)
		switch {
		case !configured:
			answer(http.StatusForbidden, map[string]string{"error": "admin_api_disabled", "message": "set server.admin_token in the policy to enable the admin write endpoints"})
			return
		case !ok:
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse-admin"`)
			answer(http.StatusUnauthorized, map[string]string{"error": "unauthorized", "message": "a valid admin bearer token is required"})
			return
		}
		var q revokeRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&q); err != nil {
			answer(http.StatusBadRequest, map[string]string{"error": "bad_request", "message": "body must be a JSON object: " + err.Error()})
			return
		}
		kind, err := q.kind()
		if err != nil {
			answer(http.StatusBadRequest, map[string]string{"error": "bad_request", "message": err.Error()})
			return
		}
		switch kind {
		case "session":
			err = gw.RevokeSession(r.Context(), q.SessionID)
		case "subject":
			err = gw.RevokeSubject(r.Context(), q.Provider, q.Subject)
		default:
			err = gw.RevokeUser(r.Context(), q.User)
		}
		if err != nil {
			log.Error("admin revocation failed", zap.String("kind", kind), zap.Error(err))
			answer(http.StatusServiceUnavailable, map[string]string{"error": "revocation_failed", "message": err.Error()})
			return
		}
		log.Info("admin revocation", zap.String("kind", kind))
		answer(http.StatusOK, map[string]string{"revoked": kind})
	}
}

// cmdSessions is `gatehouse sessions revoke`: it asks a running gateway's
// admin API to end sessions.
func cmdSessions(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "revoke" {
		return usageError{"usage: gatehouse sessions revoke --admin URL (--user NAME | --provider P --subject S | --session ID)"}
	}
	fs := newFlags("sessions revoke", stderr)
	admin := fs.String("admin", "http://127.0.0.1:9090", "the gateway's admin listener")
	user := fs.String("user", "", "end every session whose subject or email is NAME (any provider)")
	provider := fs.String("provider", "", "with --subject: the provider the person signed in with")
	subject := fs.String("subject", "", "with --provider: the person's subject at that provider")
	sid := fs.String("session", "", "end one session by its id")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	q := revokeRequest{SessionID: *sid, Provider: *provider, Subject: *subject, User: *user}
	if _, err := q.kind(); err != nil {
		return usageError{err.Error()}
	}
	token := os.Getenv("GATEHOUSE_ADMIN_TOKEN")
	if token == "" {
		return usageError{"set GATEHOUSE_ADMIN_TOKEN to the policy's server.admin_token"}
	}
	body, _ := json.Marshal(q)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(*admin, "/")+"/sessions/revoke", bytes.NewReader(body))
	if err != nil {
		return usageError{"bad --admin URL: " + err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the admin API at %s: %w", *admin, err)
	}
	defer res.Body.Close()
	var out map[string]string
	json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&out)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("the gateway refused (%s): %s", res.Status, out["message"])
	}
	fmt.Fprintf(stdout, "revoked (%s): the sessions end on every replica sharing this gateway's state\n", out["revoked"])
	return nil
}
