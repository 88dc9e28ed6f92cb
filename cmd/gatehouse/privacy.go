package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/privacy"
	"github.com/gatehouse-dev/gatehouse/proxy"
	"github.com/gatehouse-dev/gatehouse/store"
)

// The admin API's privacy endpoints, for support requests that do not come
// through the customer's own account page (a letter, a ticket, a customer
// who lost access to their sign-in):
//
//	POST /privacy/export {"subject_key": "issuer|subject"}
//	POST /privacy/erase  {"subject_key": "issuer|subject"}
//
// Both need the bearer server.admin_token, like POST /sessions/revoke, and
// write an "admin" audit event in every region they touch.

// privacyRequest is the body of both endpoints.
type privacyRequest struct {
	SubjectKey string `json:"subject_key"`
}

// exportResponse is the answer of POST /privacy/export: one export
// document per region that holds data of the subject (normally one).
type exportResponse struct {
	SubjectKey string               `json:"subject_key"`
	RequestID  string               `json:"request_id"`
	Regions    []string             `json:"regions"`
	Exports    []*privacy.ExportDoc `json:"exports"`
}

// eraseReceipt is one region's erasure.
type eraseReceipt struct {
	Region     string `json:"region"`
	Tombstone  string `json:"tombstone"`
	Profiles   int64  `json:"profiles_deleted"`
	Consents   int64  `json:"consents_anonymized"`
	Audits     int64  `json:"audit_events_anonymized"`
	Deliveries int64  `json:"deletion_notices_queued"`
}

// eraseResponse is the answer of POST /privacy/erase.
type eraseResponse struct {
	SubjectKey string `json:"subject_key"`
	RequestID  string `json:"request_id"`
	// SessionsEnded names the revocations recorded: "provider:<name>" per
	// provider the subject signs in with, or "user:<subject>" when no
	// provider could be told from the subject key (see docs/privacy.md).
	SessionsEnded   []string       `json:"sessions_ended"`
	Receipts        []eraseReceipt `json:"receipts"`
	AccountsDeleted []string       `json:"accounts_deleted"`
	Warnings        []string       `json:"warnings"`
}

// eraseFailure is the answer of an erasure that failed part way: the
// error and what was done before it.
type eraseFailure struct {
	Error   string `json:"error"`
	Message string `json:"message"`
	eraseResponse
}

// adminError is the JSON error body of the admin API.
type adminError struct {
	Error     string `json:"error"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

// adminRequestID names one admin call in the audit log and in the logs.
func adminRequestID() string {
	b := make([]byte, 9)
	rand.Read(b)
	return "admin-" + hex.EncodeToString(b)
}

// privacyCall is what both handlers share: checks, then the subject's
// regions. It answers the request itself (and returns ok false) on any
// problem.
type privacyCall struct {
	w   http.ResponseWriter
	rid string
	pp  *privacy.Policy
	key string
	// regions hold data of key, sorted; never empty when ok.
	regions []string
}

func (c *privacyCall) answer(status int, v any) {
	c.w.WriteHeader(status)
	enc := json.NewEncoder(c.w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func (c *privacyCall) fail(status int, code, msg string) {
	c.answer(status, adminError{Error: code, Message: msg, RequestID: c.rid})
}

func startPrivacyCall(gw *proxy.Gateway, w http.ResponseWriter, r *http.Request) (*privacyCall, bool) {
	c := &privacyCall{w: w, rid: adminRequestID()}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Request-Id", c.rid)
	ok, configured := adminAuthorized(gw, r)
	switch {
	case !configured:
		c.fail(http.StatusForbidden, "admin_api_disabled", "set server.admin_token in the policy to enable the admin write endpoints")
		return nil, false
	case !ok:
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse-admin"`)
		c.fail(http.StatusUnauthorized, "unauthorized", "a valid admin bearer token is required")
		return nil, false
	}
	var q privacyRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		c.fail(http.StatusBadRequest, "bad_request", `body must be a JSON object {"subject_key": "issuer|subject"}: `+err.Error())
		return nil, false
	}
	c.key = strings.TrimSpace(q.SubjectKey)
	if _, _, ok := privacy.SplitSubjectKey(c.key); !ok {
		c.fail(http.StatusBadRequest, "bad_subject_key", `subject_key must be "issuer|subject", e.g. "https://accounts.google.com|1234567890" or "static:shoppers|c-1001"`)
		return nil, false
	}
	if strings.HasPrefix(c.key, store.TombstonePrefix) {
		c.fail(http.StatusBadRequest, "bad_subject_key", "subject_key is a tombstone: that subject was already erased")
		return nil, false
	}
	c.pp = gw.Privacy()
	if c.pp == nil || c.pp.Regions() == nil {
		c.fail(http.StatusNotImplemented, "privacy_not_configured", "the running policy has no privacy stores (privacy.regions.stores)")
		return nil, false
	}
	regions, err := c.pp.Regions().Locate(r.Context(), c.key)
	if err != nil {
		c.fail(http.StatusServiceUnavailable, "store_unavailable", "cannot search the regions' stores: "+err.Error())
		return nil, false
	}
	if len(regions) == 0 {
		c.fail(http.StatusNotFound, "subject_not_found", "no region holds a profile or consent history of this subject key")
		return nil, false
	}
	c.regions = regions
	return c, true
}

// privacyExportHandler serves POST /privacy/export.
func privacyExportHandler(gw *proxy.Gateway, log *zap.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := startPrivacyCall(gw, w, r)
		if !ok {
			return
		}
		out := exportResponse{SubjectKey: c.key, RequestID: c.rid, Regions: c.regions}
		for _, region := range c.regions {
			// Sessions are not listed: cookie sessions live in browsers,
			// and the gateway keeps no index of them by person.
			doc, err := c.pp.ExportFor(r.Context(), c.key, region, nil, c.rid)
			if err != nil {
				log.Error("admin export failed", zap.String("request_id", c.rid), zap.String("region", region), zap.Error(err))
				c.fail(http.StatusServiceUnavailable, "export_failed", "region "+region+": "+err.Error())
				return
			}
			out.Exports = append(out.Exports, doc)
			if err := c.pp.Audit(r.Context(), privacy.KindAdmin, c.key, region, c.rid,
				map[string]string{"action": "export", "via": "admin_api"}); err != nil {
				log.Warn("admin export: the audit event was not recorded", zap.String("request_id", c.rid), zap.String("region", region), zap.Error(err))
			}
		}
		log.Info("admin privacy export", zap.String("request_id", c.rid), zap.Strings("regions", c.regions))
		c.answer(http.StatusOK, out)
	}
}

// privacyEraseHandler serves POST /privacy/erase: the subject's sessions
// end first, then every region holding their data erases it, then the
// providers that keep their own account records (local accounts) delete
// them.
func privacyEraseHandler(gw *proxy.Gateway, log *zap.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := startPrivacyCall(gw, w, r)
		if !ok {
			return
		}
		// Once started, an erasure is finished even if the caller goes away.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), time.Minute)
		defer cancel()
		issuer, subject, _ := privacy.SplitSubjectKey(c.key)
		out := eraseResponse{SubjectKey: c.key, RequestID: c.rid, SessionsEnded: []string{}, Receipts: []eraseReceipt{}, AccountsDeleted: []string{}, Warnings: []string{}}

		// Which providers does this person sign in with? The issuer names
		// some (static, local, OIDC); the profile records the provider of
		// the last sign-in (the only way to know a SAML provider).
		byIssuer := gw.ProvidersForIssuer(issuer)
		names := slices.Clone(byIssuer)
		for _, region := range c.regions {
			prof, err := c.pp.Regions().Store(region).Profile(ctx, c.key)
			if err == nil && prof.Provider != "" && !slices.Contains(names, prof.Provider) {
				names = append(names, prof.Provider)
			}
		}
		slices.Sort(names)
		// Sessions first: nothing may act for the person while the data goes.
		var revokeErr error
		for _, name := range names {
			if err := gw.RevokeSubject(ctx, name, subject); err != nil {
				revokeErr = errors.Join(revokeErr, err)
				continue
			}
			out.SessionsEnded = append(out.SessionsEnded, "provider:"+name)
		}
		if len(names) == 0 {
			// No provider is known: end every session whose subject is this
			// one, whatever the provider (it may sign out a namesake at
			// another provider, who just signs in again).
			if err := gw.RevokeUser(ctx, subject); err != nil {
				revokeErr = err
			} else {
				out.SessionsEnded = append(out.SessionsEnded, "user:"+subject)
				out.Warnings = append(out.Warnings, "no provider of the running policy has this issuer and no profile names one: sessions were ended by subject, whatever the provider")
			}
		}
		if revokeErr != nil {
			log.Error("admin erase: revoking the sessions failed; nothing erased", zap.String("request_id", c.rid), zap.Error(revokeErr))
			c.fail(http.StatusServiceUnavailable, "revocation_failed", "the sessions could not be ended, so nothing was erased (try again): "+revokeErr.Error())
			return
		}

		first := map[string]privacy.Receipt{} // by region
		erase := func(region string) error {
			rc, err := c.pp.EraseReceipt(ctx, c.key, region, c.rid)
			if rc.Tombstone != "" {
				first[region] = rc
				out.Receipts = append(out.Receipts, eraseReceipt{Region: region, Tombstone: rc.Tombstone, Profiles: rc.Result.Profiles,
					Consents: rc.Result.Consents, Audits: rc.Result.Audits, Deliveries: rc.Result.Deliveries})
				if aerr := c.pp.Audit(ctx, privacy.KindAdmin, rc.Tombstone, region, c.rid,
					map[string]string{"action": "erase", "via": "admin_api", "sessions_ended": strconv.Itoa(len(out.SessionsEnded))}); aerr != nil {
					log.Warn("admin erase: the audit event was not recorded", zap.String("request_id", c.rid), zap.String("region", region), zap.Error(aerr))
				}
			}
			if err != nil {
				return fmt.Errorf("region %s: %w", region, err)
			}
			return nil
		}
		for _, region := range c.regions {
			if err := erase(region); err != nil {
				log.Error("admin erase failed", zap.String("request_id", c.rid), zap.Error(err))
				out.Warnings = append(out.Warnings, err.Error())
				c.answer(http.StatusInternalServerError, eraseFailure{Error: "erase_failed",
					Message: err.Error() + "; the receipts list what was erased; run the erase again", eraseResponse: out})
				return
			}
		}
		// A request that was in flight when the sessions were revoked may
		// have written again: look once more and sweep.
		if again, err := c.pp.Regions().Locate(ctx, c.key); err != nil {
			out.Warnings = append(out.Warnings, "could not check for writes made during the erasure; run the erase again: "+err.Error())
		} else {
			for _, region := range again {
				prev, ok := first[region]
				if !ok {
					// A region that held nothing a moment ago.
					if err := erase(region); err != nil {
						out.Warnings = append(out.Warnings, "sweep: "+err.Error()+"; run the erase again")
					}
					continue
				}
				// Under the same tombstone, without new deletion notices.
				rc, err := c.pp.EraseAgain(ctx, prev, c.key, region, c.rid)
				if err != nil {
					out.Warnings = append(out.Warnings, "sweep: region "+region+": "+err.Error()+"; run the erase again")
					continue
				}
				for i := range out.Receipts {
					if out.Receipts[i].Region == region && out.Receipts[i].Tombstone == rc.Tombstone {
						out.Receipts[i].Profiles, out.Receipts[i].Consents = rc.Result.Profiles, rc.Result.Consents
						out.Receipts[i].Audits, out.Receipts[i].Deliveries = rc.Result.Audits, rc.Result.Deliveries
					}
				}
			}
		}
		for _, name := range byIssuer {
			dn, ok := gw.Providers()[name].(proxy.DeletionNotifier)
			if !ok {
				continue
			}
			if err := dn.DeleteAccount(ctx, subject); err != nil {
				log.Error("admin erase: the provider could not delete its account record", zap.String("request_id", c.rid), zap.String("provider", name), zap.Error(err))
				out.Warnings = append(out.Warnings, "provider "+name+" could not delete its account record: "+err.Error())
				continue
			}
			out.AccountsDeleted = append(out.AccountsDeleted, name)
		}
		var tombs []string
		for _, rc := range out.Receipts {
			tombs = append(tombs, rc.Tombstone)
		}
		log.Info("admin privacy erase", zap.String("request_id", c.rid), zap.Strings("regions", c.regions), zap.Strings("receipts", tombs),
			zap.Strings("sessions_ended", providersOnly(out.SessionsEnded)), zap.Strings("accounts_deleted", out.AccountsDeleted))
		c.answer(http.StatusOK, out)
	}
}

// providersOnly keeps the provider revocations for the log: a "user:"
// entry holds the subject, which logs must not.
func providersOnly(ended []string) []string {
	var out []string
	for _, e := range ended {
		if strings.HasPrefix(e, "provider:") {
			out = append(out, e)
		} else {
			out = append(out, "user:…")
		}
	}
	return out
}

// auditPolicyReload records a successful policy reload as a system
// policy_reload event in every region of the new policy. Failures are
// logged: the reload itself has happened.
func auditPolicyReload(gw *proxy.Gateway, log *zap.Logger, previous, next, trigger string) {
	pp := gw.Privacy()
	if pp == nil || pp.Regions() == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	detail := map[string]string{"policy_sha256": next, "previous_sha256": previous, "trigger": trigger, "purposes_sha256": pp.PolicyHash()}
	for _, region := range pp.Regions().Names() {
		if err := pp.Audit(ctx, privacy.KindPolicyReload, "", region, "", detail); err != nil {
			log.Warn("privacy: cannot record the policy reload", zap.String("region", region), zap.Error(err))
		}
	}
}

const privacyUsage = `usage:
  gatehouse privacy export --subject KEY [--admin URL] [-o FILE]
  gatehouse privacy erase  --subject KEY [--admin URL] --yes
KEY is the subject key "issuer|subject"; the token comes from GATEHOUSE_ADMIN_TOKEN`

// cmdPrivacy is `gatehouse privacy export|erase`: support requests through
// a running gateway's admin API.
func cmdPrivacy(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "export" && args[0] != "erase") {
		return usageError{privacyUsage}
	}
	action := args[0]
	fs := newFlags("privacy "+action, stderr)
	admin := fs.String("admin", "http://127.0.0.1:9090", "the gateway's admin listener")
	subject := fs.String("subject", "", `the subject key, "issuer|subject" (as in an export's "subject")`)
	var outFile *string
	var yes *bool
	if action == "export" {
		outFile = fs.String("o", "", "write the export to FILE instead of standard output")
	} else {
		yes = fs.Bool("yes", false, "confirm the erasure: it cannot be undone")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if _, _, ok := privacy.SplitSubjectKey(strings.TrimSpace(*subject)); !ok {
		return usageError{`--subject KEY is required, as "issuer|subject" (quote it: the shell reads | as a pipe)`}
	}
	if yes != nil && !*yes {
		return usageError{"erasure cannot be undone: add --yes to confirm"}
	}
	token := os.Getenv("GATEHOUSE_ADMIN_TOKEN")
	if token == "" {
		return usageError{"set GATEHOUSE_ADMIN_TOKEN to the policy's server.admin_token"}
	}
	base := strings.TrimSuffix(*admin, "/")
	fmt.Fprintf(stderr, "asking %s to %s the data of %s ...\n", base, action, *subject)
	body, _ := json.Marshal(privacyRequest{SubjectKey: strings.TrimSpace(*subject)})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/privacy/"+action, bytes.NewReader(body))
	if err != nil {
		return usageError{"bad --admin URL: " + err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the admin API at %s: %w", base, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		var e adminError
		json.Unmarshal(raw, &e)
		if e.Message == "" {
			e.Message = strings.TrimSpace(string(raw))
		}
		if res.StatusCode == http.StatusInternalServerError && action == "erase" {
			// A partial erasure: show what was done before the failure.
			var part eraseResponse
			if json.Unmarshal(raw, &part) == nil {
				printReceipt(stdout, &part)
			}
		}
		return fmt.Errorf("the gateway refused (%s, %s): %s (request %s)", res.Status, e.Error, e.Message, e.RequestID)
	}
	if action == "export" {
		return writeExport(raw, *outFile, stdout, stderr)
	}
	var out eraseResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("the gateway's answer is not a receipt: %w", err)
	}
	printReceipt(stdout, &out)
	return nil
}

func writeExport(raw []byte, file string, stdout, stderr io.Writer) error {
	var out exportResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("the gateway's answer is not an export: %w", err)
	}
	if file == "" {
		stdout.Write(raw)
	} else if err := os.WriteFile(file, raw, 0o600); err != nil {
		return err
	} else {
		fmt.Fprintf(stderr, "wrote %s\n", file)
	}
	fmt.Fprintf(stderr, "exported %d region(s): %s (request %s)\n", len(out.Exports), strings.Join(out.Regions, ", "), out.RequestID)
	return nil
}

func printReceipt(w io.Writer, out *eraseResponse) {
	fmt.Fprintf(w, "erased %s (request %s)\n", out.SubjectKey, out.RequestID)
	if len(out.SessionsEnded) > 0 {
		fmt.Fprintf(w, "  sessions ended on every replica: %s\n", strings.Join(out.SessionsEnded, ", "))
	}
	for _, rc := range out.Receipts {
		fmt.Fprintf(w, "  region %s: receipt %s\n", rc.Region, rc.Tombstone)
		fmt.Fprintf(w, "    profile deleted: %d, consent entries anonymized: %d, audit events anonymized: %d, deletion notices queued: %d\n",
			rc.Profiles, rc.Consents, rc.Audits, rc.Deliveries)
	}
	if len(out.AccountsDeleted) > 0 {
		fmt.Fprintf(w, "  account records deleted at: %s\n", strings.Join(out.AccountsDeleted, ", "))
	}
	for _, warn := range out.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
	if len(out.Receipts) > 0 {
		fmt.Fprintln(w, "Quote the receipt to the customer: it is the only way to refer to this erasure now.")
	}
}
