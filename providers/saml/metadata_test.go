package saml

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gatehouse-dev/gatehouse/config"
)

// metadataServer serves whatever body/status it is set to.
type metadataServer struct {
	body   atomic.Pointer[string]
	status atomic.Int32
	hits   atomic.Int32
	*httptest.Server
}

func newMetadataServer(t *testing.T) *metadataServer {
	m := &metadataServer{}
	m.status.Store(http.StatusInternalServerError)
	empty := ""
	m.body.Store(&empty)
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.hits.Add(1)
		w.WriteHeader(int(m.status.Load()))
		w.Write([]byte(*m.body.Load()))
	}))
	t.Cleanup(m.Close)
	return m
}

func (m *metadataServer) serve(status int, body string) {
	m.body.Store(&body)
	m.status.Store(int32(status))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMetadataFromURL(t *testing.T) {
	old := retryDelays
	retryDelays = []time.Duration{10 * time.Millisecond}
	defer func() { retryDelays = old }()

	srv := newMetadataServer(t)
	core, logs := observer.New(zap.DebugLevel)
	h := newHarness(t, func(c *config.SAMLProvider, env *Env) {
		c.IdPMetadata = ""
		c.IdPMetadataURL = srv.URL + "/metadata"
		env.Logger = zap.New(core)
	})

	// Not loaded yet: not ready, and sign-in says so.
	waitFor(t, "a failed fetch", func() bool { return srv.hits.Load() >= 1 })
	if h.p.Ready() == nil {
		t.Fatal("ready without metadata")
	}
	if _, err := h.p.Begin(context.Background(), newAttempt()); reason(err) != "metadata_unavailable" {
		t.Fatalf("Begin without metadata: %q", reason(err))
	}

	// The IdP comes up: the retry loop loads it.
	srv.serve(http.StatusOK, h.idp.metadataXML(t))
	waitFor(t, "metadata to load", func() bool { return h.p.Ready() == nil })
	a, red := h.begin(nil)
	ir := h.idp.request(t, red)
	if _, err := h.complete(a, h.idp.respond(t, ir, alice, nil)); err != nil {
		t.Fatal(err)
	}

	// A refresh that fails keeps the last good copy.
	for _, bad := range []struct {
		status int
		body   string
	}{{http.StatusBadGateway, "upstream down"}, {http.StatusOK, "<html>maintenance</html>"}, {http.StatusOK, `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>`}} {
		srv.serve(bad.status, bad.body)
		if err := h.p.meta.fetch(); err == nil {
			t.Fatalf("refresh with %d %q succeeded", bad.status, bad.body)
		}
		if h.p.Ready() != nil {
			t.Fatal("a failed refresh made the provider unready")
		}
		a, red := h.begin(nil)
		ir := h.idp.request(t, red)
		if _, err := h.complete(a, h.idp.respond(t, ir, alice, nil)); err != nil {
			t.Fatalf("after a failed refresh: %v", err)
		}
	}

	// The IdP rolls its signing key over: after a refresh the new key is
	// trusted and the old one is not.
	rolled := newTestIdP(t, true)
	rolled.spMeta = h.idp.spMeta
	srv.serve(http.StatusOK, rolled.metadataXML(t))
	if err := h.p.meta.fetch(); err != nil {
		t.Fatal(err)
	}
	a, red = h.begin(nil)
	ir = rolled.request(t, red)
	if _, err := h.complete(a, rolled.respond(t, ir, alice, nil)); err != nil {
		t.Fatalf("new key after refresh: %v", err)
	}
	a, red = h.begin(nil)
	ir = h.idp.request(t, red)
	if _, err := h.complete(a, h.idp.respond(t, ir, alice, nil)); reason(err) != "unknown_key" {
		t.Fatalf("old key after rollover: %q", reason(err))
	}

	if logs.FilterMessageSnippet("cannot load the IdP metadata").Len() == 0 || logs.FilterMessage("IdP metadata loaded").Len() != 1 {
		t.Errorf("logs: %v", logs.All())
	}
	// Close stops the refresh loop (and returns).
	done := make(chan struct{})
	go func() { h.p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not stop the refresh loop")
	}
	h.p.Close()
}

func TestMetadataLoopKeepsLastGoodCopy(t *testing.T) {
	srv := newMetadataServer(t)
	ti := newTestIdP(t, false)
	srv.serve(http.StatusOK, ti.metadataXML(t))
	core, logs := observer.New(zap.DebugLevel)
	m := &metadataSource{url: srv.URL, client: srv.Client(), timeout: time.Second, refresh: 20 * time.Millisecond, log: zap.New(core), now: time.Now}
	m.start()
	defer m.close()
	waitFor(t, "first load", func() bool { return m.get() != nil })
	first := m.get()
	srv.serve(http.StatusServiceUnavailable, "")
	waitFor(t, "a failed refresh", func() bool { return logs.FilterMessageSnippet("keeping the last good copy").Len() > 0 })
	if m.get() != first || m.ready() != nil {
		t.Error("a failed refresh dropped the last good copy")
	}
}

func TestParseIdPMetadata(t *testing.T) {
	ti := newTestIdP(t, false)
	good := ti.metadataXML(t)
	if _, err := parseIdPMetadata([]byte(good)); err != nil {
		t.Fatal(err)
	}
	agg := `<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">` + good + `</EntitiesDescriptor>`
	if ed, err := parseIdPMetadata([]byte(agg)); err != nil || ed.EntityID != testIdPURL+"/metadata" {
		t.Fatalf("aggregate with one IdP: %v", err)
	}
	for name, bad := range map[string]string{
		"two IdPs":    `<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">` + good + good + `</EntitiesDescriptor>`,
		"doctype":     `<!DOCTYPE x [<!ENTITY a "b">]>` + good,
		"not XML":     "hello",
		"other root":  `<x/>`,
		"no certs":    strings.ReplaceAll(good, "X509Certificate", "X509Nothing"),
		"no SSO":      strings.ReplaceAll(good, "SingleSignOnService", "ArtifactResolutionService"),
		"no entityID": strings.Replace(good, `entityID="`+testIdPURL+`/metadata"`, "", 1),
	} {
		if _, err := parseIdPMetadata([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A provider dropped without Close (a policy reload builds new providers
// and forgets the old ones) stops its refresh loop once collected.
func TestDroppedProviderStopsRefreshing(t *testing.T) {
	srv := newMetadataServer(t)
	ti := newTestIdP(t, false)
	srv.serve(http.StatusOK, ti.metadataXML(t))
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "sp.crt"), spCertPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "sp.key"), spKeyPEM, 0o600)
	m := func() *metadataSource {
		p, err := New("corp", &config.SAMLProvider{IdPMetadataURL: srv.URL, SPCertFile: "sp.crt", SPKeyFile: "sp.key"},
			Env{PublicURL: testPublic, BaseDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "metadata", func() bool { return p.Ready() == nil })
		return p.meta
	}()
	for range 100 {
		runtime.GC()
		select {
		case <-m.done:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("the refresh loop of a dropped provider is still running")
}
