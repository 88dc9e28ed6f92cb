// Package static is a provider with a fixed list of users picked on a form.
//
// NOT FOR PRODUCTION: anyone who reaches the picker can become any listed
// user. It exists for tests, demos and trying a policy out; Gatehouse logs a
// warning at start whenever a static provider is configured.
package static

import (
	"context"
	"errors"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/providers"
)

// Provider is the static test provider.
type Provider struct {
	name, display string
	users         []config.StaticUser
	// PickerPath is the gateway path showing the user picker; the proxy
	// serves it and posts the choice to the callback.
	pickerPath string
}

var _ providers.Provider = (*Provider)(nil)

// New builds a static provider. pickerPath is where the proxy serves the
// picker page (e.g. /.gatehouse/static/demo).
func New(name string, cfg *config.StaticProvider, pickerPath string) *Provider {
	display := cfg.DisplayName
	if display == "" {
		display = name + " (test users)"
	}
	return &Provider{name: name, display: display, users: cfg.Users, pickerPath: pickerPath}
}

// Name returns the provider's policy name.
func (p *Provider) Name() string { return p.name }

// Type returns "static".
func (p *Provider) Type() string { return "static" }

// DisplayName returns the chooser label.
func (p *Provider) DisplayName() string { return p.display }

// Users lists the users offered on the picker.
func (p *Provider) Users() []config.StaticUser { return p.users }

// Begin sends the browser to the picker, carrying the attempt's state.
func (p *Provider) Begin(_ context.Context, a *providers.Attempt) (*providers.Redirect, error) {
	return &providers.Redirect{URL: p.pickerPath + "?state=" + a.State}, nil
}

// CallbackState reads the state form field of the picker's POST.
func (p *Provider) CallbackState(r *http.Request) string {
	if r.Method != http.MethodPost {
		return ""
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	return r.PostFormValue("state")
}

// Complete turns the chosen user into an identity. Only POST is accepted,
// so a link cannot sign anybody in.
func (p *Provider) Complete(_ context.Context, r *http.Request, a *providers.Attempt) (*identity.Identity, error) {
	if r.Method != http.MethodPost {
		return nil, providers.Fail("bad_method", "Please choose a user on the sign-in page.", errors.New("static callback needs POST"))
	}
	sub := r.PostFormValue("user")
	for _, u := range p.users {
		if u.Subject != sub {
			continue
		}
		id := &identity.Identity{
			Subject:       u.Subject,
			Issuer:        "static:" + p.name,
			Provider:      p.name,
			Audience:      a.Audience,
			Email:         u.Email,
			EmailVerified: u.Email != "",
			Name:          u.Name,
			Groups:        append([]string(nil), u.Groups...),
			AMR:           append([]string(nil), u.AMR...),
			ACR:           u.ACR,
		}
		if len(id.AMR) == 0 {
			id.AMR = []string{"pwd"} // a static user claims exactly what the policy lists
		}
		return id, nil
	}
	return nil, providers.Fail("unknown_user", "That user is not available. Please choose again.", errors.New("unknown static user "+sub))
}
