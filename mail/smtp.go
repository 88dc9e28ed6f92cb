package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"strconv"
	"time"
)

// TLS modes of an SMTP sender.
const (
	// TLSStartTLS upgrades the connection with STARTTLS and refuses a
	// server that does not offer it (the default).
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (port 465, "SMTPS").
	TLSImplicit = "implicit"
	// TLSNone sends in clear text. Only for a relay on the same host or a
	// trusted private network, and never with a password over it unless
	// the relay is on a loopback address.
	TLSNone = "none"
)

// SMTPConfig configures an SMTP sender.
type SMTPConfig struct {
	Host     string
	Port     int    // default 587 (465 with TLSImplicit)
	Username string // AUTH PLAIN when set
	Password string
	From     string // envelope and header sender, e.g. "Gatehouse <no-reply@example.com>"
	TLS      string // TLSStartTLS (default), TLSImplicit or TLSNone
	// Timeout bounds one whole delivery, connection to QUIT. Default 15s.
	Timeout time.Duration
	// HeloName is the name given in EHLO. Default "localhost".
	HeloName string
	// TLSConfig overrides the TLS settings (tests: a private root CA).
	// ServerName defaults to Host.
	TLSConfig *tls.Config
}

// SMTP delivers messages to a relay.
type SMTP struct {
	c   SMTPConfig
	now func() time.Time
}

// NewSMTP checks c and returns a sender.
func NewSMTP(c SMTPConfig) (*SMTP, error) {
	if c.Host == "" {
		return nil, errors.New("mail: smtp host is empty")
	}
	switch c.TLS {
	case "":
		c.TLS = TLSStartTLS
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return nil, fmt.Errorf("mail: unknown smtp tls mode %q", c.TLS)
	}
	if c.Port == 0 {
		c.Port = 587
		if c.TLS == TLSImplicit {
			c.Port = 465
		}
	}
	if _, err := checkAddr(c.From); err != nil {
		return nil, fmt.Errorf("mail: smtp from: %w", err)
	}
	if c.TLS == TLSNone && c.Username != "" && !isLoopback(c.Host) {
		return nil, errors.New("mail: refusing to send an SMTP password without TLS to a host that is not a loopback address")
	}
	if c.Timeout <= 0 {
		c.Timeout = 15 * time.Second
	}
	if c.HeloName == "" {
		c.HeloName = "localhost"
	}
	return &SMTP{c: c, now: time.Now}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *SMTP) tlsConfig() *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.c.TLSConfig != nil {
		c = s.c.TLSConfig.Clone()
	}
	if c.ServerName == "" {
		c.ServerName = s.c.Host
	}
	return c
}

// Send delivers m. Every step shares one deadline: the earlier of the
// context's and now+Timeout.
func (s *SMTP) Send(ctx context.Context, m Message) (err error) {
	if m.From == "" {
		m.From = s.c.From
	}
	from, err := checkAddr(m.From)
	if err != nil {
		return err
	}
	to, err := checkAddr(m.To)
	if err != nil {
		return err
	}
	body, err := Encode(m, s.now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.c.Timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()

	addr := net.JoinHostPort(s.c.Host, strconv.Itoa(s.c.Port))
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("mail: smtp connect %s: %w", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	// A cancelled context interrupts whatever the client is waiting for.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	if s.c.TLS == TLSImplicit {
		tc := tls.Client(conn, s.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("mail: smtp tls %s: %w", addr, err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, s.c.Host)
	if err != nil {
		return fmt.Errorf("mail: smtp greeting from %s: %w", addr, err)
	}
	defer c.Close()
	step := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("mail: smtp %s (%s): %w", what, addr, err)
		}
		return nil
	}
	if err := step("EHLO", c.Hello(s.c.HeloName)); err != nil {
		return err
	}
	if s.c.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("mail: smtp server %s does not offer STARTTLS, which is required (set tls: none only for a trusted local relay)", addr)
		}
		if err := step("STARTTLS", c.StartTLS(s.tlsConfig())); err != nil {
			return err
		}
	}
	if s.c.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return fmt.Errorf("mail: smtp server %s does not offer AUTH but a username is configured", addr)
		}
		if err := step("AUTH", c.Auth(smtp.PlainAuth("", s.c.Username, s.c.Password, s.c.Host))); err != nil {
			return err
		}
	}
	if err := step("MAIL FROM", c.Mail(from)); err != nil {
		return err
	}
	if err := step("RCPT TO", c.Rcpt(to)); err != nil {
		return err
	}
	w, err := c.Data()
	if err := step("DATA", err); err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return step("DATA", err)
	}
	if err := step("end of DATA", w.Close()); err != nil {
		return err
	}
	return step("QUIT", c.Quit())
}
