package privacy

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/store"
)

// Webhook request headers.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of
	// "<t>.<body>">". Several v1 entries may appear; one must match.
	SignatureHeader = "Gatehouse-Signature"
	// IDHeader repeats the notice id, the idempotency key.
	IDHeader = "Gatehouse-Webhook-Id"
	// EventHeader names the event, e.g. "subject.deleted".
	EventHeader = "Gatehouse-Event"
)

// DefaultTolerance is the signature age VerifySignature callers should
// accept: enough for clock skew, short enough to make replays useless.
const DefaultTolerance = 5 * time.Minute

// DeliveryReport counts what one Deliver step did.
type DeliveryReport struct {
	Delivered int // accepted with a 2xx
	Retrying  int // failed, scheduled again
	Failed    int // failed for good (attempts exhausted or webhook removed)
}

// Deliver is one step of the webhook worker: in every region it claims the
// due deliveries (store.DueDeliveries leases them, so replicas do not send
// twice), POSTs each signed body and records the outcome. A failure is
// retried after an exponential, jittered delay until MaxAttempts, then
// marked failed. Run it every few seconds; an error from one region does
// not stop the others and is returned joined.
//
// client should not follow redirects and should have a timeout; nil means
// a client with a 15 s timeout that does not follow redirects.
func (p *Policy) Deliver(ctx context.Context, client *http.Client) (DeliveryReport, error) {
	var rep DeliveryReport
	if client == nil {
		client = &http.Client{
			Timeout:       15 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	var errs []error
	for _, region := range p.regions.Names() {
		s := p.regions.Store(region)
		due, err := s.DueDeliveries(ctx, p.now(), p.o.DeliveryBatch)
		if err != nil {
			errs = append(errs, fmt.Errorf("privacy: deliver: region %s: %w", region, err))
			continue
		}
		for _, d := range due {
			if ctx.Err() != nil {
				// Leave the rest leased; the lease expiry hands them back.
				errs = append(errs, fmt.Errorf("privacy: deliver: %w", ctx.Err()))
				return rep, errors.Join(errs...)
			}
			if err := p.deliverOne(ctx, client, s, region, d, &rep); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return rep, errors.Join(errs...)
}

func (p *Policy) deliverOne(ctx context.Context, client *http.Client, s store.Store, region string, d store.Delivery, rep *DeliveryReport) error {
	var hook *Webhook
	for i := range p.webhooks {
		if p.webhooks[i].Name == d.Webhook {
			hook = &p.webhooks[i]
		}
	}
	if hook == nil {
		rep.Failed++
		if err := s.MarkDelivery(ctx, d.ID, false, "webhook no longer configured", time.Time{}); err != nil {
			return fmt.Errorf("privacy: deliver %s/%d: %w", region, d.ID, err)
		}
		return nil
	}
	sendErr := p.post(ctx, client, hook, region, d)
	if sendErr == nil {
		rep.Delivered++
		if err := s.MarkDelivery(ctx, d.ID, true, "", time.Time{}); err != nil {
			return fmt.Errorf("privacy: deliver %s/%d: delivered but not marked (it will be sent again): %w", region, d.ID, err)
		}
		return nil
	}
	attempt := d.Attempts + 1
	var next time.Time
	if attempt < p.o.MaxAttempts {
		next = p.now().Add(p.backoff(attempt))
		rep.Retrying++
	} else {
		rep.Failed++
	}
	msg := sendErr.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	p.o.Logger.Warn("privacy: webhook delivery failed", zap.String("webhook", hook.Name), zap.String("region", region),
		zap.Int64("delivery", d.ID), zap.Int("attempt", attempt), zap.Bool("final", next.IsZero()), zap.Error(sendErr))
	if err := s.MarkDelivery(ctx, d.ID, false, msg, next); err != nil {
		return fmt.Errorf("privacy: deliver %s/%d: %w", region, d.ID, err)
	}
	return nil
}

// backoff is base*2^(attempt-1), capped, with jitter over its upper half.
func (p *Policy) backoff(attempt int) time.Duration {
	d := p.o.BackoffBase
	for i := 1; i < attempt && d < p.o.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, p.o.BackoffMax)
	j := rand.Float64
	if p.o.Jitter != nil {
		j = p.o.Jitter
	}
	f := j()
	if f < 0 || f >= 1 {
		f = 0
	}
	return d/2 + time.Duration(f*float64(d/2))
}

func (p *Policy) post(ctx context.Context, client *http.Client, hook *Webhook, region string, d store.Delivery) error {
	id := noticeID(d.Payload)
	if id == "" {
		id = region + "-" + strconv.FormatInt(d.ID, 10)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hook.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Gatehouse-Webhooks/1")
	req.Header.Set(IDHeader, id)
	req.Header.Set(EventHeader, d.Event)
	req.Header.Set(SignatureHeader, Sign(hook.Secret, d.Payload, p.now()))
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func noticeID(payload []byte) string {
	var n struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(payload, &n) != nil {
		return ""
	}
	return n.ID
}

// Sign returns the SignatureHeader value for body sent at t:
// "t=<unix>,v1=<hex HMAC-SHA256(secret, "<unix>.<body>")>".
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Signature verification errors.
var (
	ErrSignatureFormat   = errors.New("privacy: malformed signature header")
	ErrSignatureMismatch = errors.New("privacy: signature does not match")
	ErrSignatureExpired  = errors.New("privacy: signature timestamp outside tolerance")
)

// VerifySignature checks a SignatureHeader value against the raw request
// body, for upstreams receiving Gatehouse webhooks: one v1 entry must be
// the HMAC of "<t>.<body>" under secret (compared in constant time), and t
// must be within tolerance of now, in either direction (tolerance <= 0
// means DefaultTolerance). Verify the bytes as received, before parsing
// them, and drop notices whose id was seen already.
func VerifySignature(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: empty secret", ErrSignatureFormat)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size {
				sigs = append(sigs, b)
			}
		}
	}
	if ts == "" || len(sigs) == 0 {
		return ErrSignatureFormat
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad timestamp", ErrSignatureFormat)
	}
	want := mac(secret, ts, body)
	matched := false
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			matched = true
		}
	}
	if !matched {
		return ErrSignatureMismatch
	}
	age := now.Sub(time.Unix(unix, 0))
	if age > tolerance || age < -tolerance {
		return ErrSignatureExpired
	}
	return nil
}
