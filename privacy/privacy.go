// Package privacy implements Gatehouse's privacy features for the customer
// audience on top of the durable store (package store): the consent ledger
// (GDPR art. 7), access and portability exports (art. 15, 20), erasure with
// signed deletion notices to upstreams (art. 17), data minimization and
// pairwise pseudonymous subjects (art. 5, 25), per-kind audit retention and
// regional residency (one store per region).
//
// A Policy is compiled from the privacy section of a loaded configuration
// and is cheap to rebuild on every policy reload. Regions owns the open
// stores and outlives reloads. Every method takes a context, returns errors
// that name the operation ("privacy: record consent: ...") and never panics
// on bad input.
//
// Subjects are identified by a subject key, SubjectKey(id), which is
// identity.Identity.Key(): "issuer|subject".
package privacy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
)

// Errors, for errors.Is.
var (
	// ErrInvalid is returned for input refused before any store is touched.
	ErrInvalid = errors.New("privacy: invalid input")
	// ErrUnknownRegion is returned for a region with no configured store.
	ErrUnknownRegion = errors.New("privacy: unknown region")
	// ErrUnknownPurpose is returned when a decision names a purpose the
	// policy does not define.
	ErrUnknownPurpose = errors.New("privacy: unknown purpose")
	// ErrStaleVersion is returned by Record when the customer decided on a
	// purpose version other than the current one (the policy was reloaded
	// while the consent page was open): show the page again.
	ErrStaleVersion = errors.New("privacy: purpose version changed")
	// ErrNotConfigured is returned when a feature needs settings the policy
	// lacks (for example a pairwise subject without a pseudonym key).
	ErrNotConfigured = errors.New("privacy: not configured")
)

// Audit event kinds written by this package.
const (
	KindConsent = "consent"
	KindExport  = "export"
	KindDelete  = "delete"
)

// Legal bases (GDPR art. 6).
const (
	BasisConsent            = "consent"
	BasisContract           = "contract"
	BasisLegitimateInterest = "legitimate_interest"
	BasisLegalObligation    = "legal_obligation"
)

// EventDeletion is the webhook event sent when a customer is erased.
const EventDeletion = "deletion"

const (
	subjectDeletedEventName  = "subject.deleted"
	defaultMaxAttempts       = 10
	defaultDeliveryBatchSize = 50
)

// Purpose is a compiled consent purpose.
type Purpose struct {
	ID          string `json:"id"`
	Description string `json:"description"`
	LegalBasis  string `json:"legal_basis"`
	Version     int    `json:"version"`
	Required    bool   `json:"required"`
}

// OptIn reports whether the purpose needs a grant of its current version
// (consent and contract); legitimate interest only needs the absence of an
// objection, and a legal obligation needs nothing.
func (p Purpose) OptIn() bool {
	return p.LegalBasis == BasisConsent || p.LegalBasis == BasisContract
}

// RoutePolicy is a route's compiled privacy settings.
type RoutePolicy struct {
	// Route is the route name.
	Route string
	// Consent lists the purposes the route requires: the globally required
	// ones followed by the route's own, without duplicates.
	Consent []string
	// Claims lists the claims the upstream may receive; meaningful only
	// when LimitClaims is true (otherwise the forward settings decide).
	Claims []string
	// LimitClaims is true when the route lists its claims ([] included).
	LimitClaims bool
	// Pseudonym is the pseudonym group, "" for the real subject.
	Pseudonym string
	// Regions lists the regions whose customers the route serves; empty
	// means all.
	Regions []string
}

// AllowsRegion reports whether customers of region may use the route.
func (rp *RoutePolicy) AllowsRegion(region string) bool {
	return rp == nil || len(rp.Regions) == 0 || slices.Contains(rp.Regions, region)
}

// Webhook is a compiled webhook.
type Webhook struct {
	Name      string
	URL       string
	Secret    []byte
	Events    []string
	Pseudonym string
}

// Options tune a Policy. The zero value is usable.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives delivery and purge messages; nil means none.
	Logger *zap.Logger
	// LogKey keys LogUser's hash. Give the proxy's access-log user key so
	// that customers hash identically in every log line. Nil derives a key
	// from the pseudonym key; without either, hash mode omits.
	LogKey []byte
	// MaxAttempts bounds webhook delivery attempts; zero means 10.
	MaxAttempts int
	// BackoffBase and BackoffMax shape the retry delay: base * 2^(attempt-1),
	// capped at max, with full jitter in [delay/2, delay]. Zero means 30s
	// and 6h.
	BackoffBase, BackoffMax time.Duration
	// DeliveryBatch is how many deliveries Deliver claims per region and
	// step; zero means 50.
	DeliveryBatch int
	// Jitter returns a number in [0, 1); nil uses math/rand/v2.
	Jitter func() float64
}

// Policy is the compiled privacy section of a configuration.
type Policy struct {
	purposes   []Purpose
	byID       map[string]Purpose
	policyHash string
	key        []byte
	logMode    string
	logKey     []byte
	retention  map[string]time.Duration
	webhooks   []Webhook
	routes     map[string]*RoutePolicy
	regions    *Regions
	o          Options
}

// New compiles the privacy section of cfg, which must have been loaded
// (and so validated) by package config. regions supplies the stores and may
// be nil when only minimization and pseudonyms are used.
func New(cfg *config.Config, regions *Regions, o Options) (*Policy, error) {
	const op = "privacy: new policy"
	if cfg == nil {
		return nil, fmt.Errorf("%s: %w: nil config", op, ErrInvalid)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = defaultMaxAttempts
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 30 * time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 6 * time.Hour
	}
	if o.DeliveryBatch <= 0 {
		o.DeliveryBatch = defaultDeliveryBatchSize
	}
	pc := cfg.Privacy
	p := &Policy{
		byID:      map[string]Purpose{},
		retention: map[string]time.Duration{},
		routes:    map[string]*RoutePolicy{},
		regions:   regions,
		o:         o,
		logMode:   pc.Logs.PersonalData,
	}
	if p.logMode == "" {
		p.logMode = "hash"
	}
	if pc.PseudonymKey != "" {
		if len(pc.PseudonymKey) < 32 {
			return nil, fmt.Errorf("%s: %w: pseudonym key shorter than 32 bytes", op, ErrInvalid)
		}
		p.key = []byte(pc.PseudonymKey)
	}
	p.logKey = o.LogKey
	if p.logKey == nil && p.key != nil {
		p.logKey = derive(p.key, "log")
	}
	for _, cp := range pc.Purposes {
		pu := Purpose{ID: cp.ID, Description: cp.Description, LegalBasis: cp.LegalBasis, Version: cp.Version, Required: cp.Required}
		if pu.Version == 0 {
			pu.Version = 1
		}
		if pu.ID == "" {
			return nil, fmt.Errorf("%s: %w: purpose without id", op, ErrInvalid)
		}
		if _, dup := p.byID[pu.ID]; dup {
			return nil, fmt.Errorf("%s: %w: duplicate purpose %q", op, ErrInvalid, pu.ID)
		}
		p.purposes = append(p.purposes, pu)
		p.byID[pu.ID] = pu
	}
	p.policyHash = hashPurposes(p.purposes)
	for kind, per := range pc.Retention {
		d, err := per.Duration()
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s: %w: retention of %s: %v", op, ErrInvalid, kind, err)
		}
		p.retention[kind] = d
	}
	for _, w := range pc.Webhooks {
		if w.Pseudonym != "" && p.key == nil {
			return nil, fmt.Errorf("%s: %w: webhook %s needs a pseudonym key", op, ErrNotConfigured, w.Name)
		}
		p.webhooks = append(p.webhooks, Webhook{
			Name: w.Name, URL: w.URL, Secret: []byte(w.Secret),
			Events: slices.Clone([]string(w.Events)), Pseudonym: w.Pseudonym,
		})
	}
	var required []string
	for _, pu := range p.purposes {
		if pu.Required && pu.LegalBasis != BasisLegalObligation {
			required = append(required, pu.ID)
		}
	}
	for _, r := range cfg.Routes {
		customer := slices.Contains([]string(r.Audience), string(identity.Customer))
		rp := &RoutePolicy{Route: r.Name}
		if customer {
			rp.Consent = slices.Clone(required)
		}
		if r.Privacy != nil {
			for _, id := range r.Privacy.Consent {
				if _, ok := p.byID[id]; !ok {
					return nil, fmt.Errorf("%s: route %s: %w %q", op, r.Name, ErrUnknownPurpose, id)
				}
				if !slices.Contains(rp.Consent, id) {
					rp.Consent = append(rp.Consent, id)
				}
			}
			if r.Privacy.Claims != nil {
				rp.LimitClaims = true
				rp.Claims = slices.Clone(r.Privacy.Claims)
			}
			rp.Pseudonym = r.Privacy.Pseudonym
			if rp.Pseudonym != "" && p.key == nil {
				return nil, fmt.Errorf("%s: route %s: %w: pseudonym needs privacy.pseudonym_key", op, r.Name, ErrNotConfigured)
			}
			rp.Regions = slices.Clone(r.Privacy.Regions)
		}
		p.routes[r.Name] = rp
	}
	return p, nil
}

// Purposes returns the configured purposes in display order.
func (p *Policy) Purposes() []Purpose { return slices.Clone(p.purposes) }

// Purpose returns one purpose by id.
func (p *Policy) Purpose(id string) (Purpose, bool) {
	pu, ok := p.byID[id]
	return pu, ok
}

// PolicyHash is a hex SHA-256 of the purposes as configured (ids, texts,
// legal bases, versions): every ledger entry records it, so one can prove
// which text a customer agreed to.
func (p *Policy) PolicyHash() string { return p.policyHash }

// Route returns the compiled privacy settings of a route, or nil for an
// unknown route.
func (p *Policy) Route(name string) *RoutePolicy { return p.routes[name] }

// Regions returns the stores the policy writes to (may be nil).
func (p *Policy) Regions() *Regions { return p.regions }

// Webhooks returns the configured webhooks.
func (p *Policy) Webhooks() []Webhook { return slices.Clone(p.webhooks) }

func hashPurposes(ps []Purpose) string {
	if ps == nil {
		ps = []Purpose{}
	}
	b, _ := json.Marshal(ps) // fields of fixed types: cannot fail
	sum := sha256.Sum256(append([]byte("gatehouse purposes v1\x00"), b...))
	return hex.EncodeToString(sum[:])
}

// SubjectKey is the key under which the store keeps a subject:
// identity.Identity.Key(), "issuer|subject".
func SubjectKey(id *identity.Identity) string {
	if id == nil {
		return ""
	}
	return id.Key()
}

// SplitSubjectKey splits a subject key into issuer and subject at the first
// '|' (issuers are URLs or provider names, which contain none; subjects such
// as Auth0's "google-oauth2|123" may).
func SplitSubjectKey(key string) (issuer, subject string, ok bool) {
	issuer, subject, ok = strings.Cut(key, "|")
	return issuer, subject, ok && subject != ""
}

func (p *Policy) now() time.Time { return p.o.Now().UTC() }

func invalid(op, format string, args ...any) error {
	return fmt.Errorf("privacy: %s: %w: %s", op, ErrInvalid, fmt.Sprintf(format, args...))
}

func validKey(op, key string) error {
	if strings.TrimSpace(key) == "" {
		return invalid(op, "empty subject key")
	}
	return nil
}
