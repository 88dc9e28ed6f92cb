// Package app wires a loaded policy into a running gateway: it builds the
// providers, the session store, the assertion signer and the pages, and
// hands them to proxy.New. cmd/gatehouse and the end-to-end tests share it.
package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/policy"
	"github.com/gatehouse-dev/gatehouse/privacy"
	"github.com/gatehouse-dev/gatehouse/providers"
	"github.com/gatehouse-dev/gatehouse/providers/bearer"
	"github.com/gatehouse-dev/gatehouse/providers/local"
	"github.com/gatehouse-dev/gatehouse/providers/oidc"
	"github.com/gatehouse-dev/gatehouse/providers/saml"
	"github.com/gatehouse-dev/gatehouse/providers/static"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/proxy/assertion"
	"github.com/gatehouse-dev/gatehouse/proxy/pages"
	"github.com/gatehouse-dev/gatehouse/session"
	"github.com/gatehouse-dev/gatehouse/state"
	"github.com/gatehouse-dev/gatehouse/state/redis"
	"github.com/gatehouse-dev/gatehouse/store"
)

// Loaded is a policy file read, validated and compiled.
type Loaded struct {
	Path   string
	Hash   string // hex SHA-256 of the file
	Config *config.Config
	Policy *policy.Policy
}

// Load reads, validates and compiles a policy file. Errors are
// config.Diagnostics when the policy itself is wrong.
func Load(path string) (*Loaded, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return LoadBytes(path, data, os.LookupEnv)
}

// LoadBytes is Load on bytes already read.
func LoadBytes(name string, data []byte, env config.LookupEnv) (*Loaded, error) {
	cfg, err := config.Parse(name, data, env)
	if err != nil {
		return nil, err
	}
	pol, err := policy.Compile(cfg)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	pol.Hash = hex.EncodeToString(sum[:])
	return &Loaded{Path: name, Hash: pol.Hash, Config: cfg, Policy: pol}, nil
}

// Secrets are generated values used when the policy gives none, kept
// across reloads so that a reload does not sign everybody out.
type Secrets struct {
	SessionKey   []byte
	AssertionKey assertion.Key
	// Shared is the shared state (OpenShared), kept across reloads: a
	// reload does not reconnect. nil at the first Build means this
	// process's memory.
	Shared state.Shared
	// CheckOnly builds to check the policy ('gatehouse validate'): nothing
	// is opened, created or migrated. The result must not serve.
	CheckOnly bool
	// Regions are the privacy stores, opened at the first build that needs
	// them and kept across reloads (regionsDSNs says which), closed by
	// CloseShared.
	Regions    *privacy.Regions
	regionsKey string
}

// CloseShared closes the connections kept across reloads: the shared state
// and the privacy stores.
func (s *Secrets) CloseShared() {
	if s == nil {
		return
	}
	if s.Shared != nil {
		s.Shared.Close()
	}
	if s.Regions != nil {
		s.Regions.Close()
	}
}

// openRegions opens the privacy stores the policy names, or keeps the ones
// already open when the policy names the same.
func (sec *Secrets) openRegions(cfg *config.Config, log *zap.Logger) error {
	rc := cfg.Privacy.Regions
	if len(rc.Stores) == 0 || sec.CheckOnly {
		return nil
	}
	names := make([]string, 0, len(rc.Stores))
	for n := range rc.Stores {
		names = append(names, n+"="+rc.Stores[n])
	}
	sort.Strings(names)
	key := strings.Join(names, "\x00") + "\x00" + rc.DefaultRegion()
	if sec.Regions != nil {
		if key != sec.regionsKey {
			log.Warn("privacy.regions changed: the new stores are used after Gatehouse restarts; the running ones stay")
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := privacy.OpenRegions(ctx, rc, store.Options{Logger: log})
	if err != nil {
		return err
	}
	sec.Regions, sec.regionsKey = r, key
	return nil
}

// OpenShared connects to the shared state the policy names (state.redis_url)
// or returns this process's memory. A Redis that cannot be reached is an
// error: Gatehouse does not start half-shared.
func OpenShared(ctx context.Context, cfg *config.Config, log *zap.Logger) (state.Shared, error) {
	if cfg.State.RedisURL == "" {
		return state.NewMemory(nil), nil
	}
	s, err := redis.Open(ctx, cfg.State.RedisURL, redis.Options{KeyPrefix: cfg.State.KeyPrefix, Timeout: cfg.State.Timeout.D()})
	if err != nil {
		return nil, fmt.Errorf("state.redis_url: %w", err)
	}
	log.Info("shared state on Redis", zap.String("key_prefix", cfg.State.KeyPrefix))
	return s, nil
}

// samlReplay adapts a state.Once to the SAML provider's replay cache.
type samlReplay struct{ once state.Once }

func (r samlReplay) Consume(id string, expiresAt time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	first, err := r.once.Claim(ctx, "saml-assertion:"+id, expiresAt)
	if err != nil {
		return err
	}
	if !first {
		return saml.ErrReplayed
	}
	return nil
}

// Build turns a loaded policy into gateway options. prev carries the
// ephemeral secrets of the previous build (nil at start). Warnings go to
// the logger.
func Build(l *Loaded, log *zap.Logger, prev *Secrets) (proxy.Options, *Secrets, error) {
	sec := &Secrets{}
	if prev != nil {
		*sec = *prev
	}
	o, err := build(l, log, sec)
	if err != nil {
		// Nothing of a failed build serves: stop what it started.
		CloseProviders(o.Providers)
		if sec.Regions != nil && (prev == nil || prev.Regions != sec.Regions) {
			sec.Regions.Close()
		}
		return o, nil, err
	}
	return o, sec, nil
}

func build(l *Loaded, log *zap.Logger, sec *Secrets) (proxy.Options, error) {
	cfg := l.Config
	if sec.Shared == nil {
		sec.Shared = state.NewMemory(nil)
	}
	if cfg.State.RedisURL != "" && sec.Shared.Kind() != "redis" {
		log.Warn("state.redis_url is set but this process keeps state in memory: restart Gatehouse to connect to Redis")
	}
	o := proxy.Options{Policy: l.Policy, Logger: log, Shared: sec.Shared}

	// Session keys: from the policy, or one random key for this process.
	var keys [][]byte
	for _, k := range cfg.Session.Keys {
		keys = append(keys, []byte(k))
	}
	if len(keys) == 0 {
		if sec.SessionKey == nil {
			sec.SessionKey = make([]byte, 32)
			rand.Read(sec.SessionKey)
			log.Warn("no session.keys in the policy: using a random key; sessions end when Gatehouse restarts and are not shared between replicas (generate keys with 'gatehouse keys')")
		}
		keys = [][]byte{sec.SessionKey}
	}
	sameSite := map[string]http.SameSite{"lax": http.SameSiteLaxMode, "strict": http.SameSiteStrictMode, "none": http.SameSiteNoneMode}[cfg.Session.SameSite]
	cookies, err := session.NewCookieStore(session.Options{
		Name: cfg.Session.CookieName, Keys: keys, Secure: !cfg.Session.InsecureCookies, SameSite: sameSite,
		Domain: cfg.Session.Domain, Idle: cfg.Session.Idle.D(), Lifetime: cfg.Session.Lifetime.D(),
	})
	if err != nil {
		return o, err
	}
	o.Sessions = cookies
	if cfg.Session.Store == "server" {
		if sec.Shared.Kind() == "memory" {
			log.Warn("session.store is server but the shared state is this process's memory: sessions end when Gatehouse restarts and are not shared between replicas (set state.redis_url)")
		}
		o.Store = session.NewServerStore(cookies, sec.Shared.Sessions())
	}
	uk := sha256.Sum256(append([]byte("gatehouse log user hash\x00"), keys[0]...))
	o.UserKey = uk[:]

	// Privacy: the stores are opened once and kept across reloads; the
	// compiled policy is rebuilt with every policy.
	if err := sec.openRegions(cfg, log); err != nil {
		return o, fmt.Errorf("privacy.regions: %w", err)
	}
	if len(cfg.Privacy.Purposes) > 0 || len(cfg.Privacy.Regions.Stores) > 0 || cfg.Privacy.PseudonymKey != "" {
		o.Privacy, err = privacy.New(cfg, sec.Regions, privacy.Options{Logger: log, LogKey: o.UserKey})
		if err != nil {
			return o, err
		}
	}

	// Assertion signing keys.
	if !cfg.Assertion.Disabled {
		var akeys []assertion.Key
		for i, k := range cfg.Assertion.Keys {
			pemBytes := []byte(k.PEM)
			if k.File != "" {
				p := k.File
				if !filepath.IsAbs(p) {
					p = filepath.Join(filepath.Dir(l.Path), p)
				}
				pemBytes, err = os.ReadFile(p)
				if err != nil {
					return o, fmt.Errorf("assertion.keys[%d]: %w", i, err)
				}
			}
			signer, err := assertion.ParsePrivateKeyPEM(pemBytes)
			if err != nil {
				return o, fmt.Errorf("assertion.keys[%d]: %w", i, err)
			}
			akeys = append(akeys, assertion.Key{ID: k.ID, Signer: signer})
		}
		if len(akeys) == 0 {
			if sec.AssertionKey.Signer == nil {
				pemBytes, err := assertion.GenerateKeyPEM()
				if err != nil {
					return o, err
				}
				s, err := assertion.ParsePrivateKeyPEM(pemBytes)
				if err != nil {
					return o, err
				}
				sec.AssertionKey = assertion.Key{Signer: s}
				log.Warn("no assertion.keys in the policy: signing assertions with a key generated at start; upstreams must fetch /.gatehouse/jwks.json again after a restart")
			}
			akeys = []assertion.Key{sec.AssertionKey}
		}
		o.Signer, err = assertion.NewSigner(akeys, cfg.Assertion.TTL.D(), time.Now)
		if err != nil {
			return o, err
		}
	}

	// Pages.
	o.Pages, err = pages.New(pages.Brand{Title: cfg.Branding.Title, LogoURL: cfg.Branding.Logo,
		PrimaryColor: cfg.Branding.PrimaryColor, BackgroundColor: cfg.Branding.BackgroundColor}, cfg.Branding.Templates)
	if err != nil {
		return o, err
	}

	// Providers, in a stable order.
	o.Providers = map[string]providers.Provider{}
	// Bearer-token providers (jwt, introspection) check API tokens only:
	// they go into o.Bearer, never into o.Providers (no browser sign-in).
	o.Bearer = map[string]providers.BearerAuthenticator{}
	names := make([]string, 0, len(cfg.Providers))
	for n := range cfg.Providers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		pc := cfg.Providers[name]
		switch {
		case pc.Static != nil:
			log.Warn("provider "+name+" is of type static: anyone can sign in as any of its users. For tests and demos only, never production", zap.String("provider", name))
			o.Providers[name] = static.New(name, pc.Static, proxy.Prefix+"static/"+name)
		case pc.JWT != nil, pc.Introspection != nil:
			b, err := bearer.New(cfg, name, bearer.Env{Logger: log})
			if err != nil {
				return o, fmt.Errorf("providers.%s: %w", name, err)
			}
			o.Bearer[name] = b
		case pc.OIDC != nil, pc.Google != nil, pc.Microsoft != nil, pc.GitLab != nil, pc.GitHub != nil:
			// No I/O here: OIDC discovery is lazy, so a provider that is
			// down does not stop Gatehouse from starting (readiness says).
			p, err := oidc.NewFromSettings(name, pc.Settings(), oidc.Env{Logger: log, Replay: sec.Shared.Once()})
			if err != nil {
				return o, fmt.Errorf("providers.%s: %w", name, err)
			}
			o.Providers[name] = p
		case pc.SAML != nil:
			// Reads the SP key pair (and a metadata file) now; a metadata
			// URL is fetched in the background (readiness says).
			p, err := saml.New(name, pc.SAML, saml.Env{PublicURL: cfg.Server.PublicURL, BaseDir: filepath.Dir(l.Path), Logger: log, Replay: samlReplay{sec.Shared.Once()}})
			if err != nil {
				return o, fmt.Errorf("providers.%s: %w", name, err)
			}
			o.Providers[name] = p
		case pc.Local != nil:
			// Opens its account store and mail sender now (not when only
			// checking the policy). The gateway binds it when it takes it
			// into service (sessions end after a password reset, client IP
			// behind trusted proxies); a reload closes the previous one.
			insecure := cfg.Session.InsecureCookies
			p, err := local.New(name, pc.Local, local.Env{PublicURL: cfg.Server.PublicURL, BaseDir: filepath.Dir(l.Path), Logger: log,
				Once: sec.Shared.Once(), Limiter: sec.Shared.Limiter(), Keys: keys, InsecureCookies: &insecure, CheckOnly: sec.CheckOnly})
			if err != nil {
				return o, fmt.Errorf("providers.%s: %w", name, err)
			}
			o.Providers[name] = p
		default:
			return o, fmt.Errorf("providers.%s: type %q is not supported yet", name, pc.Type)
		}
	}
	return o, nil
}

// CloseProviders stops what providers run in the background (SAML
// metadata refresh) and closes what they opened (local accounts' store).
func CloseProviders(ps map[string]providers.Provider) {
	for _, p := range ps {
		if c, ok := p.(io.Closer); ok {
			c.Close()
		}
	}
}
