package config

import (
	"strings"
	"testing"
)

const localPolicy = `version: 1
audiences:
  customer: { providers: [accounts] }
providers:
  accounts:
    type: local
    display_name: Acme account
    store: sqlite:///var/lib/gatehouse/accounts.db
    link_secret: ${LINK_SECRET}
    password: { min_length: 14, breached_list: breached.txt }
    argon2: { memory_kib: 65536, iterations: 2, parallelism: 2 }
    rate_limit: { per_ip: 20, per_account: 5, emails: 3, window: 15m }
    lockout: { max_failures: 8, duration: 30m }
    links: { verify_ttl: 48h, reset_ttl: 30m }
    mfa: { totp: true, issuer: Acme, required: true }
    mail:
      from: "Acme <no-reply@example.com>"
      smtp: { host: smtp.example.com, port: 587, username: gatehouse, password: "${SMTP_PASSWORD}" }
routes:
  - name: app
    match: { host: app.example.com }
    audience: customer
    allow: { authenticated: true }
    upstream: http://127.0.0.1:3000
`

func TestLocalProviderParses(t *testing.T) {
	cfg, err := Parse("p.yaml", []byte(localPolicy), env(map[string]string{
		"LINK_SECRET": "0123456789abcdef0123456789abcdef", "SMTP_PASSWORD": "s3cret"}))
	if err != nil {
		t.Fatal(err)
	}
	pc := cfg.Providers["accounts"]
	l := pc.Local
	if l == nil || pc.Settings() != any(l) {
		t.Fatalf("local settings not decoded: %+v", cfg.Providers["accounts"])
	}
	if l.DisplayName != "Acme account" || l.Password.MinLength != 14 || l.Argon2.Iterations != 2 || l.Lockout.Duration.D().String() != "30m0s" ||
		l.Mail.SMTP.Password != "s3cret" || l.LinkSecret != "0123456789abcdef0123456789abcdef" || l.Links.ResetTTL.D().String() != "30m0s" {
		t.Fatalf("decoded %+v", l)
	}
	if !l.MFA.TOTPEnabled() || l.MFA.Issuer != "Acme" || !l.MFA.Required || l.MFA.Passkeys {
		t.Fatalf("mfa decoded %+v", l.MFA)
	}
	if errs := l.Validate(); len(errs) != 0 {
		t.Fatalf("valid settings refused: %+v", errs)
	}
	if !(LocalMFA{}).TOTPEnabled() {
		t.Fatal("totp must default to on")
	}
}

func TestLocalProviderUnknownKey(t *testing.T) {
	src := strings.Replace(localPolicy, "    lockout:", "    lockuot: { max_failures: 3 }\n    lockout:", 1)
	out := diagnostics(t, src, env(map[string]string{"LINK_SECRET": "0123456789abcdef0123456789abcdef", "SMTP_PASSWORD": "x"}))
	if !strings.Contains(strings.Join(out, "\n"), "lockuot") {
		t.Fatalf("diagnostics: %v", out)
	}
}

func TestLocalProviderValidate(t *testing.T) {
	ok := LocalProvider{Mail: LocalMail{Outbox: "outbox"}}
	if errs := ok.Validate(); len(errs) != 0 {
		t.Fatalf("minimal settings refused: %+v", errs)
	}
	cases := []struct {
		key string
		mut func(*LocalProvider)
	}{
		{"mail", func(p *LocalProvider) { p.Mail = LocalMail{} }},
		{"mail.outbox", func(p *LocalProvider) { p.Mail.SMTP = &LocalSMTP{Host: "h"}; p.Mail.From = "a@example.com" }},
		{"mail.from", func(p *LocalProvider) { p.Mail = LocalMail{SMTP: &LocalSMTP{Host: "smtp.example.com"}} }},
		{"mail.smtp.host", func(p *LocalProvider) { p.Mail = LocalMail{From: "a@example.com", SMTP: &LocalSMTP{}} }},
		{"mail.smtp.tls", func(p *LocalProvider) {
			p.Mail = LocalMail{From: "a@example.com", SMTP: &LocalSMTP{Host: "smtp.example.com", TLS: "none", Username: "u", Password: "p"}}
		}},
		{"mail.smtp.tls", func(p *LocalProvider) {
			p.Mail = LocalMail{From: "a@example.com", SMTP: &LocalSMTP{Host: "h", TLS: "ssl"}}
		}},
		{"mail.smtp.username", func(p *LocalProvider) {
			p.Mail = LocalMail{From: "a@example.com", SMTP: &LocalSMTP{Host: "h", Username: "u"}}
		}},
		{"mail.from", func(p *LocalProvider) { p.Mail.From = "a@example.com\r\nBcc: b@example.com" }},
		{"store", func(p *LocalProvider) { p.Store = "mysql://db" }},
		{"link_secret", func(p *LocalProvider) { p.LinkSecret = "short" }},
		{"password.min_length", func(p *LocalProvider) { p.Password.MinLength = 6 }},
		{"password.max_length", func(p *LocalProvider) { p.Password.MaxLength = 5000 }},
		{"argon2.memory_kib", func(p *LocalProvider) { p.Argon2.MemoryKiB = 1024 }},
		{"argon2.iterations", func(p *LocalProvider) { p.Argon2.Iterations = 50 }},
		{"argon2.parallelism", func(p *LocalProvider) { p.Argon2.Parallelism = -1 }},
		{"rate_limit.per_ip", func(p *LocalProvider) { p.RateLimit.PerIP = -1 }},
		{"rate_limit.window", func(p *LocalProvider) { p.RateLimit.Window = Duration(1) }},
		{"lockout.duration", func(p *LocalProvider) { p.Lockout.Duration = Duration(1) }},
		{"links.reset_ttl", func(p *LocalProvider) { p.Links.ResetTTL = Duration(1) }},
		{"links.verify_ttl", func(p *LocalProvider) { p.Links.VerifyTTL = Duration(1) }},
		{"mfa.required", func(p *LocalProvider) { off := false; p.MFA.TOTP = &off; p.MFA.Required = true }},
		{"mfa.issuer", func(p *LocalProvider) { p.MFA.Issuer = "Acme:Corp" }},
		{"mfa.issuer", func(p *LocalProvider) { p.MFA.Issuer = strings.Repeat("a", 65) }},
		{"mfa.issuer", func(p *LocalProvider) { p.MFA.Issuer = "Acme\n" }},
	}
	for _, c := range cases {
		p := ok
		c.mut(&p)
		errs := p.Validate()
		found := false
		for _, e := range errs {
			found = found || e.Key == c.key
		}
		if !found {
			t.Errorf("%s: want an error on that key, got %+v", c.key, errs)
		}
	}
}

func TestLocalProviderPasskeys(t *testing.T) {
	off := false
	p := LocalProvider{Mail: LocalMail{Outbox: "outbox"}, MFA: LocalMFA{Passkeys: true}}
	if errs := p.Validate(); len(errs) != 0 {
		t.Fatalf("mfa.passkeys refused: %+v", errs)
	}
	// Passkeys alone are a second factor people can enrol.
	p.MFA.TOTP, p.MFA.Required = &off, true
	if errs := p.Validate(); len(errs) != 0 {
		t.Fatalf("mfa.required with passkeys only refused: %+v", errs)
	}
}
