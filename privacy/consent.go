package privacy

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/store"
)

// Decision is a customer's answer for one purpose.
type Decision struct {
	Purpose string
	Grant   bool
	// Version is the purpose version the customer was shown; zero means the
	// current one. A version other than the current one is refused with
	// ErrStaleVersion.
	Version int
}

// RecordInfo says where a consent decision came from.
type RecordInfo struct {
	// Source is e.g. "consent_page", "account_page", "admin" or "api".
	Source string
	// RequestID ties the audit event to the access log line.
	RequestID string
}

// Missing returns the purposes among required that the customer has not
// granted: never granted, withdrawn, or (for opt-in purposes) granted for
// an older version. A legitimate-interest purpose is missing only when the
// customer objected (withdrew); a legal-obligation purpose never is. An id
// the policy does not define is reported as ErrUnknownPurpose. The result
// keeps the order of required, without duplicates.
func (p *Policy) Missing(ctx context.Context, subjectKey, region string, required []string) ([]Purpose, error) {
	const op = "missing consent"
	if err := validKey(op, subjectKey); err != nil {
		return nil, err
	}
	var want []Purpose
	for _, id := range required {
		pu, ok := p.byID[id]
		if !ok {
			return nil, fmt.Errorf("privacy: %s: %w %q", op, ErrUnknownPurpose, id)
		}
		if !slices.ContainsFunc(want, func(w Purpose) bool { return w.ID == id }) {
			want = append(want, pu)
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	s, err := p.regions.storeFor(op, region)
	if err != nil {
		return nil, err
	}
	cur, err := s.CurrentConsents(ctx, subjectKey)
	if err != nil {
		return nil, fmt.Errorf("privacy: %s: %w", op, err)
	}
	var out []Purpose
	for _, pu := range want {
		e, has := cur[pu.ID]
		granted := has && e.Decision == store.DecisionGrant
		var ok bool
		switch pu.LegalBasis {
		case BasisLegalObligation:
			ok = true
		case BasisLegitimateInterest:
			ok = !has || granted
		default: // consent, contract: opt-in of the current version
			ok = granted && e.Version >= pu.Version
		}
		if !ok {
			out = append(out, pu)
		}
	}
	return out, nil
}

// Record appends the customer's decisions to the consent ledger of their
// region, with the source, the policy hash and the current purpose
// versions, then appends one "consent" audit event for the request. It
// returns the ledger entries as stored. All decisions are checked before
// anything is written. The ledger entries and the audit event are separate
// writes: if the audit append fails the entries stand (the ledger is the
// record of consent) and the error says so.
func (p *Policy) Record(ctx context.Context, subjectKey, region string, decisions []Decision, info RecordInfo) ([]store.ConsentEvent, error) {
	const op = "record consent"
	if err := validKey(op, subjectKey); err != nil {
		return nil, err
	}
	if len(decisions) == 0 {
		return nil, invalid(op, "no decisions")
	}
	if strings.TrimSpace(info.Source) == "" {
		return nil, invalid(op, "empty source")
	}
	seen := map[string]bool{}
	for _, d := range decisions {
		pu, ok := p.byID[d.Purpose]
		switch {
		case !ok:
			return nil, fmt.Errorf("privacy: %s: %w %q", op, ErrUnknownPurpose, d.Purpose)
		case seen[d.Purpose]:
			return nil, invalid(op, "purpose %q decided twice", d.Purpose)
		case d.Version != 0 && d.Version != pu.Version:
			return nil, fmt.Errorf("privacy: %s: %w: %s was shown at version %d, current is %d", op, ErrStaleVersion, d.Purpose, d.Version, pu.Version)
		case pu.LegalBasis == BasisLegalObligation:
			return nil, invalid(op, "purpose %q is a legal obligation and takes no decision", d.Purpose)
		}
		seen[d.Purpose] = true
	}
	s, err := p.regions.storeFor(op, region)
	if err != nil {
		return nil, err
	}
	at := p.now()
	out := make([]store.ConsentEvent, 0, len(decisions))
	summary := make([]string, 0, len(decisions))
	for _, d := range decisions {
		pu := p.byID[d.Purpose]
		dec := store.DecisionWithdraw
		if d.Grant {
			dec = store.DecisionGrant
		}
		e, err := s.AppendConsent(ctx, store.ConsentEvent{
			SubjectKey: subjectKey, Purpose: pu.ID, Version: pu.Version, Decision: dec,
			At: at, Source: info.Source, PolicyHash: p.policyHash,
		})
		if err != nil {
			return out, fmt.Errorf("privacy: %s: %s: %w", op, pu.ID, err)
		}
		out = append(out, e)
		summary = append(summary, pu.ID+":"+strconv.Itoa(pu.Version)+"="+dec)
	}
	_, err = s.AppendAudit(ctx, store.AuditEvent{
		Kind: KindConsent, SubjectKey: subjectKey, At: at, RequestID: info.RequestID,
		Detail: map[string]string{"decisions": strings.Join(summary, ","), "source": info.Source, "policy_hash": p.policyHash},
	})
	if err != nil {
		return out, fmt.Errorf("privacy: %s: ledger written, audit event not: %w", op, err)
	}
	return out, nil
}

// Granted returns the purposes the customer currently grants, as
// "purpose:version" (the version granted, which may be older than the
// current one), in the policy's purpose order: the value of an upstream
// consent header and of the assertion's consent claim. Purposes no longer
// configured are left out.
func (p *Policy) Granted(ctx context.Context, subjectKey, region string) ([]string, error) {
	const op = "granted consent"
	if err := validKey(op, subjectKey); err != nil {
		return nil, err
	}
	if len(p.purposes) == 0 {
		return nil, nil
	}
	s, err := p.regions.storeFor(op, region)
	if err != nil {
		return nil, err
	}
	cur, err := s.CurrentConsents(ctx, subjectKey)
	if err != nil {
		return nil, fmt.Errorf("privacy: %s: %w", op, err)
	}
	var out []string
	for _, pu := range p.purposes {
		if e, ok := cur[pu.ID]; ok && e.Decision == store.DecisionGrant {
			out = append(out, pu.ID+":"+strconv.Itoa(e.Version))
		}
	}
	return out, nil
}

// ProfileClaims are the claims SignIn keeps in a customer's profile: what
// the account page and an export show, nothing more.
var ProfileClaims = []string{"email", "email_verified", "name"}

// SignIn records a customer's sign-in in their region: the profile (the
// provider and ProfileClaims only) is created or refreshed and a "sign_in"
// audit event appended.
func (p *Policy) SignIn(ctx context.Context, id *identity.Identity, region, requestID string) error {
	const op = "record sign-in"
	if id == nil || id.Subject == "" {
		return invalid(op, "identity without subject")
	}
	s, err := p.regions.storeFor(op, region)
	if err != nil {
		return err
	}
	key := SubjectKey(id)
	claims := map[string]string{}
	if id.Email != "" {
		claims["email"] = id.Email
		claims["email_verified"] = strconv.FormatBool(id.EmailVerified)
	}
	if id.Name != "" {
		claims["name"] = id.Name
	}
	if err := s.UpsertProfile(ctx, store.Profile{SubjectKey: key, Provider: id.Provider, Region: region, Claims: claims}); err != nil {
		return fmt.Errorf("privacy: %s: %w", op, err)
	}
	if _, err := s.AppendAudit(ctx, store.AuditEvent{
		Kind: "sign_in", SubjectKey: key, RequestID: requestID,
		Detail: map[string]string{"provider": id.Provider},
	}); err != nil {
		return fmt.Errorf("privacy: %s: %w", op, err)
	}
	return nil
}
