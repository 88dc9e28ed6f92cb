package config

import (
	"fmt"
	"net/mail"
	"strings"
	"time"
)

// LocalProvider is Gatehouse's own email-and-password accounts: sign-up
// with email confirmation, sign-in, and password reset by email. Defaults
// are applied by providers/local when it builds the provider; a zero value
// here means "not set".
type LocalProvider struct {
	ProviderCommon `yaml:",inline"`

	Store        string `yaml:"store" doc:"Where the accounts are kept: sqlite:///absolute/path.db, sqlite://relative/path.db (relative to the policy file's folder) or postgres://... (use ${ENV} for a password). Default sqlite://gatehouse-accounts.db next to the policy file."`
	Registration *bool  `yaml:"registration" doc:"Let people create their own account (with email confirmation). Default true. When false, accounts are created by an operator and people can only sign in and reset their password."`
	LinkSecret   string `yaml:"link_secret" doc:"Secret of at least 32 bytes (use ${ENV}) that signs confirmation and reset links and sign-in proofs. Default: derived from session.keys. Changing it invalidates links already sent."`

	Password  LocalPassword  `yaml:"password" doc:"Password policy."`
	Argon2    LocalArgon2    `yaml:"argon2" doc:"argon2id hashing cost. Hashes made with other parameters are upgraded at the next sign-in."`
	RateLimit LocalRateLimit `yaml:"rate_limit" doc:"Attempts allowed per client IP and per email address, counted in the shared state."`
	Lockout   LocalLockout   `yaml:"lockout" doc:"Locking an account after repeated wrong passwords."`
	Links     LocalLinks     `yaml:"links" doc:"How long confirmation and reset links work."`
	Mail      LocalMail      `yaml:"mail" doc:"How confirmation and reset emails are sent: smtp, or outbox for development."`
	MFA       LocalMFA       `yaml:"mfa" doc:"Second factors: TOTP authenticator apps with recovery codes, enrolled by each person on the provider's security page."`
	Profile   []ProfileField `yaml:"profile" doc:"Extra profile fields (progressive profiling): asked at sign-in only when a route requires them (require: { claims: [id] }), kept with the account and carried in the identity's claims under their id."`
}

// LocalMFA configures second factors of local accounts.
type LocalMFA struct {
	TOTP     *bool  `yaml:"totp" doc:"Offer TOTP authenticator apps (with 10 single-use recovery codes). Default true. When false, nobody can enrol; accounts that already enrolled are still asked for their code at sign-in."`
	Passkeys bool   `yaml:"passkeys" doc:"Offer passkeys (WebAuthn) as a second factor after the password, added on the security page. The relying party is the host of server.public_url, which must be a host name (not an IP address). Default false."`
	Issuer   string `yaml:"issuer" doc:"Name shown in authenticator apps next to the account (the otpauth issuer). Default: the provider's display_name."`
	Required bool   `yaml:"required" doc:"Every account must use a second factor: after the password, a person without one is sent to set it up before signing in. Default false (routes may still require MFA with require: { mfa: true })."`
}

// TOTPEnabled reports whether TOTP enrolment is offered (default true).
func (m LocalMFA) TOTPEnabled() bool { return m.TOTP == nil || *m.TOTP }

// LocalPassword is the password policy.
type LocalPassword struct {
	MinLength    int    `yaml:"min_length" doc:"Minimum length in characters. Default 12, at least 8."`
	MaxLength    int    `yaml:"max_length" doc:"Maximum length in characters. Default 256, at most 1024."`
	BreachedList string `yaml:"breached_list" doc:"File of known breached passwords, one per line, compared exactly (case-sensitive); passwords on it are refused. Relative to the policy file's folder."`
}

// LocalArgon2 is the argon2id cost.
type LocalArgon2 struct {
	MemoryKiB   int `yaml:"memory_kib" doc:"Memory per hash in KiB. Default 65536 (64 MiB), at least 19456."`
	Iterations  int `yaml:"iterations" doc:"Passes over the memory. Default 1."`
	Parallelism int `yaml:"parallelism" doc:"Lanes (threads) per hash. Default 2."`
	Concurrency int `yaml:"concurrency" doc:"Hashes computed at the same time; more wait their turn, bounding memory use to memory_kib x concurrency. Default: the number of CPUs."`
}

// LocalRateLimit bounds attempts.
type LocalRateLimit struct {
	PerIP      int      `yaml:"per_ip" doc:"Sign-in, sign-up and reset attempts allowed from one client IP per window. Default 30."`
	PerAccount int      `yaml:"per_account" doc:"Attempts allowed for one email address per window (whether or not it has an account). Default 10."`
	Emails     int      `yaml:"emails" doc:"Confirmation or reset emails sent to one address per window. Default 3."`
	Window     Duration `yaml:"window" doc:"Length of the counting window. Default 15m."`
}

// LocalLockout locks accounts after wrong passwords.
type LocalLockout struct {
	MaxFailures int      `yaml:"max_failures" doc:"Consecutive wrong passwords that lock the account. Default 10."`
	Duration    Duration `yaml:"duration" doc:"How long the account stays locked. Default 15m. A password reset unlocks it."`
}

// LocalLinks sets the lifetime of emailed links.
type LocalLinks struct {
	VerifyTTL Duration `yaml:"verify_ttl" doc:"Lifetime of an email confirmation link. Default 24h."`
	ResetTTL  Duration `yaml:"reset_ttl" doc:"Lifetime of a password reset link. Default 1h."`
}

// LocalMail selects how mail is sent.
type LocalMail struct {
	From   string     `yaml:"from" doc:"Sender, e.g. \"Acme <no-reply@example.com>\". Required with smtp."`
	SMTP   *LocalSMTP `yaml:"smtp" doc:"Send through an SMTP relay."`
	Outbox string     `yaml:"outbox" doc:"DEVELOPMENT ONLY: write messages as files into this folder (relative to the policy file's folder) instead of sending them; they are listed at /.gatehouse/dev/outbox."`
}

// LocalSMTP is an SMTP relay.
type LocalSMTP struct {
	Host     string   `yaml:"host" doc:"Relay host name."`
	Port     int      `yaml:"port" doc:"Relay port. Default 587 (465 with tls: implicit)."`
	Username string   `yaml:"username" doc:"User for AUTH PLAIN. Empty: no authentication."`
	Password string   `yaml:"password" doc:"Password for AUTH PLAIN (use ${ENV})."`
	TLS      string   `yaml:"tls" doc:"starttls (default: required, the send fails if the relay does not offer it), implicit (TLS from the start, port 465) or none (clear text: only for a relay on this host or a trusted private network)."`
	Timeout  Duration `yaml:"timeout" doc:"Time limit of one delivery. Default 15s."`
}

// Validate checks the settings without reading any file or network.
func (p *LocalProvider) Validate() []FieldError {
	var errs []FieldError
	add := func(key, hint, format string, args ...any) {
		errs = append(errs, FieldError{Key: key, Msg: fmt.Sprintf(format, args...), Hint: hint})
	}
	if s := p.Store; s != "" && !strings.HasPrefix(s, "sqlite://") && !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://") {
		add("store", "e.g. sqlite:///var/lib/gatehouse/accounts.db or postgres://gatehouse@db/gatehouse", "unsupported store %q", redactURL(s))
	}
	if p.LinkSecret != "" && len(p.LinkSecret) < 32 {
		add("link_secret", "generate one with 'gatehouse keys'", "link secret is %d bytes; at least 32 are required", len(p.LinkSecret))
	}

	pw := p.Password
	if pw.MinLength != 0 && pw.MinLength < 8 {
		add("password.min_length", "NIST SP 800-63B asks for at least 8; 12 or more is better", "minimum length %d is too short", pw.MinLength)
	}
	if pw.MaxLength != 0 && (pw.MaxLength > 1024 || pw.MaxLength < 64) {
		add("password.max_length", "between 64 and 1024: long passphrases must fit", "maximum length %d out of range", pw.MaxLength)
	}
	if pw.MinLength != 0 && pw.MaxLength != 0 && pw.MinLength > pw.MaxLength {
		add("password.min_length", "", "min_length %d is above max_length %d", pw.MinLength, pw.MaxLength)
	}

	a := p.Argon2
	if a.MemoryKiB != 0 && (a.MemoryKiB < 19456 || a.MemoryKiB > 4<<20) {
		add("argon2.memory_kib", "at least 19456 (19 MiB, the OWASP minimum), at most 4194304 (4 GiB)", "memory %d KiB out of range", a.MemoryKiB)
	}
	if a.Iterations < 0 || a.Iterations > 20 {
		add("argon2.iterations", "between 1 and 20", "iterations %d out of range", a.Iterations)
	}
	if a.Parallelism < 0 || a.Parallelism > 64 {
		add("argon2.parallelism", "between 1 and 64", "parallelism %d out of range", a.Parallelism)
	}
	if a.Concurrency < 0 || a.Concurrency > 1024 {
		add("argon2.concurrency", "between 1 and 1024", "concurrency %d out of range", a.Concurrency)
	}

	rl := p.RateLimit
	for _, f := range []struct {
		key string
		v   int
	}{{"rate_limit.per_ip", rl.PerIP}, {"rate_limit.per_account", rl.PerAccount}, {"rate_limit.emails", rl.Emails}, {"lockout.max_failures", p.Lockout.MaxFailures}} {
		if f.v < 0 || f.v > 100000 {
			add(f.key, "a whole number between 1 and 100000", "%d out of range", f.v)
		}
	}
	if w := rl.Window.D(); w != 0 && (w < time.Minute || w > 24*time.Hour) {
		add("rate_limit.window", "between 1m and 24h", "window %s out of range", w)
	}
	if d := p.Lockout.Duration.D(); d != 0 && (d < time.Minute || d > 7*24*time.Hour) {
		add("lockout.duration", "between 1m and 168h", "lock duration %s out of range", d)
	}
	if d := p.Links.VerifyTTL.D(); d != 0 && (d < 5*time.Minute || d > 7*24*time.Hour) {
		add("links.verify_ttl", "between 5m and 168h", "lifetime %s out of range", d)
	}
	if d := p.Links.ResetTTL.D(); d != 0 && (d < 5*time.Minute || d > 24*time.Hour) {
		add("links.reset_ttl", "keep reset links short-lived: between 5m and 24h", "lifetime %s out of range", d)
	}

	f := p.MFA
	if f.Required && !f.TOTPEnabled() && !f.Passkeys {
		add("mfa.required", "set mfa.totp: true or mfa.passkeys: true, or mfa.required: false", "mfa.required needs a second factor people can enrol")
	}
	if f.Issuer != "" {
		switch {
		case len(f.Issuer) > 64:
			add("mfa.issuer", "at most 64 bytes, e.g. Acme", "issuer is %d bytes", len(f.Issuer))
		case strings.ContainsAny(f.Issuer, ":"):
			add("mfa.issuer", "authenticator apps split the label at ':'; e.g. Acme", "issuer %q contains ':'", f.Issuer)
		case strings.IndexFunc(f.Issuer, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
			add("mfa.issuer", "", "control character in the issuer")
		}
	}

	errs = append(errs, validateProfile(p.Profile)...)

	m := p.Mail
	switch {
	case m.SMTP == nil && m.Outbox == "":
		add("mail", "add mail.smtp (production) or mail.outbox (development)", "a local provider must send confirmation and reset emails: configure mail.smtp or mail.outbox")
	case m.SMTP != nil && m.Outbox != "":
		add("mail.outbox", "remove mail.outbox, or mail.smtp", "give only one of mail.smtp and mail.outbox")
	}
	if m.From != "" {
		if strings.ContainsAny(m.From, "\r\n") {
			add("mail.from", "", "line break in the sender")
		} else if _, err := mail.ParseAddress(m.From); err != nil {
			add("mail.from", `e.g. "Acme <no-reply@example.com>"`, "invalid sender %q: %v", m.From, err)
		}
	}
	if s := m.SMTP; s != nil {
		if m.From == "" {
			add("mail.from", `e.g. "Acme <no-reply@example.com>"`, "mail.smtp needs mail.from")
		}
		if s.Host == "" {
			add("mail.smtp.host", "e.g. smtp.example.com", "mail.smtp needs a host")
		}
		if s.Port < 0 || s.Port > 65535 {
			add("mail.smtp.port", "", "port %d out of range", s.Port)
		}
		switch s.TLS {
		case "", "starttls", "implicit":
		case "none":
			if s.Password != "" && !loopbackHost(s.Host) {
				add("mail.smtp.tls", "use starttls or implicit, or a relay on a loopback address", "refusing to send the SMTP password in clear text to %q", s.Host)
			}
		default:
			add("mail.smtp.tls", didYouMean(s.TLS, []string{"starttls", "implicit", "none"}), "unknown value %q", s.TLS)
		}
		if (s.Username == "") != (s.Password == "") {
			add("mail.smtp.username", "give both username and password, or neither", "username and password go together")
		}
		if d := s.Timeout.D(); d != 0 && (d < time.Second || d > 5*time.Minute) {
			add("mail.smtp.timeout", "between 1s and 5m", "timeout %s out of range", d)
		}
	}
	return errs
}
