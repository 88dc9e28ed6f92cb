package proxy

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/policy"
)

// accessRecord collects what the access log line says about a request.
type accessRecord struct {
	start       time.Time
	rid         string
	peer        netip.Addr
	route       string
	decision    policy.Decision // valid when decided
	decided     bool
	user        *identity.Identity
	reason      string // set when no decision was made (bad path, gateway endpoint outcome)
	sessionNote string
}

// statusWriter records the status and size of a response. It passes
// Flush, Hijack (WebSockets) and ReadFrom through via Unwrap, which
// http.ResponseController follows.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap exposes the underlying writer to http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush supports streaming responses through ReverseProxy.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack supports protocol upgrades (WebSockets).
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		if w.status == 0 {
			w.status = http.StatusSwitchingProtocols
		}
		return h.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}

// logAccess writes the access line: route, audience, decision, reason,
// status, latency and request id; the user as the policy says (keyed hash
// by default, omitted, or plain).
func (g *Gateway) logAccess(s *snapshot, r *http.Request, w *statusWriter, rec *accessRecord) {
	if !g.log.Core().Enabled(zap.InfoLevel) {
		return
	}
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	fields := make([]zap.Field, 0, 14)
	fields = append(fields,
		zap.String("request_id", rec.rid),
		zap.String("method", r.Method),
		zap.String("host", r.Host),
		zap.String("path", r.URL.Path),
		zap.Int("status", status),
		zap.Duration("latency", g.now().Sub(rec.start)),
		zap.Int64("bytes", w.bytes),
		zap.String("route", rec.route),
	)
	if rec.peer.IsValid() {
		fields = append(fields, zap.String("client", rec.peer.String()))
	}
	if rec.decided {
		d := &rec.decision
		fields = append(fields, zap.String("decision", d.Effect.String()), zap.String("reason", string(d.Reason)))
		if d.Audience != "" {
			fields = append(fields, zap.String("login_audience", string(d.Audience)))
		}
		if d.Rule != nil {
			fields = append(fields, zap.String("rule", d.Rule.Name))
		}
	} else if rec.reason != "" {
		fields = append(fields, zap.String("reason", rec.reason))
	}
	if rec.user != nil {
		fields = append(fields, zap.String("audience", string(rec.user.Audience)))
		fields = append(fields, s.userFields(rec.user)...)
	}
	if rec.sessionNote != "" {
		fields = append(fields, zap.String("session", rec.sessionNote))
	}
	g.log.Info("request", fields...)
}

// userFields is how a person appears in a log line: log.user says (hash,
// omit or plain), except for customers when the policy has a privacy
// section, which decides (hash or omit, never plain).
func (s *snapshot) userFields(id *identity.Identity) []zap.Field {
	mode := s.userLog
	if id.Audience == identity.Customer && s.opts.Privacy != nil {
		mode = s.opts.Privacy.LogMode()
	}
	switch mode {
	case "plain":
		return []zap.Field{zap.String("user", id.Subject), zap.String("provider", id.Provider)}
	case "omit":
		return nil
	}
	return []zap.Field{zap.String("user_hash", userHash(s.userKey, id))}
}

// userHash is a keyed, truncated hash of (provider, subject): stable across
// replicas sharing the key, useless for recovering the subject.
func userHash(key []byte, id *identity.Identity) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id.Provider))
	m.Write([]byte{0})
	m.Write([]byte(id.Subject))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

type jsonError struct {
	Error     string `json:"error"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// writeJSONError answers API clients: a small JSON body, never a redirect
// or an HTML page.
func writeJSONError(w http.ResponseWriter, status int, code, msg, rid string) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(jsonError{Error: code, Message: msg, RequestID: rid})
}

func queryEscape(s string) string { return url.QueryEscape(s) }
