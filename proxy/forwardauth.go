package proxy

import "net/http"

// forwardAuth answers forward-auth subrequests (nginx auth_request,
// Traefik forwardAuth, Caddy forward_auth, Envoy ext_authz over HTTP).
// Not built yet: it refuses every request.
func (g *Gateway) forwardAuth(s *snapshot, w *statusWriter, r *http.Request, rec *accessRecord) {
	rec.reason = "forward_auth_unavailable"
	writeJSONError(w, http.StatusNotImplemented, "not_implemented", "forward-auth mode is not built yet", rec.rid)
}
