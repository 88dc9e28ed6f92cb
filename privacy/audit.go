package privacy

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/gatehouse-dev/gatehouse/store"
)

// Audit event kinds written by callers of Audit (the gateway and the admin
// API). Every kind here is one config.AuditKinds accepts for retention.
const (
	KindSignOut      = "sign_out"
	KindAdmin        = "admin"
	KindPolicyReload = "policy_reload"
)

// Audit appends one audit event of kind to region's store. subjectKey is
// the customer the event is about, or "" for a system event (a policy
// reload). detail is copied; it must hold no claim values. Use it for the
// events this package does not write itself: sign_out, admin and
// policy_reload.
func (p *Policy) Audit(ctx context.Context, kind, subjectKey, region, requestID string, detail map[string]string) error {
	const op = "audit"
	if strings.TrimSpace(kind) == "" {
		return invalid(op, "empty kind")
	}
	s, err := p.regions.storeFor(op, region)
	if err != nil {
		return err
	}
	if _, err := s.AppendAudit(ctx, store.AuditEvent{
		Kind: kind, SubjectKey: subjectKey, At: p.now(), RequestID: requestID, Detail: maps.Clone(detail),
	}); err != nil {
		return fmt.Errorf("privacy: %s %s: %w", op, kind, err)
	}
	return nil
}
