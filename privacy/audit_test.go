package privacy_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/privacy"
)

func TestAuditHelper(t *testing.T) {
	e := newEnv(t, baseConfig("http://127.0.0.1:1"), privacy.Options{})
	key := "https://idp.example|u1"
	detail := map[string]string{"provider": "google"}
	if err := e.p.Audit(ctxT(), privacy.KindSignOut, key, "us", "req-1", detail); err != nil {
		t.Fatal(err)
	}
	detail["provider"] = "changed" // the event keeps its own copy
	if err := e.p.Audit(ctxT(), privacy.KindPolicyReload, "", "eu", "", map[string]string{"policy_sha256": "abc"}); err != nil {
		t.Fatal(err)
	}
	evs, err := e.stores["us"].AuditEvents(ctxT(), key, 0)
	if err != nil || len(evs) != 1 || evs[0].Kind != "sign_out" || evs[0].RequestID != "req-1" || evs[0].Detail["provider"] != "google" || !evs[0].At.Equal(t0) {
		t.Fatalf("us events %+v, %v", evs, err)
	}
	if evs, _ := e.stores["eu"].AuditEvents(ctxT(), key, 0); len(evs) != 0 {
		t.Errorf("the event went to another region too: %+v", evs)
	}
	sys, _ := e.stores["eu"].AuditEvents(ctxT(), "", 0)
	if len(sys) != 1 || sys[0].Kind != "policy_reload" || sys[0].Detail["policy_sha256"] != "abc" {
		t.Errorf("system events %+v", sys)
	}
	if err := e.p.Audit(ctxT(), " ", key, "eu", "", nil); !errors.Is(err, privacy.ErrInvalid) {
		t.Errorf("empty kind: %v", err)
	}
	if err := e.p.Audit(ctxT(), privacy.KindAdmin, key, "mars", "", nil); !errors.Is(err, privacy.ErrUnknownRegion) {
		t.Errorf("unknown region: %v", err)
	}
	// The kinds written through Audit are kinds retention accepts.
	for _, k := range []string{privacy.KindSignOut, privacy.KindAdmin, privacy.KindPolicyReload} {
		if !slices.Contains(config.AuditKinds, k) {
			t.Errorf("retention does not accept %q", k)
		}
	}
}
