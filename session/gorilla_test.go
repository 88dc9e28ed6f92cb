package session

import (
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gorilla/sessions"
)

func TestGorillaStore(t *testing.T) {
	s, _ := newTestStore(t, nil)
	var g sessions.Store = s.Gorilla()
	name := s.CookieName(identity.Customer)

	// No cookie: a new, empty session and no error (gorilla's convention).
	sess, err := g.Get(newJar().request(), name)
	if err != nil || sess == nil || !sess.IsNew || len(sess.Values) != 0 {
		t.Fatalf("Get without cookie = %+v, %v", sess, err)
	}
	if sess.Options.MaxAge != 12*3600 || !sess.Options.HttpOnly || !sess.Options.Secure || sess.Options.Path != "/" {
		t.Fatalf("session options = %+v", sess.Options)
	}

	// Save through gorilla's interface, read through both faces.
	p := testPayload(identity.Customer)
	sess.Values[PayloadKey] = p
	rec := httptest.NewRecorder()
	if err := sess.Save(newJar().request(), rec); err != nil {
		t.Fatalf("Session.Save: %v", err)
	}
	j := newJar()
	j.apply(t, rec)
	sess, err = g.New(j.request(), name)
	if err != nil || sess.IsNew || sess.ID != p.ID {
		t.Fatalf("New = %+v, %v", sess, err)
	}
	if got := sess.Values[PayloadKey].(*Payload); got.Identity.Subject != p.Identity.Subject {
		t.Fatalf("payload = %+v", got)
	}
	if _, _, err := s.Load(j.request(), identity.Customer); err != nil {
		t.Fatalf("Load after gorilla Save: %v", err)
	}

	// MaxAge < 0 deletes.
	sess.Options.MaxAge = -1
	rec = httptest.NewRecorder()
	if err := g.Save(j.request(), rec, sess); err != nil {
		t.Fatal(err)
	}
	j.apply(t, rec)
	if _, _, err := s.Load(j.request(), identity.Customer); !errors.Is(err, ErrNoSession) {
		t.Fatalf("Load after gorilla delete = %v", err)
	}

	// Errors: unknown names, foreign values, audience mismatch, bad cookies.
	if sess, err := g.New(newJar().request(), "session"); err == nil || sess == nil {
		t.Errorf("New with unknown name = %v, %v; want a session and an error", sess, err)
	}
	other := sessions.NewSession(g, name)
	other.Values["flash"] = "hello"
	if err := g.Save(newJar().request(), httptest.NewRecorder(), other); err == nil {
		t.Error("Save of foreign Values succeeded")
	}
	wrong := sessions.NewSession(g, s.CookieName(identity.Workforce))
	wrong.Values[PayloadKey] = testPayload(identity.Customer)
	if err := g.Save(newJar().request(), httptest.NewRecorder(), wrong); err == nil {
		t.Error("Save of a customer payload under the workforce name succeeded")
	}
	bad := newJar()
	bad.set(name, "garbage")
	if sess, err := g.Get(bad.request(), name); !errors.Is(err, ErrInvalid) || sess == nil || !sess.IsNew {
		t.Errorf("Get of garbage = %+v, %v", sess, err)
	}
}
