package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Privacy configures consent purposes, data minimization, regions and
// retention for the customer audience. The privacy package compiles it; this
// file only describes and checks it.
type Privacy struct {
	Purposes     []Purpose         `yaml:"purposes" doc:"Consent purposes, in the order the consent page shows them. Each ledger entry records the purpose's version and a hash of this list."`
	PseudonymKey string            `yaml:"pseudonym_key" doc:"Secret of at least 32 bytes (use ${ENV}) keying pairwise subjects (routes' pseudonym groups) and webhook subjects. Changing it changes every pairwise subject."`
	Logs         PrivacyLogs       `yaml:"logs" doc:"How customers' personal data appears in logs."`
	Regions      Regions           `yaml:"regions" doc:"Data residency: one durable store per region and how a customer's region is found."`
	Retention    map[string]Period `yaml:"retention" doc:"How long audit events are kept, per kind (sign_in, sign_out, consent, export, delete, admin, policy_reload): 90d, 2y, 6w or a Go duration. Kinds not listed are kept. The consent ledger itself is never purged."`
	Webhooks     []Webhook         `yaml:"webhooks" doc:"Signed notices POSTed to upstream systems (CRM, billing, analytics) when a customer is erased."`
}

// Purpose is one consent purpose.
type Purpose struct {
	ID          string `yaml:"id" doc:"Purpose identifier, e.g. terms or marketing; stored in the consent ledger."`
	Description string `yaml:"description" doc:"What the customer agrees to, shown on the consent page."`
	LegalBasis  string `yaml:"legal_basis" doc:"GDPR art. 6 basis: consent (opt-in), contract (acceptance of terms, opt-in), legitimate_interest (opt-out: only an objection blocks) or legal_obligation (cannot be refused)."`
	Version     int    `yaml:"version" doc:"Version of the description. Raise it when the text changes materially: earlier opt-in grants then no longer count. Default 1."`
	Required    bool   `yaml:"required" doc:"Every customer route requires this purpose, whether or not the route lists it."`
}

// PrivacyLogs configures how personal data appears in logs.
type PrivacyLogs struct {
	PersonalData string `yaml:"personal_data" doc:"hash (default: a keyed hash, stable per customer) or omit. Applies to customers; log.user applies to the other audiences."`
}

// Regions configures residency.
type Regions struct {
	Default string            `yaml:"default" doc:"Region of customers no source places. Default: the only region, when there is one."`
	From    []RegionSource    `yaml:"from" doc:"Where a customer's region comes from, tried in order; the first that yields a configured region wins. Only consulted for customers with no data in any region yet: residency is sticky."`
	Stores  map[string]string `yaml:"stores" doc:"Region name to store DSN: sqlite:///path/file.db or postgres://... (use ${ENV} for passwords). Each region must have its own database."`
}

// RegionSource is one source of a customer's region. Exactly one field is
// set.
type RegionSource struct {
	Claim    string            `yaml:"claim" doc:"An extra identity claim whose value is a region name (the provider must be configured to keep it)."`
	Header   string            `yaml:"header" doc:"A request header whose value is a region name, believed only from server.trusted_proxies."`
	Provider map[string]string `yaml:"provider" doc:"Provider name to region: customers who signed in with that provider."`
}

// Webhook is one upstream notified of privacy events.
type Webhook struct {
	Name      string     `yaml:"name" doc:"Unique webhook name, recorded in the delivery outbox."`
	URL       string     `yaml:"url" doc:"Endpoint receiving the POST: https, or http to a loopback address."`
	Secret    string     `yaml:"secret" doc:"HMAC-SHA256 signing secret of at least 32 bytes (use ${ENV}); the upstream verifies the Gatehouse-Signature header with it."`
	Events    StringList `yaml:"events" doc:"Events sent: deletion."`
	Pseudonym string     `yaml:"pseudonym" doc:"Send the pairwise subject of this pseudonym group instead of the raw issuer and subject, for upstreams that only ever saw that group's subject."`
}

// RoutePrivacy is a route's privacy settings.
type RoutePrivacy struct {
	Consent   []string `yaml:"consent" doc:"Purposes the route requires, in addition to the required ones. A customer missing one is sent to the consent page."`
	Claims    []string `yaml:"claims" doc:"Identity claims the upstream may receive: email, name, groups or an extra claim name. Omitted: whatever forward sends; [] sends none. The subject is always sent."`
	Pseudonym string   `yaml:"pseudonym" doc:"Pseudonym group: the upstream receives a pairwise subject, the same for every route of the group and unlinkable across groups. Needs privacy.pseudonym_key."`
	Regions   []string `yaml:"regions" doc:"Regions whose customers the route serves; customers of other regions are refused. Omitted: all."`
}

// Period is a retention period: a whole number of days (90d), weeks (6w)
// or years (2y, 365 days each), or a Go duration (2160h).
type Period string

// Duration parses the period.
func (p Period) Duration() (time.Duration, error) {
	s := strings.TrimSpace(string(p))
	if s == "" {
		return 0, fmt.Errorf("empty period")
	}
	if unit := s[len(s)-1]; unit == 'd' || unit == 'w' || unit == 'y' {
		n, err := strconv.Atoi(s[:len(s)-1])
		if err == nil {
			day := 24 * time.Hour
			per := map[byte]time.Duration{'d': day, 'w': 7 * day, 'y': 365 * day}[unit]
			if n < 0 || int64(n) > int64(200*365*day/per) {
				return 0, fmt.Errorf("%q is out of range", s)
			}
			return time.Duration(n) * per, nil
		}
	}
	return parseDuration(s)
}

// Privacy-related enumerations.
var (
	LegalBases       = []string{"consent", "contract", "legitimate_interest", "legal_obligation"}
	AuditKinds       = []string{"sign_in", "sign_out", "consent", "export", "delete", "admin", "policy_reload"}
	WebhookEvents    = []string{"deletion"}
	personalDataLogs = []string{"hash", "omit"}
	builtinClaims    = []string{"email", "name", "groups"}
)

// MinRetention is the shortest retention period accepted.
const MinRetention = 24 * time.Hour

var regionRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// needsStore reports whether the privacy section needs durable storage:
// purposes, webhooks, retention or route consent and regions.
func (p *Privacy) needsStore(routes []Route) bool {
	if len(p.Purposes) > 0 || len(p.Webhooks) > 0 || len(p.Retention) > 0 {
		return true
	}
	for _, r := range routes {
		if r.Privacy != nil && (len(r.Privacy.Consent) > 0 || len(r.Privacy.Regions) > 0) {
			return true
		}
	}
	return false
}

// DefaultRegion returns regions.default, or the only region when there is
// exactly one.
func (r *Regions) DefaultRegion() string {
	if r.Default != "" {
		return r.Default
	}
	if len(r.Stores) == 1 {
		for k := range r.Stores {
			return k
		}
	}
	return ""
}

// privacy checks the privacy section and the routes' privacy settings.
func (v *validator) privacy() {
	p := &v.cfg.Privacy
	const base = "privacy"

	purposes := map[string]Purpose{}
	var purposeIDs []string
	for i, pu := range p.Purposes {
		pp := fmt.Sprintf("%s.purposes[%d]", base, i)
		switch {
		case pu.ID == "":
			v.add(pp+".id", "e.g. terms or marketing", "purpose has no id")
		case !validName(pu.ID):
			v.add(pp+".id", "use letters, digits, '-' and '_'", "invalid purpose id %q", pu.ID)
		default:
			if _, dup := purposes[pu.ID]; dup {
				v.add(pp+".id", "", "duplicate purpose id %q", pu.ID)
			}
			purposes[pu.ID] = pu
			purposeIDs = append(purposeIDs, pu.ID)
		}
		if strings.TrimSpace(pu.Description) == "" {
			v.add(pp+".description", "consent must be informed (GDPR art. 7): say what the customer agrees to", "purpose has no description")
		}
		if pu.LegalBasis == "" {
			v.add(pp+".legal_basis", "one of: "+strings.Join(LegalBases, ", "), "purpose has no legal_basis")
		} else {
			v.enum(pp+".legal_basis", pu.LegalBasis, LegalBases...)
		}
		if pu.Version < 0 {
			v.add(pp+".version", "versions start at 1", "negative version %d", pu.Version)
		}
		if pu.Required && pu.LegalBasis == "legal_obligation" {
			v.add(pp+".required", "a legal obligation needs no agreement, so it can never be missing", "required has no effect on a legal_obligation purpose")
		}
	}

	if k := p.PseudonymKey; k != "" && len(k) < 32 {
		v.add(base+".pseudonym_key", "generate one with 'gatehouse keys'", "pseudonym key is %d bytes; at least 32 are required", len(k))
	}
	v.enum(base+".logs.personal_data", p.Logs.PersonalData, personalDataLogs...)

	// Regions.
	rg := &p.Regions
	regions := sortedKeys(rg.Stores)
	dsns := map[string]string{}
	for _, name := range regions {
		rp := joinPath(base+".regions.stores", name)
		if !regionRE.MatchString(name) {
			v.add(rp, "lower-case letters, digits and '-', e.g. eu or us-east", "invalid region name %q", name)
		}
		dsn := rg.Stores[name]
		if msg := checkStoreDSN(dsn); msg != "" {
			v.add(rp, "sqlite:///var/lib/gatehouse/"+name+".db or postgres://user:pass@host/db", "%s", msg)
			continue
		}
		if other, dup := dsns[dsn]; dup {
			v.add(rp, "residency needs one database per region", "region %q uses the same store as region %q", name, other)
		}
		dsns[dsn] = name
	}
	if len(rg.Stores) == 0 && p.needsStore(v.cfg.Routes) {
		v.add(base+".regions.stores", `e.g. stores: { eu: "sqlite:///var/lib/gatehouse/privacy.db" }`, "consent, webhooks, retention and route regions need at least one region store")
	}
	if rg.Default != "" {
		if _, ok := rg.Stores[rg.Default]; !ok {
			v.add(base+".regions.default", didYouMean(rg.Default, regions), "unknown region %q", rg.Default)
		}
	} else if len(rg.Stores) > 1 {
		v.add(base+".regions.default", "with several regions, name the one for customers no source places", "regions.default is required with more than one region")
	}
	if len(rg.From) > 0 && len(rg.Stores) == 0 {
		v.add(base+".regions.from", "add regions.stores", "region sources without regions")
	}
	providers := sortedKeys(v.cfg.Providers)
	for i, s := range rg.From {
		sp := fmt.Sprintf("%s.regions.from[%d]", base, i)
		n := 0
		if s.Claim != "" {
			n++
			if !validName(s.Claim) {
				v.add(sp+".claim", "the name of an extra claim, e.g. region", "invalid claim name %q", s.Claim)
			}
		}
		if s.Header != "" {
			n++
			if !ValidHeaderName(s.Header) {
				v.add(sp+".header", "e.g. X-Edge-Region", "invalid header name %q", s.Header)
			} else if len(v.cfg.Server.TrustedProxies) == 0 {
				v.add(sp+".header", "list the proxy that sets it in server.trusted_proxies; the header is ignored from anyone else", "header source without trusted proxies would never be believed")
			}
		}
		if s.Provider != nil {
			n++
			if len(s.Provider) == 0 {
				v.add(sp+".provider", "map provider names to regions, e.g. { google-us: us }", "empty provider map")
			}
			for _, pn := range sortedKeys(s.Provider) {
				pp := joinPath(sp+".provider", pn)
				if _, ok := v.cfg.Providers[pn]; !ok {
					v.add(pp, didYouMean(pn, providers), "unknown provider %q", pn)
				}
				if r := s.Provider[pn]; !contains(regions, r) {
					v.add(pp, didYouMean(r, regions), "unknown region %q", r)
				}
			}
		}
		if n != 1 {
			v.add(sp, "give exactly one of claim, header or provider", "a region source needs exactly one of claim, header or provider (has %d)", n)
		}
	}

	// Retention.
	for _, kind := range sortedKeys(p.Retention) {
		kp := joinPath(base+".retention", kind)
		if !contains(AuditKinds, kind) {
			v.add(kp, didYouMean(kind, AuditKinds), "unknown audit kind %q", kind)
			continue
		}
		d, err := p.Retention[kind].Duration()
		switch {
		case err != nil:
			v.add(kp, `use days, weeks or years such as "90d", "6w" or "2y"`, "%v", err)
		case d < MinRetention:
			v.add(kp, "use at least 1d", "retention %s is shorter than a day", d)
		}
	}

	// Webhooks.
	names := map[string]int{}
	for i, w := range p.Webhooks {
		wp := fmt.Sprintf("%s.webhooks[%d]", base, i)
		switch {
		case w.Name == "":
			v.add(wp+".name", "every webhook needs a unique name", "webhook has no name")
		case !validName(w.Name):
			v.add(wp+".name", "use letters, digits, '-' and '_'", "invalid webhook name %q", w.Name)
		default:
			if j, dup := names[w.Name]; dup {
				v.add(wp+".name", fmt.Sprintf("webhooks[%d] has it already", j), "duplicate webhook name %q", w.Name)
			}
			names[w.Name] = i
		}
		if msg := checkWebhookURL(w.URL); msg != "" {
			v.add(wp+".url", "e.g. https://crm.example.com/hooks/gatehouse", "%s", msg)
		}
		if len(w.Secret) < 32 {
			v.add(wp+".secret", "generate one with 'gatehouse keys'", "webhook secret is %d bytes; at least 32 are required", len(w.Secret))
		}
		if len(w.Events) == 0 {
			v.add(wp+".events", "one or more of: "+strings.Join(WebhookEvents, ", "), "webhook subscribes to no events")
		}
		for j, e := range w.Events {
			ep := wp + ".events"
			if len(w.Events) > 1 {
				ep = fmt.Sprintf("%s[%d]", ep, j)
			}
			v.enum(ep, e, WebhookEvents...)
		}
		if w.Pseudonym != "" {
			if !validName(w.Pseudonym) {
				v.add(wp+".pseudonym", "use letters, digits, '-' and '_'", "invalid pseudonym group %q", w.Pseudonym)
			} else if p.PseudonymKey == "" {
				v.add(wp+".pseudonym", "set privacy.pseudonym_key", "pairwise subjects need a pseudonym key")
			}
		}
	}

	// Routes.
	for i, r := range v.cfg.Routes {
		rp := r.Privacy
		if rp == nil {
			continue
		}
		path := fmt.Sprintf("routes[%d].privacy", i)
		customer := contains(r.Audience, "customer")
		if (len(rp.Consent) > 0 || len(rp.Regions) > 0) && !customer {
			v.add(path, "consent and regions apply to the customer audience", "route privacy consent/regions need a customer audience")
		}
		for j, id := range rp.Consent {
			cp := fmt.Sprintf("%s.consent[%d]", path, j)
			pu, ok := purposes[id]
			switch {
			case !ok:
				v.add(cp, didYouMean(id, purposeIDs), "unknown purpose %q", id)
			case pu.LegalBasis == "legal_obligation":
				v.add(cp, "a legal obligation needs no agreement, so it can never be missing", "purpose %q has legal_basis legal_obligation", id)
			}
		}
		for j, c := range rp.Claims {
			cp := fmt.Sprintf("%s.claims[%d]", path, j)
			switch {
			case c == "sub":
				v.add(cp, "the subject is always sent; use pseudonym to hide it", "sub cannot be removed")
			case !validName(c):
				v.add(cp, "email, name, groups or an extra claim name", "invalid claim name %q", c)
			case !contains(builtinClaims, c) && Suggest(c, builtinClaims) != "":
				v.add(cp, didYouMean(c, builtinClaims), "unknown claim %q", c)
			}
		}
		if rp.Pseudonym != "" {
			if !validName(rp.Pseudonym) {
				v.add(path+".pseudonym", "use letters, digits, '-' and '_'", "invalid pseudonym group %q", rp.Pseudonym)
			} else if p.PseudonymKey == "" {
				v.add(path+".pseudonym", "set privacy.pseudonym_key", "pairwise subjects need a pseudonym key")
			}
		}
		for j, reg := range rp.Regions {
			if !contains(regions, reg) {
				v.add(fmt.Sprintf("%s.regions[%d]", path, j), didYouMean(reg, regions), "unknown region %q", reg)
			}
		}
	}
}

// checkStoreDSN returns what is wrong with a store DSN, or "".
func checkStoreDSN(dsn string) string {
	switch {
	case dsn == "":
		return "region has no store DSN"
	case dsn == "sqlite::memory:":
		return ""
	case strings.HasPrefix(dsn, "sqlite:"):
		rest := strings.TrimPrefix(dsn, "sqlite:")
		if !strings.HasPrefix(rest, "//") || len(rest) <= 2 || strings.ContainsAny(rest, "?#") {
			return fmt.Sprintf("invalid sqlite DSN %q", dsn)
		}
		return ""
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if u, err := url.Parse(dsn); err != nil || u.Host == "" {
			return fmt.Sprintf("invalid postgres DSN %q", redactURL(dsn))
		}
		return ""
	}
	return fmt.Sprintf("unsupported store DSN %q", redactURL(dsn))
}

// checkWebhookURL returns what is wrong with a webhook URL, or "".
func checkWebhookURL(raw string) string {
	if raw == "" {
		return "webhook has no url"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Sprintf("invalid webhook url %q", redactURL(raw))
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		h := u.Hostname()
		if h == "localhost" || h == "127.0.0.1" || h == "::1" {
			return ""
		}
		return "webhook url must use https (deletion notices carry personal identifiers)"
	}
	return fmt.Sprintf("unsupported scheme %q", u.Scheme)
}
