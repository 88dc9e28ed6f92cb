package privacy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/store"
)

// DeletionNotice is the JSON body POSTed to webhooks subscribed to
// "deletion". Field order is fixed.
type DeletionNotice struct {
	// ID is unique per notice and webhook and stays the same across
	// retries: upstreams use it to ignore duplicates.
	ID string `json:"id"`
	// Event is "subject.deleted".
	Event      string    `json:"event"`
	OccurredAt time.Time `json:"occurred_at"`
	Webhook    string    `json:"webhook"`
	Region     string    `json:"region"`
	// Erasure is the tombstone that replaced the subject in Gatehouse's
	// ledger and audit log: a reference for the upstream's own records that
	// identifies nobody.
	Erasure string        `json:"erasure"`
	Subject NoticeSubject `json:"subject"`
}

// NoticeSubject names the erased customer as the upstream knows them:
// either the issuer and subject, or the pairwise subject of the webhook's
// pseudonym group.
type NoticeSubject struct {
	Issuer   string `json:"iss,omitempty"`
	Subject  string `json:"sub,omitempty"`
	Group    string `json:"pseudonym_group,omitempty"`
	Pairwise string `json:"pairwise_sub,omitempty"`
}

// Erase forgets a customer in their region (GDPR art. 17), in one store
// transaction: the profile is deleted; in the consent ledger and audit log
// the subject key is replaced by a fresh tombstone, "tomb:" and 128 random
// bits; one deletion notice per webhook subscribed to "deletion" is put in
// the outbox. A second pass with the same tombstone then sweeps rows that
// concurrent requests committed while the first ran (see docs/privacy.md
// on the erase race). Finally a "delete" audit event is appended under the
// tombstone with the counts and requestID. The result counts both passes.
//
// The tombstone is random, not a keyed hash of the subject: a keyed hash
// could be recomputed by anyone holding the key to find a given person's
// ledger rows again, which would make the rows pseudonymous, not erased.
//
// Erase works on one region; use Regions.Locate to find every region that
// holds the subject. Sessions should be revoked first, or a request still
// in flight can write under the subject again; Locate afterwards and
// EraseAgain with the receipt catch such writes.
func (p *Policy) Erase(ctx context.Context, subjectKey, region string, requestID string) (store.EraseResult, error) {
	r, err := p.EraseReceipt(ctx, subjectKey, region, requestID)
	return r.Result, err
}

// Receipt is the outcome of an erasure: the counts and the tombstone, which
// the operator may quote to the customer or in a ticket.
type Receipt struct {
	Result    store.EraseResult
	Tombstone string
}

// EraseReceipt is Erase returning the tombstone too. On error the receipt
// still says what was done when the erasure itself committed.
func (p *Policy) EraseReceipt(ctx context.Context, subjectKey, region string, requestID string) (Receipt, error) {
	const op = "erase"
	if err := validKey(op, subjectKey); err != nil {
		return Receipt{}, err
	}
	if strings.HasPrefix(subjectKey, store.TombstonePrefix) {
		return Receipt{}, invalid(op, "subject key is already a tombstone")
	}
	s, err := p.regions.storeFor(op, region)
	if err != nil {
		return Receipt{}, err
	}
	tomb, err := randomID(16)
	if err != nil {
		return Receipt{}, fmt.Errorf("privacy: %s: tombstone: %w", op, err)
	}
	tomb = store.TombstonePrefix + tomb
	now := p.now().Truncate(time.Microsecond)
	var notify []store.Delivery
	for _, w := range p.webhooks {
		if !slices.Contains(w.Events, EventDeletion) {
			continue
		}
		body, err := p.deletionNotice(w, subjectKey, region, tomb, now)
		if err != nil {
			return Receipt{}, fmt.Errorf("privacy: %s: notice for %s: %w", op, w.Name, err)
		}
		// The outbox row is indexed by the tombstone, not the subject: only
		// the body, which the upstream needs, names the customer.
		notify = append(notify, store.Delivery{Webhook: w.Name, Event: subjectDeletedEventName, SubjectKey: tomb, Payload: body})
	}
	res, err := s.Erase(ctx, subjectKey, tomb, notify)
	if err != nil {
		return Receipt{}, fmt.Errorf("privacy: %s: %w", op, err)
	}
	sweep, err := s.Erase(ctx, subjectKey, tomb, nil)
	if err != nil {
		return Receipt{res, tomb}, fmt.Errorf("privacy: %s: erased, but the sweep for concurrent writes failed (run it again): %w", op, err)
	}
	res.Profiles += sweep.Profiles
	res.Consents += sweep.Consents
	res.Audits += sweep.Audits
	if _, err := s.AppendAudit(ctx, store.AuditEvent{
		Kind: KindDelete, SubjectKey: tomb, At: now, RequestID: requestID,
		Detail: map[string]string{
			"profiles":   strconv.FormatInt(res.Profiles, 10),
			"consents":   strconv.FormatInt(res.Consents, 10),
			"audits":     strconv.FormatInt(res.Audits, 10),
			"deliveries": strconv.FormatInt(res.Deliveries, 10),
			"region":     region,
		},
	}); err != nil {
		return Receipt{res, tomb}, fmt.Errorf("privacy: %s: erased, but the audit event was not recorded: %w", op, err)
	}
	return Receipt{res, tomb}, nil
}

// EraseAgain is the re-check after an erasure. When Regions.Locate (or
// LocateIn) still finds subjectKey in region after EraseReceipt, rows were
// written under it meanwhile, by a request that was in flight; EraseAgain
// tombstones them with prev's tombstone, so the customer's one receipt
// covers them, and queues no deletion notice (the first erasure did).
// When it touched anything, a "delete" audit event with "pass": "sweep"
// and this pass's counts is appended under the tombstone. It returns prev
// with this pass's counts added; on error, the receipt still says what
// was done when the erasure itself committed.
//
// prev must come from EraseReceipt (or EraseAgain) for the same subject
// and region: a tombstone of another erasure would join two people's rows.
func (p *Policy) EraseAgain(ctx context.Context, prev Receipt, subjectKey, region, requestID string) (Receipt, error) {
	const op = "erase again"
	if err := validKey(op, subjectKey); err != nil {
		return prev, err
	}
	if strings.HasPrefix(subjectKey, store.TombstonePrefix) {
		return prev, invalid(op, "subject key is already a tombstone")
	}
	if !strings.HasPrefix(prev.Tombstone, store.TombstonePrefix) || len(prev.Tombstone) == len(store.TombstonePrefix) {
		return prev, invalid(op, "the receipt has no tombstone")
	}
	s, err := p.regions.storeFor(op, region)
	if err != nil {
		return prev, err
	}
	res, err := s.Erase(ctx, subjectKey, prev.Tombstone, nil)
	if err != nil {
		return prev, fmt.Errorf("privacy: %s: %w", op, err)
	}
	out := prev
	out.Result.Profiles += res.Profiles
	out.Result.Consents += res.Consents
	out.Result.Audits += res.Audits
	if res == (store.EraseResult{}) {
		return out, nil
	}
	if _, err := s.AppendAudit(ctx, store.AuditEvent{
		Kind: KindDelete, SubjectKey: prev.Tombstone, At: p.now().Truncate(time.Microsecond), RequestID: requestID,
		Detail: map[string]string{
			"pass":     "sweep",
			"profiles": strconv.FormatInt(res.Profiles, 10),
			"consents": strconv.FormatInt(res.Consents, 10),
			"audits":   strconv.FormatInt(res.Audits, 10),
			"region":   region,
		},
	}); err != nil {
		return out, fmt.Errorf("privacy: %s: erased, but the audit event was not recorded: %w", op, err)
	}
	return out, nil
}

func (p *Policy) deletionNotice(w Webhook, subjectKey, region, tomb string, at time.Time) ([]byte, error) {
	id, err := randomID(16)
	if err != nil {
		return nil, err
	}
	n := DeletionNotice{
		ID: "evt_" + id, Event: subjectDeletedEventName, OccurredAt: at,
		Webhook: w.Name, Region: region, Erasure: tomb,
	}
	if w.Pseudonym != "" {
		pw, err := p.Pairwise(w.Pseudonym, subjectKey)
		if err != nil {
			return nil, err
		}
		n.Subject = NoticeSubject{Group: w.Pseudonym, Pairwise: pw}
	} else {
		iss, sub, ok := SplitSubjectKey(subjectKey)
		if !ok {
			iss, sub = "", subjectKey
		}
		n.Subject = NoticeSubject{Issuer: iss, Subject: sub}
	}
	return json.Marshal(n)
}

func randomID(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
