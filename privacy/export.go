package privacy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/store"
)

// ExportFormat names the version of the export document. A change that
// removes or renames a field gets a new version.
const ExportFormat = "gatehouse.export/v1"

// SessionInfo describes one active session of the customer; the caller
// (which owns sessions) supplies them.
type SessionInfo struct {
	// ID identifies the session to the customer (e.g. a short hash of the
	// session id), never the session secret itself.
	ID       string    `json:"id"`
	Provider string    `json:"provider"`
	Created  time.Time `json:"created"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	Expires  time.Time `json:"expires,omitzero"`
	// Client is a description such as the user agent, when kept.
	Client string `json:"client,omitempty"`
}

// ExportDoc is everything Gatehouse holds about one customer in one region
// (GDPR art. 15 and 20), as a JSON document with a fixed field order.
// Slices are never null.
type ExportDoc struct {
	Format      string          `json:"format"`
	GeneratedAt time.Time       `json:"generated_at"`
	Subject     string          `json:"subject"`
	Region      string          `json:"region"`
	Profile     *ExportProfile  `json:"profile"`
	Consents    []ExportConsent `json:"consents"`
	Current     []string        `json:"current_consents"`
	Purposes    []Purpose       `json:"purposes"`
	Audit       []ExportAudit   `json:"audit"`
	Sessions    []SessionInfo   `json:"sessions"`
}

// ExportProfile is the stored profile.
type ExportProfile struct {
	Provider string            `json:"provider"`
	Claims   map[string]string `json:"claims"`
	Created  time.Time         `json:"created"`
	Updated  time.Time         `json:"updated"`
}

// ExportConsent is one consent ledger entry.
type ExportConsent struct {
	Seq        int64     `json:"seq"`
	Purpose    string    `json:"purpose"`
	Version    int       `json:"version"`
	Decision   string    `json:"decision"`
	At         time.Time `json:"at"`
	Source     string    `json:"source"`
	PolicyHash string    `json:"policy_hash"`
}

// ExportAudit is one audit event about the customer.
type ExportAudit struct {
	Seq       int64             `json:"seq"`
	Kind      string            `json:"kind"`
	At        time.Time         `json:"at"`
	RequestID string            `json:"request_id"`
	Detail    map[string]string `json:"detail"`
}

// Export gathers what the customer's region holds about them: profile,
// full consent history, the current grants, the purposes those entries
// refer to, their own audit events (oldest first) and the sessions the
// caller passes. It then appends an "export" audit event, which the next
// export will show. encoding/json writes struct fields in declaration order
// and map keys sorted, so the same data always gives the same bytes.
func (p *Policy) Export(ctx context.Context, subjectKey, region string, sessions []SessionInfo) (*ExportDoc, error) {
	return p.export(ctx, subjectKey, region, sessions, "")
}

// ExportFor is Export with the request id recorded on the audit event.
func (p *Policy) ExportFor(ctx context.Context, subjectKey, region string, sessions []SessionInfo, requestID string) (*ExportDoc, error) {
	return p.export(ctx, subjectKey, region, sessions, requestID)
}

func (p *Policy) export(ctx context.Context, subjectKey, region string, sessions []SessionInfo, requestID string) (*ExportDoc, error) {
	const op = "export"
	if err := validKey(op, subjectKey); err != nil {
		return nil, err
	}
	s, err := p.regions.storeFor(op, region)
	if err != nil {
		return nil, err
	}
	doc := &ExportDoc{
		Format: ExportFormat, GeneratedAt: p.now().Truncate(time.Microsecond), Subject: subjectKey, Region: region,
		Consents: []ExportConsent{}, Current: []string{}, Purposes: []Purpose{}, Audit: []ExportAudit{}, Sessions: []SessionInfo{},
	}
	prof, err := s.Profile(ctx, subjectKey)
	switch {
	case err == nil:
		claims := prof.Claims
		if claims == nil {
			claims = map[string]string{}
		}
		doc.Profile = &ExportProfile{Provider: prof.Provider, Claims: claims, Created: prof.Created, Updated: prof.Updated}
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("privacy: %s: %w", op, err)
	}
	hist, err := s.ConsentHistory(ctx, subjectKey)
	if err != nil {
		return nil, fmt.Errorf("privacy: %s: %w", op, err)
	}
	latest := map[string]store.ConsentEvent{}
	referenced := map[string]bool{}
	for _, e := range hist {
		doc.Consents = append(doc.Consents, ExportConsent{
			Seq: e.Seq, Purpose: e.Purpose, Version: e.Version, Decision: e.Decision,
			At: e.At, Source: e.Source, PolicyHash: e.PolicyHash,
		})
		latest[e.Purpose] = e
		referenced[e.Purpose] = true
	}
	for _, pu := range p.purposes {
		if e, ok := latest[pu.ID]; ok && e.Decision == store.DecisionGrant {
			doc.Current = append(doc.Current, pu.ID+":"+strconv.Itoa(e.Version))
		}
		if referenced[pu.ID] {
			doc.Purposes = append(doc.Purposes, pu)
		}
	}
	evs, err := s.AuditEvents(ctx, subjectKey, 0)
	if err != nil {
		return nil, fmt.Errorf("privacy: %s: %w", op, err)
	}
	for _, e := range slices.Backward(evs) {
		detail := e.Detail
		if detail == nil {
			detail = map[string]string{}
		}
		doc.Audit = append(doc.Audit, ExportAudit{Seq: e.Seq, Kind: e.Kind, At: e.At, RequestID: e.RequestID, Detail: detail})
	}
	for _, si := range sessions {
		si.Created, si.LastSeen, si.Expires = si.Created.UTC(), si.LastSeen.UTC(), si.Expires.UTC()
		doc.Sessions = append(doc.Sessions, si)
	}
	if _, err := s.AppendAudit(ctx, store.AuditEvent{
		Kind: KindExport, SubjectKey: subjectKey, RequestID: requestID,
		Detail: map[string]string{
			"consents": strconv.Itoa(len(doc.Consents)), "audit": strconv.Itoa(len(doc.Audit)),
			"sessions": strconv.Itoa(len(doc.Sessions)), "format": ExportFormat,
		},
	}); err != nil {
		return nil, fmt.Errorf("privacy: %s: recording the export: %w", op, err)
	}
	return doc, nil
}
