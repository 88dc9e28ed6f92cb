package privacy_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/privacy"
	"github.com/gatehouse-dev/gatehouse/store"
)

var (
	pseudoKey = strings.Repeat("k", 32)
	hookKey   = strings.Repeat("w", 40)
	t0        = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock(t time.Time) *clock    { return &clock{t: t} }
func ctxT() context.Context          { return context.Background() }
func id(iss, sub string) *identity.Identity {
	return &identity.Identity{Issuer: iss, Subject: sub, Provider: "google", Audience: identity.Customer,
		Email: sub + "@example.com", EmailVerified: true, Name: "N " + sub, Groups: []string{"vip"},
		AMR: []string{"pwd"}, Extra: map[string]string{"loyalty_tier": "gold", "region": "us", "phone": "+1"}}
}

func baseConfig(hookURL string) *config.Config {
	return &config.Config{
		Privacy: config.Privacy{
			Purposes: []config.Purpose{
				{ID: "terms", Description: "Terms", LegalBasis: "contract", Version: 3, Required: true},
				{ID: "marketing", Description: "News", LegalBasis: "consent", Version: 1},
				{ID: "fraud", Description: "Fraud checks", LegalBasis: "legitimate_interest", Version: 1},
				{ID: "tax", Description: "Invoices kept", LegalBasis: "legal_obligation", Version: 1},
			},
			PseudonymKey: pseudoKey,
			Retention:    map[string]config.Period{"sign_in": "90d", "export": "1y"},
			Webhooks: []config.Webhook{
				{Name: "crm", URL: hookURL, Secret: hookKey, Events: config.StringList{"deletion"}},
				{Name: "analytics", URL: hookURL, Secret: hookKey, Events: config.StringList{"deletion"}, Pseudonym: "shop"},
			},
		},
		Routes: []config.Route{
			{Name: "shop", Audience: config.StringList{"customer"}, Privacy: &config.RoutePrivacy{
				Consent: []string{"marketing", "terms"}, Claims: []string{"email", "loyalty_tier"}, Pseudonym: "shop", Regions: []string{"eu"}}},
			{Name: "blog", Audience: config.StringList{"customer"}, Privacy: &config.RoutePrivacy{Claims: []string{}, Pseudonym: "blog"}},
			{Name: "plain", Audience: config.StringList{"customer"}},
			{Name: "intranet", Audience: config.StringList{"workforce"}},
		},
	}
}

type env struct {
	p      *privacy.Policy
	rg     *privacy.Regions
	clk    *clock
	dbs    map[string]*sql.DB
	stores map[string]store.Store
}

// newEnv opens two SQLite regions, eu (default) and us, in t.TempDir().
func newEnv(t *testing.T, cfg *config.Config, o privacy.Options) *env {
	t.Helper()
	clk := newClock(t0)
	dir := t.TempDir()
	rc := config.Regions{
		Default: "eu",
		From: []config.RegionSource{
			{Claim: "region"},
			{Header: "X-Edge-Region"},
			{Provider: map[string]string{"google-us": "us"}},
		},
		Stores: map[string]string{"eu": "sqlite://" + filepath.Join(dir, "eu.db"), "us": "sqlite://" + filepath.Join(dir, "us.db")},
	}
	rg, err := privacy.OpenRegions(ctxT(), rc, store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rg.Close() })
	if o.Now == nil {
		o.Now = clk.Now
	}
	p, err := privacy.New(cfg, rg, o)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{p: p, rg: rg, clk: clk, dbs: map[string]*sql.DB{}, stores: map[string]store.Store{}}
	for _, r := range rg.Names() {
		e.stores[r] = rg.Store(r)
		db, ok := store.RawDB(rg.Store(r))
		if !ok {
			t.Fatal("no raw db")
		}
		e.dbs[r] = db
	}
	return e
}

func (e *env) count(t *testing.T, region, q string, args ...any) int {
	t.Helper()
	var n int
	if err := e.dbs[region].QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func ids(ps []privacy.Purpose) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func TestRegionOf(t *testing.T) {
	e := newEnv(t, baseConfig("https://x"), privacy.Options{})
	rg := e.rg
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-Edge-Region", "US")
	anon := &identity.Identity{Subject: "s", Issuer: "i", Provider: "google"}
	cases := []struct {
		name    string
		id      *identity.Identity
		req     *http.Request
		trusted bool
		want    string
	}{
		{"claim wins", &identity.Identity{Subject: "s", Extra: map[string]string{"region": " us "}}, nil, false, "us"},
		{"unknown claim value falls through to header", &identity.Identity{Subject: "s", Extra: map[string]string{"region": "mars"}}, req, true, "us"},
		{"header only from trusted peers", anon, req, false, "eu"},
		{"header from trusted peer", anon, req, true, "us"},
		{"provider map", &identity.Identity{Subject: "s", Provider: "google-us"}, nil, false, "us"},
		{"default", anon, nil, false, "eu"},
		{"nil identity and request", nil, nil, true, "eu"},
	}
	for _, c := range cases {
		if got := rg.RegionOf(c.id, c.req, c.trusted); got != c.want {
			t.Errorf("%s: RegionOf = %q, want %q", c.name, got, c.want)
		}
	}
	if rg.Store("mars") != nil || rg.Store("eu") == nil {
		t.Fatal("Store lookup")
	}
	var nilRegions *privacy.Regions
	if nilRegions.RegionOf(anon, req, true) != "" || nilRegions.Store("eu") != nil || nilRegions.Close() != nil {
		t.Fatal("nil Regions must be inert")
	}
}

func TestResolveIsSticky(t *testing.T) {
	e := newEnv(t, baseConfig("https://x"), privacy.Options{})
	ctx := ctxT()
	u := &identity.Identity{Issuer: "https://accounts.google.com", Subject: "traveller", Provider: "google"}
	// First sign-in arrives through the US edge: placed in us.
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-Edge-Region", "us")
	r, err := e.rg.Resolve(ctx, u, req, true)
	if err != nil || r != "us" {
		t.Fatalf("first resolve = %q, %v", r, err)
	}
	if err := e.p.SignIn(ctx, u, r, "req-1"); err != nil {
		t.Fatal(err)
	}
	// Later through the EU edge: still us, where the data is.
	req.Header.Set("X-Edge-Region", "eu")
	if r, err := e.rg.Resolve(ctx, u, req, true); err != nil || r != "us" {
		t.Fatalf("second resolve = %q, %v; want us (sticky)", r, err)
	}
	if got, _ := e.rg.Locate(ctx, privacy.SubjectKey(u)); len(got) != 1 || got[0] != "us" {
		t.Fatalf("Locate = %v", got)
	}
	if _, err := e.rg.Locate(ctx, ""); !errors.Is(err, privacy.ErrInvalid) {
		t.Fatalf("Locate empty key: %v", err)
	}
}

func TestOpenRegionsErrors(t *testing.T) {
	_, err := privacy.OpenRegions(ctxT(), config.Regions{Stores: map[string]string{"eu": "mysql://x"}}, store.Options{})
	if err == nil || !strings.Contains(err.Error(), "privacy: open regions: region eu") {
		t.Fatalf("bad DSN: %v", err)
	}
	_, err = privacy.OpenRegions(ctxT(), config.Regions{Default: "us", Stores: map[string]string{"eu": "sqlite::memory:"}}, store.Options{})
	if !errors.Is(err, privacy.ErrUnknownRegion) {
		t.Fatalf("unknown default: %v", err)
	}
	if _, err := privacy.NewRegions(map[string]store.Store{"eu": nil}, "eu", nil); !errors.Is(err, privacy.ErrInvalid) {
		t.Fatalf("nil store: %v", err)
	}
}

func TestConsent(t *testing.T) {
	e := newEnv(t, baseConfig("https://x"), privacy.Options{})
	p, ctx := e.p, ctxT()
	const key = "https://accounts.google.com|alice"
	shop := p.Route("shop")
	if got := strings.Join(shop.Consent, ","); got != "terms,marketing" {
		t.Fatalf("shop consent = %s (required first, no duplicates)", got)
	}
	if p.Route("intranet").Consent != nil {
		t.Fatal("workforce route inherited required customer purposes")
	}
	all := []string{"terms", "marketing", "fraud", "tax"}
	miss, err := p.Missing(ctx, key, "eu", all)
	if err != nil || strings.Join(ids(miss), ",") != "terms,marketing" {
		t.Fatalf("initial missing = %v, %v (legitimate interest and legal obligation need no grant)", ids(miss), err)
	}
	info := privacy.RecordInfo{Source: "consent_page", RequestID: "req-7"}
	evs, err := p.Record(ctx, key, "eu", []privacy.Decision{{Purpose: "terms", Grant: true, Version: 3}, {Purpose: "marketing", Grant: true}, {Purpose: "fraud", Grant: false}}, info)
	if err != nil || len(evs) != 3 {
		t.Fatalf("record = %+v, %v", evs, err)
	}
	if evs[0].PolicyHash != p.PolicyHash() || evs[0].Source != "consent_page" || evs[0].Version != 3 || len(p.PolicyHash()) != 64 {
		t.Fatalf("ledger entry = %+v", evs[0])
	}
	miss, _ = p.Missing(ctx, key, "eu", all)
	if strings.Join(ids(miss), ",") != "fraud" {
		t.Fatalf("after record missing = %v (objection to fraud must count)", ids(miss))
	}
	granted, err := p.Granted(ctx, key, "eu")
	if err != nil || strings.Join(granted, ",") != "terms:3,marketing:1" {
		t.Fatalf("granted = %v, %v", granted, err)
	}
	// Withdraw marketing.
	if _, err := p.Record(ctx, key, "eu", []privacy.Decision{{Purpose: "marketing"}}, info); err != nil {
		t.Fatal(err)
	}
	if miss, _ := p.Missing(ctx, key, "eu", shop.Consent); strings.Join(ids(miss), ",") != "marketing" {
		t.Fatalf("after withdraw = %v", ids(miss))
	}
	// One audit event per Record call, with the request id.
	if n := e.count(t, "eu", `SELECT count(*) FROM audit_events WHERE kind = 'consent' AND subject_key = ? AND request_id = 'req-7'`, key); n != 2 {
		t.Fatalf("consent audit events = %d", n)
	}

	// A new version of terms: the old grant no longer counts.
	cfg := baseConfig("https://x")
	cfg.Privacy.Purposes[0].Version = 4
	p4, err := privacy.New(cfg, e.rg, privacy.Options{Now: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if p4.PolicyHash() == p.PolicyHash() {
		t.Fatal("policy hash ignores the version")
	}
	if miss, _ := p4.Missing(ctx, key, "eu", []string{"terms"}); len(miss) != 1 || miss[0].Version != 4 {
		t.Fatalf("after version bump = %+v", miss)
	}
	// Decisions made on a page showing the old version are refused.
	if _, err := p4.Record(ctx, key, "eu", []privacy.Decision{{Purpose: "terms", Grant: true, Version: 3}}, info); !errors.Is(err, privacy.ErrStaleVersion) {
		t.Fatalf("stale version: %v", err)
	}

	bad := []struct {
		name string
		err  error
		want error
	}{
		{"unknown purpose", func() error { _, err := p.Missing(ctx, key, "eu", []string{"nope"}); return err }(), privacy.ErrUnknownPurpose},
		{"unknown region", func() error { _, err := p.Missing(ctx, key, "mars", []string{"terms"}); return err }(), privacy.ErrUnknownRegion},
		{"empty key", func() error { _, err := p.Granted(ctx, " ", "eu"); return err }(), privacy.ErrInvalid},
		{"no decisions", func() error { _, err := p.Record(ctx, key, "eu", nil, info); return err }(), privacy.ErrInvalid},
		{"no source", func() error {
			_, err := p.Record(ctx, key, "eu", []privacy.Decision{{Purpose: "terms", Grant: true}}, privacy.RecordInfo{})
			return err
		}(), privacy.ErrInvalid},
		{"twice", func() error {
			_, err := p.Record(ctx, key, "eu", []privacy.Decision{{Purpose: "terms", Grant: true}, {Purpose: "terms"}}, info)
			return err
		}(), privacy.ErrInvalid},
		{"legal obligation", func() error {
			_, err := p.Record(ctx, key, "eu", []privacy.Decision{{Purpose: "tax"}}, info)
			return err
		}(), privacy.ErrInvalid},
		{"unknown purpose record", func() error {
			_, err := p.Record(ctx, key, "eu", []privacy.Decision{{Purpose: "x", Grant: true}}, info)
			return err
		}(), privacy.ErrUnknownPurpose},
	}
	for _, b := range bad {
		if !errors.Is(b.err, b.want) {
			t.Errorf("%s: err = %v, want %v", b.name, b.err, b.want)
		} else if !strings.HasPrefix(b.err.Error(), "privacy: ") {
			t.Errorf("%s: error does not name the operation: %v", b.name, b.err)
		}
	}
}

// TestResidency proves a customer's profile, consents and audit events land
// only in their region's database.
func TestResidency(t *testing.T) {
	e := newEnv(t, baseConfig("https://x"), privacy.Options{})
	p, ctx := e.p, ctxT()
	eu := &identity.Identity{Issuer: "https://idp", Subject: "eve", Provider: "google"}
	us := &identity.Identity{Issuer: "https://idp", Subject: "sam", Provider: "google-us"}
	for _, c := range []struct {
		id     *identity.Identity
		region string
	}{{eu, "eu"}, {us, "us"}} {
		r := e.rg.RegionOf(c.id, nil, false)
		if r != c.region {
			t.Fatalf("%s placed in %s", c.id.Subject, r)
		}
		key := privacy.SubjectKey(c.id)
		if err := p.SignIn(ctx, c.id, r, "r"); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Record(ctx, key, r, []privacy.Decision{{Purpose: "terms", Grant: true}}, privacy.RecordInfo{Source: "api"}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Export(ctx, key, r, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ key, home, other string }{
		{privacy.SubjectKey(eu), "eu", "us"}, {privacy.SubjectKey(us), "us", "eu"},
	} {
		for _, tbl := range []string{"profiles", "consent_events", "audit_events"} {
			q := `SELECT count(*) FROM ` + tbl + ` WHERE subject_key = ?`
			if n := e.count(t, c.home, q, c.key); n == 0 {
				t.Errorf("%s: no %s rows in home region %s", c.key, tbl, c.home)
			}
			if n := e.count(t, c.other, q, c.key); n != 0 {
				t.Errorf("%s: %d %s rows leaked into %s", c.key, n, tbl, c.other)
			}
		}
		if n := e.count(t, c.home, `SELECT count(*) FROM profiles WHERE subject_key = ? AND region = ?`, c.key, c.home); n != 1 {
			t.Errorf("%s: profile not marked with region %s", c.key, c.home)
		}
	}
	// Erasing in the wrong region touches nothing there and nothing in the
	// home region.
	res, err := p.Erase(ctx, privacy.SubjectKey(eu), "us", "r")
	if err != nil || res.Profiles != 0 || res.Consents != 0 || res.Audits != 0 {
		t.Fatalf("wrong-region erase = %+v, %v", res, err)
	}
	if n := e.count(t, "eu", `SELECT count(*) FROM profiles WHERE subject_key = ?`, privacy.SubjectKey(eu)); n != 1 {
		t.Fatal("wrong-region erase reached the home region")
	}
}

func TestMinimize(t *testing.T) {
	e := newEnv(t, baseConfig("https://x"), privacy.Options{})
	p := e.p
	in := id("https://accounts.google.com", "alice")
	orig := *in
	got := p.Minimize(in, p.Route("shop"))
	if got.Email != in.Email || !got.EmailVerified || got.Name != "" || got.Groups != nil {
		t.Fatalf("shop identity = %+v", got)
	}
	if len(got.Extra) != 1 || got.Extra["loyalty_tier"] != "gold" {
		t.Fatalf("shop extra = %v", got.Extra)
	}
	if got.Subject == in.Subject || len(got.Subject) != privacy.PairwiseLength || got.Issuer != privacy.PairwiseIssuerPrefix+"shop" {
		t.Fatalf("shop subject = %q issuer %q", got.Subject, got.Issuer)
	}
	if got.Provider != "google" || got.Audience != identity.Customer || len(got.AMR) != 1 {
		t.Fatalf("authentication facts dropped: %+v", got)
	}
	// The input is untouched, including shared maps and slices.
	got.Extra["x"] = "y"
	if in.Extra["x"] != "" || in.Subject != orig.Subject || in.Name != orig.Name || len(in.Extra) != 3 {
		t.Fatal("Minimize modified its input")
	}
	blog := p.Minimize(in, p.Route("blog"))
	if blog.Email != "" || blog.EmailVerified || blog.Name != "" || blog.Groups != nil || blog.Extra != nil {
		t.Fatalf("claims: [] kept claims: %+v", blog)
	}
	full := p.Minimize(in, p.Route("plain"))
	if full.Subject != in.Subject || full.Name != in.Name || len(full.Extra) != 3 || len(full.Groups) != 1 {
		t.Fatalf("route without claims list was minimized: %+v", full)
	}
	if z := p.Minimize(nil, p.Route("shop")); z.Subject != "" {
		t.Fatal("nil identity")
	}
	if same := p.Minimize(in, nil); same.Subject != in.Subject {
		t.Fatal("nil route policy")
	}
	// A policy without key never leaks the real subject for a pseudonym route.
	var nilPolicy *privacy.Policy
	if x := nilPolicy.Minimize(in, &privacy.RoutePolicy{Pseudonym: "shop"}); x.Subject != "" {
		t.Fatalf("pseudonym without key leaked %q", x.Subject)
	}
}

var base64url = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)

func TestPairwiseStableAndUnlinkable(t *testing.T) {
	cfg := baseConfig("https://x")
	p1, err := privacy.New(cfg, nil, privacy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := privacy.New(baseConfig("https://x"), nil, privacy.Options{}) // another replica
	key := "https://accounts.google.com|alice"
	a1, err := p1.Pairwise("shop", key)
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := p2.Pairwise("shop", key)
	if a1 != a2 || !base64url.MatchString(a1) {
		t.Fatalf("not stable across instances: %q %q", a1, a2)
	}
	// Minimize and Pairwise agree.
	if m := p1.Minimize(&identity.Identity{Issuer: "https://accounts.google.com", Subject: "alice"}, p1.Route("shop")); m.Subject != a1 {
		t.Fatalf("Minimize %q != Pairwise %q", m.Subject, a1)
	}
	// Unlinkable across groups: the same person differs; across many people
	// no value of one group appears in the other.
	b, _ := p1.Pairwise("blog", key)
	if a1 == b {
		t.Fatal("same pairwise subject in two groups")
	}
	shop, blog := map[string]bool{}, map[string]bool{}
	for i := range 500 {
		k := "iss|user" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		s, _ := p1.Pairwise("shop", k)
		g, _ := p1.Pairwise("blog", k)
		if shop[s] {
			t.Fatalf("collision in one group for %s", k)
		}
		shop[s], blog[g] = true, true
	}
	for s := range shop {
		if blog[s] {
			t.Fatal("a shop subject appears in blog")
		}
	}
	// Another key gives other subjects; group/issuer boundaries are not
	// ambiguous.
	cfg2 := baseConfig("https://x")
	cfg2.Privacy.PseudonymKey = strings.Repeat("z", 32)
	p3, _ := privacy.New(cfg2, nil, privacy.Options{})
	if c, _ := p3.Pairwise("shop", key); c == a1 {
		t.Fatal("pairwise ignores the key")
	}
	x, _ := p1.Pairwise("ab", "c|d")
	y, _ := p1.Pairwise("a", "bc|d")
	if x == y {
		t.Fatal("group and issuer run together")
	}
	if _, err := p1.Pairwise("", key); !errors.Is(err, privacy.ErrInvalid) {
		t.Fatalf("empty group: %v", err)
	}
	if _, err := p1.Pairwise("shop", "no-separator"); !errors.Is(err, privacy.ErrInvalid) {
		t.Fatalf("bad key: %v", err)
	}
	cfg3 := baseConfig("https://x")
	cfg3.Privacy.PseudonymKey = ""
	cfg3.Privacy.Webhooks = nil
	cfg3.Routes = nil
	p4, err := privacy.New(cfg3, nil, privacy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p4.Pairwise("shop", key); !errors.Is(err, privacy.ErrNotConfigured) {
		t.Fatalf("no key: %v", err)
	}
	if _, err := privacy.New(baseConfigNoKeyWithPseudonymRoute(), nil, privacy.Options{}); !errors.Is(err, privacy.ErrNotConfigured) {
		t.Fatalf("pseudonym route without key: %v", err)
	}
}

func baseConfigNoKeyWithPseudonymRoute() *config.Config {
	c := baseConfig("https://x")
	c.Privacy.PseudonymKey = ""
	c.Privacy.Webhooks = nil
	return c
}

func TestLogUser(t *testing.T) {
	logKey := []byte("access-log-key")
	u := &identity.Identity{Subject: "alice", Provider: "google"}
	p, _ := privacy.New(baseConfig("https://x"), nil, privacy.Options{LogKey: logKey})
	f := p.LogUser(u)
	// Same function as the proxy's access-log user_hash.
	m := hmac.New(sha256.New, logKey)
	m.Write([]byte("google\x00alice"))
	want := hex.EncodeToString(m.Sum(nil)[:8])
	if len(f) != 1 || f[0].Key != "user_hash" || f[0].String != want {
		t.Fatalf("LogUser = %+v, want user_hash %s", f, want)
	}
	if v := p.LogValue("alice@example.com"); !strings.HasPrefix(v, "h:") || strings.Contains(v, "alice") || v != p.LogValue("alice@example.com") {
		t.Fatalf("LogValue = %q", v)
	}
	cfg := baseConfig("https://x")
	cfg.Privacy.Logs.PersonalData = "omit"
	po, _ := privacy.New(cfg, nil, privacy.Options{LogKey: logKey})
	if po.LogUser(u) != nil || po.LogValue("alice") != "-" {
		t.Fatal("omit mode logged something")
	}
	// Without LogKey, a subkey of the pseudonym key is used; never plain.
	pk, _ := privacy.New(baseConfig("https://x"), nil, privacy.Options{})
	if f := pk.LogUser(u); len(f) != 1 || f[0].String == want || strings.Contains(f[0].String, "alice") {
		t.Fatalf("derived-key LogUser = %+v", f)
	}
	if p.LogUser(nil) != nil {
		t.Fatal("nil identity")
	}
}

func TestExportShape(t *testing.T) {
	e := newEnv(t, baseConfig("https://x"), privacy.Options{})
	p, ctx := e.p, ctxT()
	u := &identity.Identity{Issuer: "https://idp", Subject: "alice", Provider: "google", Email: "a@example.com", EmailVerified: true, Name: "Alice", Groups: []string{"secret-group"}}
	key := privacy.SubjectKey(u)
	if err := p.SignIn(ctx, u, "eu", "req-1"); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(time.Minute)
	if _, err := p.Record(ctx, key, "eu", []privacy.Decision{{Purpose: "terms", Grant: true}, {Purpose: "marketing", Grant: true}}, privacy.RecordInfo{Source: "consent_page", RequestID: "req-2"}); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(time.Minute)
	if _, err := p.Record(ctx, key, "eu", []privacy.Decision{{Purpose: "marketing"}}, privacy.RecordInfo{Source: "account_page", RequestID: "req-3"}); err != nil {
		t.Fatal(err)
	}
	// Someone else's data is not exported.
	if err := p.SignIn(ctx, &identity.Identity{Issuer: "https://idp", Subject: "bob", Provider: "google"}, "eu", "req-x"); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(time.Minute)
	sessions := []privacy.SessionInfo{{ID: "s-1a2b", Provider: "google", Created: t0, Expires: t0.Add(12 * time.Hour), Client: "Firefox"}}
	doc, err := p.ExportFor(ctx, key, "eu", sessions, "req-4")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	h := p.PolicyHash()
	want := `{
  "format": "gatehouse.export/v1",
  "generated_at": "2026-03-01T12:03:00Z",
  "subject": "https://idp|alice",
  "region": "eu",
  "profile": {
    "provider": "google",
    "claims": {
      "email": "a@example.com",
      "email_verified": "true",
      "name": "Alice"
    },
    "created": "2026-03-01T12:00:00Z",
    "updated": "2026-03-01T12:00:00Z"
  },
  "consents": [
    {
      "seq": 1,
      "purpose": "terms",
      "version": 3,
      "decision": "grant",
      "at": "2026-03-01T12:01:00Z",
      "source": "consent_page",
      "policy_hash": "` + h + `"
    },
    {
      "seq": 2,
      "purpose": "marketing",
      "version": 1,
      "decision": "grant",
      "at": "2026-03-01T12:01:00Z",
      "source": "consent_page",
      "policy_hash": "` + h + `"
    },
    {
      "seq": 3,
      "purpose": "marketing",
      "version": 1,
      "decision": "withdraw",
      "at": "2026-03-01T12:02:00Z",
      "source": "account_page",
      "policy_hash": "` + h + `"
    }
  ],
  "current_consents": [
    "terms:3"
  ],
  "purposes": [
    {
      "id": "terms",
      "description": "Terms",
      "legal_basis": "contract",
      "version": 3,
      "required": true
    },
    {
      "id": "marketing",
      "description": "News",
      "legal_basis": "consent",
      "version": 1,
      "required": false
    }
  ],
  "audit": [
    {
      "seq": 1,
      "kind": "sign_in",
      "at": "2026-03-01T12:00:00Z",
      "request_id": "req-1",
      "detail": {
        "provider": "google"
      }
    },
    {
      "seq": 2,
      "kind": "consent",
      "at": "2026-03-01T12:01:00Z",
      "request_id": "req-2",
      "detail": {
        "decisions": "terms:3=grant,marketing:1=grant",
        "policy_hash": "` + h + `",
        "source": "consent_page"
      }
    },
    {
      "seq": 3,
      "kind": "consent",
      "at": "2026-03-01T12:02:00Z",
      "request_id": "req-3",
      "detail": {
        "decisions": "marketing:1=withdraw",
        "policy_hash": "` + h + `",
        "source": "account_page"
      }
    }
  ],
  "sessions": [
    {
      "id": "s-1a2b",
      "provider": "google",
      "created": "2026-03-01T12:00:00Z",
      "expires": "2026-03-02T00:00:00Z",
      "client": "Firefox"
    }
  ]
}`
	if string(b) != want {
		t.Fatalf("export JSON:\n%s\nwant:\n%s", b, want)
	}
	// The export itself is audited, and shows up in the next export.
	doc2, err := p.Export(ctx, key, "eu", nil)
	if err != nil {
		t.Fatal(err)
	}
	last := doc2.Audit[len(doc2.Audit)-1]
	if last.Kind != "export" || last.RequestID != "req-4" || last.Detail["consents"] != "3" {
		t.Fatalf("export audit = %+v", last)
	}
	// Deterministic: the same data marshals to the same bytes.
	b1, _ := json.Marshal(doc2)
	b2, _ := json.Marshal(doc2)
	if string(b1) != string(b2) {
		t.Fatal("non-deterministic JSON")
	}
	// Unknown subjects export empty, never null, collections.
	empty, err := p.Export(ctx, "https://idp|nobody", "eu", nil)
	if err != nil {
		t.Fatal(err)
	}
	eb, _ := json.Marshal(empty)
	if !strings.Contains(string(eb), `"profile":null,"consents":[],"current_consents":[],"purposes":[]`) || !strings.Contains(string(eb), `"sessions":[]`) {
		t.Fatalf("empty export = %s", eb)
	}
}

func TestErase(t *testing.T) {
	e := newEnv(t, baseConfig("https://hooks.example"), privacy.Options{})
	p, ctx := e.p, ctxT()
	u := &identity.Identity{Issuer: "https://idp", Subject: "auth0|erase-me", Provider: "google", Email: "gone@example.com"}
	keep := &identity.Identity{Issuer: "https://idp", Subject: "keep-me", Provider: "google"}
	key := privacy.SubjectKey(u)
	for _, x := range []*identity.Identity{u, keep} {
		if err := p.SignIn(ctx, x, "eu", "r"); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Record(ctx, privacy.SubjectKey(x), "eu", []privacy.Decision{{Purpose: "terms", Grant: true}}, privacy.RecordInfo{Source: "api"}); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := p.EraseReceipt(ctx, key, "eu", "req-erase")
	if err != nil {
		t.Fatal(err)
	}
	want := store.EraseResult{Profiles: 1, Consents: 1, Audits: 2, Deliveries: 2}
	if rec.Result != want {
		t.Fatalf("result = %+v, want %+v", rec.Result, want)
	}
	if !regexp.MustCompile(`^tomb:[0-9a-f]{32}$`).MatchString(rec.Tombstone) {
		t.Fatalf("tombstone %q", rec.Tombstone)
	}
	// Nothing left under the subject; everything else intact.
	for _, tbl := range []string{"profiles", "consent_events", "audit_events", "deliveries"} {
		if n := e.count(t, "eu", `SELECT count(*) FROM `+tbl+` WHERE subject_key = ?`, key); n != 0 {
			t.Errorf("%d %s rows still under the subject", n, tbl)
		}
	}
	// No column anywhere holds the email any more except the notice bodies
	// do not even carry it.
	if n := e.count(t, "eu", `SELECT count(*) FROM profiles WHERE claims LIKE '%gone@%'`); n != 0 {
		t.Error("email survived in profiles")
	}
	if n := e.count(t, "eu", `SELECT count(*) FROM deliveries WHERE CAST(payload AS TEXT) LIKE '%gone@%'`); n != 0 {
		t.Error("email in a deletion notice")
	}
	if n := e.count(t, "eu", `SELECT count(*) FROM audit_events WHERE subject_key = ? AND kind = 'delete' AND request_id = 'req-erase'`, rec.Tombstone); n != 1 {
		t.Error("no delete audit event under the tombstone")
	}
	if n := e.count(t, "eu", `SELECT count(*) FROM consent_events WHERE subject_key = ?`, rec.Tombstone); n != 1 {
		t.Error("consent ledger not tombstoned")
	}
	if n := e.count(t, "eu", `SELECT count(*) FROM profiles WHERE subject_key = ?`, privacy.SubjectKey(keep)); n != 1 {
		t.Error("other customer's profile touched")
	}
	// The notices: one per subscribed webhook, subject as each upstream
	// knows it, indexed by the tombstone.
	rows, err := e.dbs["eu"].Query(`SELECT webhook, event, subject_key, payload FROM deliveries ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var notices []privacy.DeletionNotice
	for rows.Next() {
		var hook, ev, sk string
		var payload []byte
		if err := rows.Scan(&hook, &ev, &sk, &payload); err != nil {
			t.Fatal(err)
		}
		var n privacy.DeletionNotice
		if err := json.Unmarshal(payload, &n); err != nil {
			t.Fatal(err)
		}
		if ev != "subject.deleted" || sk != rec.Tombstone || n.Webhook != hook || n.Erasure != rec.Tombstone || n.Region != "eu" || !strings.HasPrefix(n.ID, "evt_") {
			t.Fatalf("delivery %s %s %s %+v", hook, ev, sk, n)
		}
		notices = append(notices, n)
	}
	if len(notices) != 2 {
		t.Fatalf("%d notices", len(notices))
	}
	if s := notices[0].Subject; s.Issuer != "https://idp" || s.Subject != "auth0|erase-me" || s.Pairwise != "" {
		t.Fatalf("crm subject = %+v", s)
	}
	pw, _ := p.Pairwise("shop", key)
	if s := notices[1].Subject; s.Pairwise != pw || s.Group != "shop" || s.Subject != "" || s.Issuer != "" {
		t.Fatalf("analytics subject = %+v", s)
	}
	// Two erasures never share a tombstone (random, not derived).
	if err := p.SignIn(ctx, u, "eu", "r"); err != nil {
		t.Fatal(err)
	}
	rec2, err := p.EraseReceipt(ctx, key, "eu", "req-erase-2")
	if err != nil || rec2.Tombstone == rec.Tombstone || rec2.Result.Profiles != 1 {
		t.Fatalf("second erase = %+v, %v", rec2, err)
	}
	// Bad input.
	if _, err := p.Erase(ctx, rec.Tombstone, "eu", ""); !errors.Is(err, privacy.ErrInvalid) {
		t.Fatalf("erasing a tombstone: %v", err)
	}
	if _, err := p.Erase(ctx, "", "eu", ""); !errors.Is(err, privacy.ErrInvalid) {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := p.Erase(ctx, key, "mars", ""); !errors.Is(err, privacy.ErrUnknownRegion) {
		t.Fatalf("unknown region: %v", err)
	}
}

func TestDeliverRetriesThenSucceeds(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var seenIDs []string
	var verifyErrs []error
	var clk *clock
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := privacy.VerifySignature([]byte(hookKey), r.Header.Get(privacy.SignatureHeader), body, clk.Now(), 0)
		mu.Lock()
		verifyErrs = append(verifyErrs, err)
		seenIDs = append(seenIDs, r.Header.Get(privacy.IDHeader))
		mu.Unlock()
		if r.Header.Get(privacy.EventHeader) != "subject.deleted" || r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	cfg := baseConfig(srv.URL)
	cfg.Privacy.Webhooks = cfg.Privacy.Webhooks[:1] // crm only
	e := newEnv(t, cfg, privacy.Options{Jitter: func() float64 { return 0.5 }, BackoffBase: time.Minute})
	clk = e.clk
	p, ctx := e.p, ctxT()
	// The outbox's default due time is the store clock, which is clk.
	if _, err := p.Erase(ctx, "https://idp|alice", "us", "r"); err != nil {
		t.Fatal(err)
	}
	rep, err := p.Deliver(ctx, srv.Client())
	if err != nil || rep != (privacy.DeliveryReport{Retrying: 1}) {
		t.Fatalf("step 1 = %+v, %v", rep, err)
	}
	// Not due yet: 1m base, jitter 0.5 -> 45s.
	e.clk.Add(44 * time.Second)
	if rep, _ := p.Deliver(ctx, srv.Client()); rep != (privacy.DeliveryReport{}) {
		t.Fatalf("retried before its time: %+v", rep)
	}
	e.clk.Add(time.Second)
	if rep, _ := p.Deliver(ctx, srv.Client()); rep != (privacy.DeliveryReport{Retrying: 1}) {
		t.Fatalf("step 2 = %+v", rep)
	}
	// Second backoff doubles: 2m -> 90s with this jitter.
	e.clk.Add(89 * time.Second)
	if rep, _ := p.Deliver(ctx, srv.Client()); rep != (privacy.DeliveryReport{}) {
		t.Fatalf("second retry early: %+v", rep)
	}
	e.clk.Add(time.Second)
	if rep, _ := p.Deliver(ctx, srv.Client()); rep != (privacy.DeliveryReport{Delivered: 1}) {
		t.Fatalf("step 3 = %+v", rep)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d calls", calls.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	for i, err := range verifyErrs {
		if err != nil {
			t.Errorf("attempt %d: signature did not verify: %v", i+1, err)
		}
	}
	if seenIDs[0] == "" || seenIDs[0] != seenIDs[1] || seenIDs[1] != seenIDs[2] {
		t.Fatalf("idempotency id not stable across retries: %v", seenIDs)
	}
	var status string
	var attempts int
	e.dbs["us"].QueryRow(`SELECT status, attempts FROM deliveries`).Scan(&status, &attempts)
	if status != "delivered" || attempts != 3 {
		t.Fatalf("outbox row = %s after %d attempts", status, attempts)
	}
	// Nothing more to do.
	e.clk.Add(time.Hour)
	if rep, _ := p.Deliver(ctx, srv.Client()); rep != (privacy.DeliveryReport{}) {
		t.Fatalf("delivered twice: %+v", rep)
	}
}

func TestDeliverGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	cfg := baseConfig(srv.URL)
	e := newEnv(t, cfg, privacy.Options{MaxAttempts: 3, BackoffBase: time.Second, BackoffMax: 2 * time.Second})
	p, ctx := e.p, ctxT()
	if _, err := p.Erase(ctx, "https://idp|alice", "eu", "r"); err != nil {
		t.Fatal(err)
	}
	// A webhook removed from the policy: its pending notice fails at once.
	cfg2 := baseConfig(srv.URL)
	cfg2.Privacy.Webhooks = cfg2.Privacy.Webhooks[:1]
	p2, err := privacy.New(cfg2, e.rg, privacy.Options{Now: e.clk.Now, MaxAttempts: 3, BackoffBase: time.Second, BackoffMax: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var total privacy.DeliveryReport
	for range 5 {
		rep, err := p2.Deliver(ctx, srv.Client())
		if err != nil {
			t.Fatal(err)
		}
		total.Delivered += rep.Delivered
		total.Retrying += rep.Retrying
		total.Failed += rep.Failed
		e.clk.Add(time.Minute)
	}
	if total != (privacy.DeliveryReport{Retrying: 2, Failed: 2}) {
		t.Fatalf("total = %+v", total)
	}
	if n := e.count(t, "eu", `SELECT count(*) FROM deliveries WHERE status = 'failed' AND webhook = 'crm' AND attempts = 3 AND last_error = 'status 500'`); n != 1 {
		t.Fatal("crm not failed after 3 attempts")
	}
	if n := e.count(t, "eu", `SELECT count(*) FROM deliveries WHERE status = 'failed' AND webhook = 'analytics' AND last_error = 'webhook no longer configured'`); n != 1 {
		t.Fatal("removed webhook not failed")
	}
}

func TestVerifySignature(t *testing.T) {
	secret := []byte(hookKey)
	body := []byte(`{"id":"evt_1"}`)
	now := t0
	h := privacy.Sign(secret, body, now)
	if !regexp.MustCompile(`^t=\d+,v1=[0-9a-f]{64}$`).MatchString(h) {
		t.Fatalf("header %q", h)
	}
	if err := privacy.VerifySignature(secret, h, body, now.Add(time.Minute), time.Minute); err != nil {
		t.Fatalf("valid: %v", err)
	}
	other := privacy.Sign([]byte("another secret of at least 32 bytes!!"), body, now)
	_, v1other, _ := strings.Cut(other, ",")
	cases := []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"tampered body", secret, h, []byte(`{"id":"evt_2"}`), now, privacy.ErrSignatureMismatch},
		{"wrong secret", []byte("x"), h, body, now, privacy.ErrSignatureMismatch},
		{"too old", secret, h, body, now.Add(6 * time.Minute), privacy.ErrSignatureExpired},
		{"from the future", secret, h, body, now.Add(-6 * time.Minute), privacy.ErrSignatureExpired},
		{"replayed with a new timestamp", secret, "t=" + "9" + h[3:], body, now, privacy.ErrSignatureMismatch},
		{"empty", secret, "", body, now, privacy.ErrSignatureFormat},
		{"no v1", secret, "t=1", body, now, privacy.ErrSignatureFormat},
		{"bad hex", secret, "t=1,v1=zz", body, now, privacy.ErrSignatureFormat},
		{"bad t", secret, "t=abc," + strings.Split(h, ",")[1], body, now, privacy.ErrSignatureFormat},
		{"empty secret", nil, h, body, now, privacy.ErrSignatureFormat},
	}
	for _, c := range cases {
		if err := privacy.VerifySignature(c.secret, c.header, c.body, c.now, 0); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	// Several v1 entries (secret rotation on the sender): one match suffices.
	if err := privacy.VerifySignature(secret, h+","+v1other, body, now, 0); err != nil {
		t.Fatalf("rotation: %v", err)
	}
}

func TestPurge(t *testing.T) {
	e := newEnv(t, baseConfig("https://x"), privacy.Options{})
	ctx := ctxT()
	for _, r := range []string{"eu", "us"} {
		s := e.stores[r]
		for _, ev := range []store.AuditEvent{
			{Kind: "sign_in", SubjectKey: "u", At: t0.AddDate(0, 0, -91)},
			{Kind: "sign_in", SubjectKey: "u", At: t0.AddDate(0, 0, -89)},
			{Kind: "export", SubjectKey: "u", At: t0.AddDate(-2, 0, 0)},
			{Kind: "delete", SubjectKey: "tomb:x", At: t0.AddDate(-10, 0, 0)}, // no retention: kept
		} {
			if _, err := s.AppendAudit(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.AppendConsent(ctx, store.ConsentEvent{SubjectKey: "u", Purpose: "terms", Version: 1, Decision: "grant", At: t0.AddDate(-10, 0, 0), Source: "api"}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.p.Purge(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("purged = %+v", got)
	}
	for _, g := range got {
		if g.Deleted != 1 {
			t.Errorf("%s/%s deleted %d", g.Region, g.Kind, g.Deleted)
		}
	}
	for _, r := range []string{"eu", "us"} {
		if n := e.count(t, r, `SELECT count(*) FROM audit_events`); n != 2 {
			t.Errorf("%s: %d audit events left, want 2", r, n)
		}
		if n := e.count(t, r, `SELECT count(*) FROM consent_events`); n != 1 {
			t.Errorf("%s: consent ledger purged", r)
		}
	}
	if d, ok := e.p.Retention("sign_in"); !ok || d != 90*24*time.Hour {
		t.Fatalf("Retention = %v %v", d, ok)
	}
}

// TestNoRegions checks every store-backed operation fails cleanly, never
// panics, when the policy has no regions.
func TestNoRegions(t *testing.T) {
	p, err := privacy.New(baseConfig("https://x"), nil, privacy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT()
	const key = "i|s"
	errs := []error{
		func() error { _, err := p.Missing(ctx, key, "eu", []string{"terms"}); return err }(),
		func() error { _, err := p.Granted(ctx, key, "eu"); return err }(),
		func() error {
			_, err := p.Record(ctx, key, "eu", []privacy.Decision{{Purpose: "terms", Grant: true}}, privacy.RecordInfo{Source: "api"})
			return err
		}(),
		func() error { _, err := p.Export(ctx, key, "eu", nil); return err }(),
		func() error { _, err := p.Erase(ctx, key, "eu", ""); return err }(),
		p.SignIn(ctx, &identity.Identity{Subject: "s"}, "eu", ""),
	}
	for i, err := range errs {
		if !errors.Is(err, privacy.ErrNotConfigured) {
			t.Errorf("op %d: %v", i, err)
		}
	}
	if rep, err := p.Deliver(ctx, nil); err != nil || rep != (privacy.DeliveryReport{}) {
		t.Fatalf("Deliver = %+v, %v", rep, err)
	}
	if got, err := p.Purge(ctx, time.Time{}); err != nil || got != nil {
		t.Fatalf("Purge = %v, %v", got, err)
	}
	if err := p.SignIn(ctx, nil, "eu", ""); !errors.Is(err, privacy.ErrInvalid) {
		t.Fatalf("SignIn nil: %v", err)
	}
	if _, err := privacy.New(nil, nil, privacy.Options{}); !errors.Is(err, privacy.ErrInvalid) {
		t.Fatalf("New nil: %v", err)
	}
	if p.Route("nope") != nil || !(*privacy.RoutePolicy)(nil).AllowsRegion("eu") {
		t.Fatal("route lookups")
	}
	if !p.Route("shop").AllowsRegion("eu") || p.Route("shop").AllowsRegion("us") {
		t.Fatal("AllowsRegion")
	}
}
