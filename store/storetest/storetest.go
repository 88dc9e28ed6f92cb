// Package storetest is the conformance suite every store backend must pass.
//
// Run checks behaviour through the Store interface on a fresh, empty store
// per subtest. RunSchema checks opening and migrating, and needs a DSN it
// can open several times. Both use store.RawDB to issue the statements an
// application never should (plain UPDATE/DELETE on the ledgers) and check
// the database refuses them.
package storetest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/store"
)

// Opener returns a new, empty, migrated store; it registers its own cleanup.
type Opener func(t *testing.T) store.Store

// DSNMaker returns the DSN of a new, empty database (nothing migrated yet);
// it registers its own cleanup.
type DSNMaker func(t *testing.T) string

var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)

// Run runs the behavioural suite.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"ProfileRoundTrip", testProfileRoundTrip},
		{"InvalidInputRefused", testInvalidInput},
		{"ConsentHistoryAndCurrent", testConsent},
		{"AuditListAndPurge", testAuditPurge},
		{"AppendOnlyEnforcedByDatabase", testAppendOnly},
		{"HasSubject", testHasSubject},
		{"Erase", testErase},
		{"EraseIsAtomic", testEraseAtomic},
		{"ConcurrentAppends", testConcurrentAppends},
		{"DeliveryLifecycle", testDeliveryLifecycle},
		{"DeliveryClaimNeverDoubles", testDeliveryClaimConcurrent},
		{"Ping", func(t *testing.T, s store.Store) {
			if err := s.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
			if k := s.Kind(); k != "sqlite" && k != "postgres" {
				t.Fatalf("Kind() = %q", k)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

func raw(t *testing.T, s store.Store) *sql.DB {
	t.Helper()
	db, ok := store.RawDB(s)
	if !ok {
		t.Fatalf("store.RawDB: %T is not a SQL store", s)
	}
	return db
}

func testProfileRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.Profile(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing profile: err = %v, want ErrNotFound", err)
	}
	p := store.Profile{
		SubjectKey: "oidc:google:1234567890",
		Provider:   "google",
		Region:     "eu",
		Claims: map[string]string{
			"name":    "Zoë Ångström-Łukasiewicz",
			"city":    "東京",
			"emoji":   "🔐✅",
			"quote":   `she said "hi" \ bye`,
			"empty":   "",
			"rtl":     "مرحبا",
			"newline": "a\nb",
		},
		Created: t0,
		Updated: t0,
	}
	if err := s.UpsertProfile(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := s.Profile(ctx, p.SubjectKey)
	if err != nil {
		t.Fatal(err)
	}
	assertProfile(t, got, p)

	// Update keeps Created, replaces the rest.
	p2 := p
	p2.Provider = "google-workspace"
	p2.Claims = map[string]string{"name": "Zoë"}
	p2.Created = t0.Add(time.Hour) // ignored on update
	p2.Updated = t0.Add(2 * time.Hour)
	if err := s.UpsertProfile(ctx, p2); err != nil {
		t.Fatal(err)
	}
	got, err = s.Profile(ctx, p.SubjectKey)
	if err != nil {
		t.Fatal(err)
	}
	want := p2
	want.Created = t0
	assertProfile(t, got, want)

	// Zero times default to now; nil claims read back as an empty map.
	if err := s.UpsertProfile(ctx, store.Profile{SubjectKey: "saml:okta:x", Provider: "okta", Region: "us"}); err != nil {
		t.Fatal(err)
	}
	got, err = s.Profile(ctx, "saml:okta:x")
	if err != nil {
		t.Fatal(err)
	}
	if got.Created.IsZero() || got.Updated.IsZero() || got.Claims == nil || len(got.Claims) != 0 {
		t.Fatalf("defaults not applied: %+v", got)
	}
}

func assertProfile(t *testing.T, got *store.Profile, want store.Profile) {
	t.Helper()
	if got.SubjectKey != want.SubjectKey || got.Provider != want.Provider || got.Region != want.Region {
		t.Fatalf("profile = %+v, want %+v", got, want)
	}
	if !got.Created.Equal(want.Created) || !got.Updated.Equal(want.Updated) {
		t.Fatalf("profile times = %v/%v, want %v/%v", got.Created, got.Updated, want.Created, want.Updated)
	}
	if len(got.Claims) != len(want.Claims) {
		t.Fatalf("claims = %q, want %q", got.Claims, want.Claims)
	}
	for k, v := range want.Claims {
		if got.Claims[k] != v {
			t.Fatalf("claim %q = %q, want %q", k, got.Claims[k], v)
		}
	}
}

func testInvalidInput(t *testing.T, s store.Store) {
	ctx := context.Background()
	checks := map[string]error{}
	checks["profile empty subject"] = s.UpsertProfile(ctx, store.Profile{SubjectKey: " "})
	checks["profile tomb subject"] = s.UpsertProfile(ctx, store.Profile{SubjectKey: "tomb:1"})
	_, checks["consent empty subject"] = s.AppendConsent(ctx, store.ConsentEvent{Purpose: "p", Decision: "grant"})
	_, checks["consent empty purpose"] = s.AppendConsent(ctx, store.ConsentEvent{SubjectKey: "u", Decision: "grant"})
	_, checks["consent bad decision"] = s.AppendConsent(ctx, store.ConsentEvent{SubjectKey: "u", Purpose: "p", Decision: "maybe"})
	_, checks["audit empty kind"] = s.AppendAudit(ctx, store.AuditEvent{SubjectKey: "u"})
	_, checks["purge empty kind"] = s.PurgeAudit(ctx, "", t0)
	_, checks["erase bad tombstone"] = s.Erase(ctx, "u", "gone", nil)
	_, checks["erase empty subject"] = s.Erase(ctx, "", "tomb:x", nil)
	_, checks["erase bad delivery"] = s.Erase(ctx, "u", "tomb:x", []store.Delivery{{Event: "x"}})
	_, checks["enqueue no webhook"] = s.EnqueueDelivery(ctx, store.Delivery{Event: "x"})
	_, checks["claim zero limit"] = s.DueDeliveries(ctx, t0, 0)
	for name, err := range checks {
		if !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	// Nothing reached the database.
	if h, err := s.ConsentHistory(ctx, "u"); err != nil || len(h) != 0 {
		t.Fatalf("history after refused writes = %v, %v", h, err)
	}
	if a, err := s.AuditEvents(ctx, "u", 0); err != nil || len(a) != 0 {
		t.Fatalf("audit after refused writes = %v, %v", a, err)
	}
}

func testConsent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const sub = "oidc:github:42"
	steps := []store.ConsentEvent{
		{Purpose: "analytics", Version: 1, Decision: "grant", Source: "consent_page", PolicyHash: "h1"},
		{Purpose: "marketing", Version: 1, Decision: "grant", Source: "consent_page", PolicyHash: "h1"},
		{Purpose: "analytics", Version: 2, Decision: "withdraw", Source: "api", PolicyHash: "h2"},
		{Purpose: "marketing", Version: 2, Decision: "withdraw", Source: "admin", PolicyHash: "h2"},
		{Purpose: "marketing", Version: 3, Decision: "grant", Source: "consent_page", PolicyHash: "h3"},
	}
	var stored []store.ConsentEvent
	for i, e := range steps {
		e.SubjectKey = sub
		if i == 0 {
			e.At = t0 // explicit time kept; others default to now
		}
		got, err := s.AppendConsent(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq == 0 || got.At.IsZero() {
			t.Fatalf("Seq/At not assigned: %+v", got)
		}
		if i > 0 && got.Seq <= stored[i-1].Seq {
			t.Fatalf("Seq not increasing: %d after %d", got.Seq, stored[i-1].Seq)
		}
		stored = append(stored, got)
	}
	if !stored[0].At.Equal(t0) {
		t.Fatalf("explicit At changed: %v", stored[0].At)
	}
	// Another subject's events must not leak in.
	if _, err := s.AppendConsent(ctx, store.ConsentEvent{SubjectKey: "other", Purpose: "analytics", Version: 9, Decision: "grant"}); err != nil {
		t.Fatal(err)
	}

	hist, err := s.ConsentHistory(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != len(stored) {
		t.Fatalf("history has %d events, want %d", len(hist), len(stored))
	}
	for i := range hist {
		if !sameConsent(hist[i], stored[i]) {
			t.Fatalf("history[%d] = %+v, want %+v", i, hist[i], stored[i])
		}
	}

	cur, err := s.CurrentConsents(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if len(cur) != 2 || !sameConsent(cur["analytics"], stored[2]) || !sameConsent(cur["marketing"], stored[4]) {
		t.Fatalf("current = %+v", cur)
	}
	if cur, err := s.CurrentConsents(ctx, "unknown"); err != nil || len(cur) != 0 {
		t.Fatalf("current of unknown = %v, %v", cur, err)
	}
}

func sameConsent(a, b store.ConsentEvent) bool {
	return a.Seq == b.Seq && a.SubjectKey == b.SubjectKey && a.Purpose == b.Purpose &&
		a.Version == b.Version && a.Decision == b.Decision && a.At.Equal(b.At) &&
		a.Source == b.Source && a.PolicyHash == b.PolicyHash
}

func testAuditPurge(t *testing.T, s store.Store) {
	ctx := context.Background()
	add := func(kind, sub string, at time.Time) store.AuditEvent {
		t.Helper()
		e, err := s.AppendAudit(ctx, store.AuditEvent{Kind: kind, SubjectKey: sub, At: at, RequestID: "req-" + kind,
			Detail: map[string]string{"ip": "203.0.113.9", "ua": "Mozilla/5.0 (Ünïcödé)"}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	day := 24 * time.Hour
	add("sign_in", "u1", t0.Add(-40*day))
	add("sign_in", "u1", t0.Add(-10*day))
	add("sign_in", "u1", t0)
	add("export", "u1", t0.Add(-40*day))
	last := add("sign_out", "u1", t0.Add(time.Minute))
	add("policy_reload", "", t0.Add(-40*day))

	evs, err := s.AuditEvents(ctx, "u1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 5 || evs[0].Seq != last.Seq || evs[0].Detail["ua"] != "Mozilla/5.0 (Ünïcödé)" || evs[0].RequestID != "req-sign_out" {
		t.Fatalf("audit events = %+v", evs)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq >= evs[i-1].Seq {
			t.Fatalf("audit events not newest first: %d then %d", evs[i-1].Seq, evs[i].Seq)
		}
	}
	if evs, _ := s.AuditEvents(ctx, "u1", 2); len(evs) != 2 {
		t.Fatalf("limit 2 returned %d", len(evs))
	}
	if sys, _ := s.AuditEvents(ctx, "", 0); len(sys) != 1 || sys[0].Kind != "policy_reload" {
		t.Fatalf("system events = %+v", sys)
	}

	// Retention for sign_in is 30 days: only the 40-day-old sign_in goes.
	n, err := s.PurgeAudit(ctx, "sign_in", t0.Add(-30*day))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("purged %d, want 1", n)
	}
	// The cut-off is exclusive.
	if n, err := s.PurgeAudit(ctx, "sign_in", t0.Add(-10*day)); err != nil || n != 0 {
		t.Fatalf("purge at exact time: %d, %v", n, err)
	}
	if n, err := s.PurgeAudit(ctx, "no_such_kind", t0.Add(day)); err != nil || n != 0 {
		t.Fatalf("purge unknown kind: %d, %v", n, err)
	}
	evs, _ = s.AuditEvents(ctx, "u1", 0)
	kinds := map[string]int{}
	for _, e := range evs {
		kinds[e.Kind]++
	}
	if kinds["sign_in"] != 2 || kinds["export"] != 1 || kinds["sign_out"] != 1 {
		t.Fatalf("after purge: %v", kinds)
	}
	// After a purge the unlock is gone: a plain delete is refused again.
	if _, err := raw(t, s).ExecContext(ctx, `DELETE FROM audit_events WHERE kind = 'export'`); err == nil {
		t.Fatal("plain DELETE after a purge was allowed")
	}
}

func testAppendOnly(t *testing.T, s store.Store) {
	ctx := context.Background()
	c, err := s.AppendConsent(ctx, store.ConsentEvent{SubjectKey: "u", Purpose: "p", Version: 1, Decision: "grant", Source: "api"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.AppendAudit(ctx, store.AuditEvent{Kind: "sign_in", SubjectKey: "u", At: t0})
	if err != nil {
		t.Fatal(err)
	}
	db := raw(t, s)
	refused := []struct{ name, q string }{
		{"consent decision flip", `UPDATE consent_events SET decision = 'withdraw'`},
		{"consent subject not tomb", `UPDATE consent_events SET subject_key = 'someone-else'`},
		{"consent subject tomb plus other column", `UPDATE consent_events SET subject_key = 'tomb:x', purpose = 'q'`},
		{"consent subject uppercase TOMB", `UPDATE consent_events SET subject_key = 'TOMB:x'`},
		{"consent delete", `DELETE FROM consent_events`},
		{"audit kind change", `UPDATE audit_events SET kind = 'admin'`},
		{"audit time change", `UPDATE audit_events SET request_id = 'forged'`},
		{"audit delete", `DELETE FROM audit_events`},
		{"audit delete by kind", `DELETE FROM audit_events WHERE kind = 'sign_in'`},
	}
	if s.Kind() == "postgres" {
		refused = append(refused,
			struct{ name, q string }{"consent truncate", `TRUNCATE consent_events`},
			struct{ name, q string }{"audit truncate", `TRUNCATE audit_events`})
	}
	for _, r := range refused {
		if _, err := db.ExecContext(ctx, r.q); err == nil {
			t.Errorf("%s: %q was allowed", r.name, r.q)
		} else if !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: refused with unexpected error %v", r.name, err)
		}
	}
	hist, _ := s.ConsentHistory(ctx, "u")
	if len(hist) != 1 || !sameConsent(hist[0], c) {
		t.Fatalf("ledger changed: %+v", hist)
	}
	evs, _ := s.AuditEvents(ctx, "u", 0)
	if len(evs) != 1 || evs[0].Seq != a.Seq || evs[0].Kind != "sign_in" || evs[0].RequestID != "" {
		t.Fatalf("audit changed: %+v", evs)
	}
	// The tombstone rewrite is the one permitted update.
	if _, err := db.ExecContext(ctx, `UPDATE consent_events SET subject_key = 'tomb:raw' WHERE subject_key = 'u'`); err != nil {
		t.Fatalf("tombstone update refused: %v", err)
	}
	// ... and a tombstone cannot be turned back into a subject.
	if _, err := db.ExecContext(ctx, `UPDATE consent_events SET subject_key = 'u'`); err == nil {
		t.Fatal("re-identifying a tombstone was allowed")
	}
}

func testErase(t *testing.T, s store.Store) {
	ctx := context.Background()
	const sub, keep, tomb = "oidc:google:erase-me", "oidc:google:keep-me", "tomb:0f3a9c"
	seed(t, s, sub)
	seed(t, s, keep)

	notify := []store.Delivery{
		{Webhook: "crm", Event: "subject.deleted", SubjectKey: sub, Payload: []byte(`{"subject":"` + sub + `"}`)},
		{Webhook: "billing", Event: "subject.deleted", SubjectKey: sub},
	}
	res, err := s.Erase(ctx, sub, tomb, notify)
	if err != nil {
		t.Fatal(err)
	}
	want := store.EraseResult{Profiles: 1, Consents: 2, Audits: 3, Deliveries: 2}
	if res != want {
		t.Fatalf("EraseResult = %+v, want %+v", res, want)
	}
	if _, err := s.Profile(ctx, sub); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("profile after erase: %v", err)
	}
	if h, _ := s.ConsentHistory(ctx, sub); len(h) != 0 {
		t.Fatalf("consent still under subject: %+v", h)
	}
	if h, _ := s.ConsentHistory(ctx, tomb); len(h) != 2 {
		t.Fatalf("tombstoned consent history = %+v", h)
	}
	if a, _ := s.AuditEvents(ctx, sub, 0); len(a) != 0 {
		t.Fatalf("audit still under subject: %+v", a)
	}
	if a, _ := s.AuditEvents(ctx, tomb, 0); len(a) != 3 {
		t.Fatalf("tombstoned audit = %+v", a)
	}
	assertSeeded(t, s, keep)
	due, err := s.DueDeliveries(ctx, time.Now().Add(time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 2 || due[0].Webhook != "crm" || !bytes.Equal(due[0].Payload, notify[0].Payload) || due[1].Webhook != "billing" {
		t.Fatalf("deliveries = %+v", due)
	}
	// Erasing again finds nothing to do but still enqueues nothing harmful.
	res, err = s.Erase(ctx, sub, tomb, nil)
	if err != nil || res != (store.EraseResult{}) {
		t.Fatalf("second erase = %+v, %v", res, err)
	}
}

// testHasSubject checks each table on its own makes a subject found,
// that an erasure leaves nothing to find, and that the outbox does not
// count.
func testHasSubject(t *testing.T, s store.Store) {
	ctx := context.Background()
	has := func(sub string) bool {
		t.Helper()
		ok, err := s.HasSubject(ctx, sub)
		if err != nil {
			t.Fatalf("HasSubject(%q): %v", sub, err)
		}
		return ok
	}
	const prof, cons, aud, none = "oidc:idp|profile-only", "oidc:idp|consent-only", "oidc:idp|audit-only", "oidc:idp|nobody"
	if err := s.UpsertProfile(ctx, store.Profile{SubjectKey: prof, Provider: "google"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendConsent(ctx, store.ConsentEvent{SubjectKey: cons, Purpose: "terms", Version: 1, Decision: store.DecisionGrant}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendAudit(ctx, store.AuditEvent{Kind: "sign_out", SubjectKey: aud}); err != nil {
		t.Fatal(err)
	}
	// The outbox is indexed by tombstones; even a row naming a subject key
	// is not data held under that key.
	if _, err := s.EnqueueDelivery(ctx, store.Delivery{Webhook: "crm", Event: "subject.deleted", SubjectKey: none}); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{prof, cons, aud} {
		if !has(sub) {
			t.Errorf("HasSubject(%q) = false, want true", sub)
		}
	}
	// Exact match only: no prefix, no case folding.
	for _, sub := range []string{none, "oidc:idp|audit", "OIDC:IDP|AUDIT-ONLY"} {
		if has(sub) {
			t.Errorf("HasSubject(%q) = true, want false", sub)
		}
	}
	if _, err := s.HasSubject(ctx, " "); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("HasSubject(blank) = %v, want ErrInvalid", err)
	}
	// After an erasure the subject is gone and its rows are under the
	// tombstone instead.
	for i, sub := range []string{prof, cons, aud} {
		tomb := fmt.Sprintf("tomb:has%d", i)
		if _, err := s.Erase(ctx, sub, tomb, nil); err != nil {
			t.Fatal(err)
		}
		if has(sub) {
			t.Errorf("HasSubject(%q) after erase = true", sub)
		}
		if sub != prof && !has(tomb) {
			t.Errorf("HasSubject(%q) = false, want the tombstoned rows", tomb)
		}
	}
	// A write under the key after its erasure (a request in flight) makes
	// it found again.
	if _, err := s.AppendAudit(ctx, store.AuditEvent{Kind: "sign_out", SubjectKey: aud}); err != nil {
		t.Fatal(err)
	}
	if !has(aud) {
		t.Error("an audit row written after the erasure is not found")
	}
}

// seed gives sub a profile, two consent events and three audit events.
func seed(t *testing.T, s store.Store, sub string) {
	t.Helper()
	ctx := context.Background()
	if err := s.UpsertProfile(ctx, store.Profile{SubjectKey: sub, Provider: "google", Region: "eu", Claims: map[string]string{"email": sub + "@example.com"}}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"grant", "withdraw"} {
		if _, err := s.AppendConsent(ctx, store.ConsentEvent{SubjectKey: sub, Purpose: "analytics", Version: 1, Decision: d, Source: "api"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"sign_in", "consent", "sign_out"} {
		if _, err := s.AppendAudit(ctx, store.AuditEvent{Kind: k, SubjectKey: sub}); err != nil {
			t.Fatal(err)
		}
	}
}

func assertSeeded(t *testing.T, s store.Store, sub string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Profile(ctx, sub); err != nil {
		t.Fatalf("profile of %s: %v", sub, err)
	}
	if h, err := s.ConsentHistory(ctx, sub); err != nil || len(h) != 2 {
		t.Fatalf("consent of %s = %d events, %v", sub, len(h), err)
	}
	if a, err := s.AuditEvents(ctx, sub, 0); err != nil || len(a) != 3 {
		t.Fatalf("audit of %s = %d events, %v", sub, len(a), err)
	}
}

// testEraseAtomic makes the last step of an erase (enqueueing the second
// notification) fail inside the database and checks the earlier steps were
// rolled back with it.
func testEraseAtomic(t *testing.T, s store.Store) {
	ctx := context.Background()
	const sub = "oidc:google:atomic"
	seed(t, s, sub)
	db := raw(t, s)
	var ddl []string
	switch s.Kind() {
	case "sqlite":
		ddl = []string{`CREATE TRIGGER test_explode BEFORE INSERT ON deliveries WHEN NEW.webhook = 'explode'
			BEGIN SELECT RAISE(ABORT, 'test: webhook explode refused'); END`}
	case "postgres":
		ddl = []string{
			`CREATE FUNCTION test_explode() RETURNS trigger LANGUAGE plpgsql AS $$
			 BEGIN IF NEW.webhook = 'explode' THEN RAISE EXCEPTION 'test: webhook explode refused'; END IF; RETURN NEW; END $$`,
			`CREATE TRIGGER test_explode BEFORE INSERT ON deliveries FOR EACH ROW EXECUTE FUNCTION test_explode()`,
		}
	default:
		t.Fatalf("unknown kind %q", s.Kind())
	}
	for _, q := range ddl {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Erase(ctx, sub, "tomb:atomic", []store.Delivery{
		{Webhook: "crm", Event: "subject.deleted", SubjectKey: sub},
		{Webhook: "explode", Event: "subject.deleted", SubjectKey: sub},
	})
	if err == nil || !strings.Contains(err.Error(), "explode refused") {
		t.Fatalf("erase err = %v, want the injected failure", err)
	}
	assertSeeded(t, s, sub)
	if h, _ := s.ConsentHistory(ctx, "tomb:atomic"); len(h) != 0 {
		t.Fatalf("tombstone rows survived rollback: %+v", h)
	}
	if due, _ := s.DueDeliveries(ctx, time.Now().Add(time.Hour), 10); len(due) != 0 {
		t.Fatalf("deliveries survived rollback: %+v", due)
	}
}

func testConcurrentAppends(t *testing.T, s store.Store) {
	ctx := context.Background()
	const workers, each = 20, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	seqs := make(chan int64, 2*workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				c, err := s.AppendConsent(ctx, store.ConsentEvent{SubjectKey: "shared", Purpose: fmt.Sprintf("p%d", w), Version: i, Decision: "grant"})
				if err != nil {
					errs <- err
					return
				}
				a, err := s.AppendAudit(ctx, store.AuditEvent{Kind: "sign_in", SubjectKey: "shared", RequestID: fmt.Sprintf("%d-%d", w, i)})
				if err != nil {
					errs <- err
					return
				}
				seqs <- c.Seq
				seqs <- -a.Seq // audit seqs are a separate sequence
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	close(seqs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for q := range seqs {
		if seen[q] {
			t.Fatalf("duplicate seq %d", q)
		}
		seen[q] = true
	}
	hist, err := s.ConsentHistory(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != workers*each {
		t.Fatalf("ledger has %d events, want %d", len(hist), workers*each)
	}
	perPurpose := map[string]int{}
	for i, e := range hist {
		if i > 0 && e.Seq <= hist[i-1].Seq {
			t.Fatalf("history not ordered by seq at %d", i)
		}
		if !seen[e.Seq] {
			t.Fatalf("seq %d in ledger was never returned", e.Seq)
		}
		// Each worker's own events keep their order.
		if e.Version != perPurpose[e.Purpose] {
			t.Fatalf("%s: version %d out of order", e.Purpose, e.Version)
		}
		perPurpose[e.Purpose]++
	}
	if evs, _ := s.AuditEvents(ctx, "shared", 0); len(evs) != workers*each {
		t.Fatalf("audit has %d events, want %d", len(evs), workers*each)
	}
}

func testDeliveryLifecycle(t *testing.T, s store.Store) {
	ctx := context.Background()
	now := t0
	id1, err := s.EnqueueDelivery(ctx, store.Delivery{Webhook: "crm", Event: "subject.deleted", SubjectKey: "u", Payload: []byte{0, 1, 2, 0xff}, NextAttempt: now})
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s.EnqueueDelivery(ctx, store.Delivery{Webhook: "crm", Event: "subject.deleted", SubjectKey: "v", NextAttempt: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	due, err := s.DueDeliveries(ctx, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0].ID != id1 || !bytes.Equal(due[0].Payload, []byte{0, 1, 2, 0xff}) || due[0].Status != "pending" || due[0].Attempts != 0 {
		t.Fatalf("due = %+v", due)
	}
	// Leased: not handed out again before the lease ends...
	if again, _ := s.DueDeliveries(ctx, now.Add(time.Second), 10); len(again) != 0 {
		t.Fatalf("leased delivery claimed again: %+v", again)
	}
	// ...but after it ends (the sender crashed), it is.
	if again, _ := s.DueDeliveries(ctx, now.Add(2*time.Hour), 10); len(again) != 2 {
		t.Fatalf("after lease expiry: %+v", again)
	}
	// Give up on the second one.
	if err := s.MarkDelivery(ctx, id2, false, "gone", time.Time{}); err != nil {
		t.Fatal(err)
	}
	// Failure with retry: pending again at next, error kept.
	if err := s.MarkDelivery(ctx, id1, false, "HTTP 503", now.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.DueDeliveries(ctx, now.Add(3*time.Hour-time.Second), 10); len(d) != 0 {
		t.Fatalf("retried before next attempt: %+v", d)
	}
	d, _ := s.DueDeliveries(ctx, now.Add(3*time.Hour), 10)
	if len(d) != 1 || d[0].ID != id1 || d[0].Attempts != 1 || d[0].LastError != "HTTP 503" || !d[0].NextAttempt.Equal(now.Add(3*time.Hour)) {
		t.Fatalf("after retry = %+v", d)
	}
	if err := s.MarkDelivery(ctx, id1, true, "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.DueDeliveries(ctx, now.Add(100*time.Hour), 10); len(d) != 0 {
		t.Fatalf("settled deliveries still due: %+v", d)
	}
	if err := s.MarkDelivery(ctx, id1, true, "", time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("marking a settled delivery: %v", err)
	}
	if err := s.MarkDelivery(ctx, 999999, true, "", time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("marking an unknown delivery: %v", err)
	}
}

func testDeliveryClaimConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const total = 200
	for i := 0; i < total; i++ {
		if _, err := s.EnqueueDelivery(ctx, store.Delivery{Webhook: "crm", Event: "e", SubjectKey: fmt.Sprint(i), NextAttempt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	claimedBy := map[int64]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for c := 0; c < 2; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for {
				batch, err := s.DueDeliveries(ctx, t0.Add(time.Second), 7)
				if err != nil {
					errs <- err
					return
				}
				if len(batch) == 0 {
					return
				}
				mu.Lock()
				for _, d := range batch {
					if prev, dup := claimedBy[d.ID]; dup {
						mu.Unlock()
						errs <- fmt.Errorf("delivery %d claimed by %d and %d", d.ID, prev, c)
						return
					}
					claimedBy[d.ID] = c
				}
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(claimedBy) != total {
		t.Fatalf("claimed %d of %d", len(claimedBy), total)
	}
}

// RunSchema checks migrations: opening twice is harmless, two concurrent
// opens of a fresh database all succeed with the schema migrated once, and
// a database whose schema is newer than the binary is refused.
func RunSchema(t *testing.T, newDSN DSNMaker) {
	ctx := context.Background()
	t.Run("OpenTwice", func(t *testing.T) {
		dsn := newDSN(t)
		for i := 0; i < 2; i++ {
			s, err := store.Open(ctx, dsn, store.Options{})
			if err != nil {
				t.Fatalf("open #%d: %v", i+1, err)
			}
			if i == 1 {
				// Data written by the first open is still there.
				if _, err := s.Profile(ctx, "persisted"); err != nil {
					t.Fatalf("reopened store lost data: %v", err)
				}
				assertMigratedOnce(t, s)
			} else if err := s.UpsertProfile(ctx, store.Profile{SubjectKey: "persisted"}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("ConcurrentOpen", func(t *testing.T) {
		dsn := newDSN(t)
		const n = 4
		stores := make([]store.Store, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				stores[i], errs[i] = store.Open(ctx, dsn, store.Options{})
			}(i)
		}
		close(start)
		wg.Wait()
		for i := 0; i < n; i++ {
			if errs[i] != nil {
				t.Fatalf("open #%d: %v", i, errs[i])
			}
			defer stores[i].Close()
		}
		assertMigratedOnce(t, stores[0])
		if _, err := stores[0].AppendAudit(ctx, store.AuditEvent{Kind: "admin"}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("NewerSchemaRefused", func(t *testing.T) {
		dsn := newDSN(t)
		s, err := store.Open(ctx, dsn, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		future := store.SchemaVersion() + 1
		if _, err := raw(t, s).ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from_the_future', $2)`,
			future, tsFor(s, time.Now())); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s, err = store.Open(ctx, dsn, store.Options{})
		if err == nil {
			s.Close()
			t.Fatal("opening a database with a newer schema succeeded")
		}
		if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), fmt.Sprint(future)) {
			t.Fatalf("err = %v, want ErrSchemaTooNew naming version %d", err, future)
		}
	})
}

func tsFor(s store.Store, t time.Time) any {
	if s.Kind() == "sqlite" {
		return t.UnixNano()
	}
	return t
}

func assertMigratedOnce(t *testing.T, s store.Store) {
	t.Helper()
	db, _ := store.RawDB(s)
	var rows, distinct, max int
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT version), max(version) FROM schema_migrations`).Scan(&rows, &distinct, &max); err != nil {
		t.Fatal(err)
	}
	if want := store.SchemaVersion(); rows != want || distinct != want || max != want {
		t.Fatalf("schema_migrations: %d rows, %d versions, max %d; want %d", rows, distinct, max, want)
	}
}

// BenchmarkAppendAudit measures AppendAudit on the store open returns.
func BenchmarkAppendAudit(b *testing.B, s store.Store) {
	ctx := context.Background()
	e := store.AuditEvent{Kind: "sign_in", SubjectKey: "oidc:google:bench", RequestID: "req-1",
		Detail: map[string]string{"ip": "203.0.113.7", "provider": "google"}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.AppendAudit(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}
