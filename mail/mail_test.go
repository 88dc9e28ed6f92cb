package mail

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSMTP is a tiny SMTP server for tests: one message per connection.
type fakeSMTP struct {
	ln       net.Listener
	tls      *tls.Config
	startTLS bool // offer STARTTLS
	implicit bool // speak TLS from the start
	user     string
	pass     string
	stall    bool // never send the greeting

	mu   sync.Mutex
	got  []fakeMail
	errs []error
}

type fakeMail struct {
	from, to string
	data     string
	authed   bool
	tls      bool
}

func newFakeSMTP(t *testing.T, f *fakeSMTP) (host string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	a := ln.Addr().(*net.TCPAddr)
	return "127.0.0.1", a.Port
}

func (f *fakeSMTP) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if f.stall {
		time.Sleep(3 * time.Second)
		return
	}
	secure := false
	if f.implicit {
		c = tls.Server(c, f.tls)
		secure = true
	}
	tp := textproto.NewConn(c)
	reply := func(code int, lines ...string) {
		for i, l := range lines {
			sep := " "
			if i < len(lines)-1 {
				sep = "-"
			}
			tp.PrintfLine("%d%s%s", code, sep, l)
		}
	}
	reply(220, "fake.test ESMTP")
	var m fakeMail
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			ext := []string{"fake.test"}
			if f.startTLS && !secure {
				ext = append(ext, "STARTTLS")
			}
			if f.user != "" {
				ext = append(ext, "AUTH PLAIN")
			}
			reply(250, ext...)
		case "STARTTLS":
			reply(220, "go ahead")
			tc := tls.Server(c, f.tls)
			if err := tc.Handshake(); err != nil {
				f.fail(err)
				return
			}
			c = tc
			tp = textproto.NewConn(c)
			secure = true
		case "AUTH":
			mech, ir, _ := strings.Cut(arg, " ")
			b, _ := base64.StdEncoding.DecodeString(ir)
			if mech == "PLAIN" && string(b) == "\x00"+f.user+"\x00"+f.pass {
				m.authed = true
				reply(235, "ok")
			} else {
				reply(535, "bad credentials")
			}
		case "MAIL":
			m.from = strings.TrimSuffix(strings.TrimPrefix(arg, "FROM:<"), ">")
			reply(250, "ok")
		case "RCPT":
			m.to = strings.TrimSuffix(strings.TrimPrefix(arg, "TO:<"), ">")
			reply(250, "ok")
		case "DATA":
			reply(354, "go on")
			lines, err := tp.ReadDotLines()
			if err != nil {
				f.fail(err)
				return
			}
			m.data = strings.Join(lines, "\n")
			m.tls = secure
			f.mu.Lock()
			f.got = append(f.got, m)
			f.mu.Unlock()
			reply(250, "queued")
		case "QUIT":
			reply(221, "bye")
			return
		default:
			reply(502, "unknown")
		}
	}
}

func (f *fakeSMTP) fail(err error) {
	f.mu.Lock()
	f.errs = append(f.errs, err)
	f.mu.Unlock()
}

func (f *fakeSMTP) mails() []fakeMail {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeMail(nil), f.got...)
}

// testCert returns a server config for 127.0.0.1 and a client config
// trusting it.
func testCert(t *testing.T) (*tls.Config, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

func testMessage(t *testing.T) Message {
	t.Helper()
	m, err := Render(KindReset, Data{Product: "Acme Portal", Email: "zoë@example.com", Link: "https://gw.example.com/.gatehouse/local/acme/reset/confirm?token=abc.def_ghi-jkl=", ValidFor: "1 hour"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRenderAllKinds(t *testing.T) {
	for _, k := range []string{KindVerify, KindExists, KindReset, KindChanged} {
		m, err := Render(k, Data{Product: "Acme <Portal>", Email: "a@example.com", Link: "https://x.example/l?a=1&b=2", ValidFor: "1 hour"})
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if m.Subject == "" || strings.Contains(m.Subject, "\n") || m.Text == "" || m.HTML == "" || m.To != "a@example.com" {
			t.Fatalf("%s: %+v", k, m)
		}
		if strings.Contains(m.HTML, "<Portal>") {
			t.Fatalf("%s: HTML part not escaped: %s", k, m.HTML)
		}
		if k != KindChanged && !strings.Contains(m.Text, "https://x.example/l?a=1&b=2") {
			t.Fatalf("%s: text lacks the link:\n%s", k, m.Text)
		}
	}
	if _, err := Render("nope", Data{}); err == nil {
		t.Fatal("unknown kind rendered")
	}
}

func TestEncodeRefusesHeaderInjection(t *testing.T) {
	for _, m := range []Message{
		{From: "a@example.com", To: "b@example.com\r\nBcc: c@example.com", Subject: "x", Text: "x"},
		{From: "a@example.com", To: "b@example.com", Subject: "x\r\nBcc: c@example.com", Text: "x"},
		{From: "not an address", To: "b@example.com", Subject: "x", Text: "x"},
	} {
		if _, err := Encode(m, time.Now()); !errors.Is(err, ErrBadHeader) {
			t.Errorf("Encode(%q, %q) err = %v", m.To, m.Subject, err)
		}
	}
}

func TestSMTPStartTLSAndAuth(t *testing.T) {
	srvTLS, cliTLS := testCert(t)
	f := &fakeSMTP{tls: srvTLS, startTLS: true, user: "gatehouse", pass: "s3cret"}
	host, port := newFakeSMTP(t, f)
	s, err := NewSMTP(SMTPConfig{Host: host, Port: port, Username: "gatehouse", Password: "s3cret",
		From: "Acme <no-reply@example.com>", TLSConfig: cliTLS, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m := testMessage(t)
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := f.mails()
	if len(got) != 1 {
		t.Fatalf("server got %d messages (errors %v)", len(got), f.errs)
	}
	g := got[0]
	if !g.tls || !g.authed || g.from != "no-reply@example.com" || g.to != "zoë@example.com" {
		t.Fatalf("delivery = %+v", g)
	}
	parsed, err := Parse([]byte(strings.ReplaceAll(g.data, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Subject != m.Subject || len(parsed.Links) != 1 || parsed.Links[0] != "https://gw.example.com/.gatehouse/local/acme/reset/confirm?token=abc.def_ghi-jkl=" {
		t.Fatalf("parsed = %+v", parsed)
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	srvTLS, cliTLS := testCert(t)
	f := &fakeSMTP{tls: srvTLS, implicit: true}
	host, port := newFakeSMTP(t, f)
	s, err := NewSMTP(SMTPConfig{Host: host, Port: port, From: "no-reply@example.com", TLS: TLSImplicit, TLSConfig: cliTLS})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), testMessage(t)); err != nil {
		t.Fatal(err)
	}
	if got := f.mails(); len(got) != 1 || !got[0].tls {
		t.Fatalf("got %+v", got)
	}
}

func TestSMTPRequiresStartTLS(t *testing.T) {
	f := &fakeSMTP{}
	host, port := newFakeSMTP(t, f)
	s, err := NewSMTP(SMTPConfig{Host: host, Port: port, From: "no-reply@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), testMessage(t))
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("err = %v, want a refusal naming STARTTLS", err)
	}
	if len(f.mails()) != 0 {
		t.Fatal("a message went out without TLS")
	}
	// Explicitly disabled: clear text is allowed.
	s, err = NewSMTP(SMTPConfig{Host: host, Port: port, From: "no-reply@example.com", TLS: TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), testMessage(t)); err != nil {
		t.Fatal(err)
	}
	if got := f.mails(); len(got) != 1 || got[0].tls {
		t.Fatalf("got %+v", got)
	}
}

func TestSMTPBadCredentialsAndTimeout(t *testing.T) {
	srvTLS, cliTLS := testCert(t)
	f := &fakeSMTP{tls: srvTLS, startTLS: true, user: "u", pass: "right"}
	host, port := newFakeSMTP(t, f)
	s, _ := NewSMTP(SMTPConfig{Host: host, Port: port, Username: "u", Password: "wrong", From: "a@example.com", TLSConfig: cliTLS})
	if err := s.Send(context.Background(), testMessage(t)); err == nil || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("err = %v", err)
	}

	stall := &fakeSMTP{stall: true}
	host, port = newFakeSMTP(t, stall)
	s, _ = NewSMTP(SMTPConfig{Host: host, Port: port, From: "a@example.com", Timeout: 300 * time.Millisecond})
	start := time.Now()
	if err := s.Send(context.Background(), testMessage(t)); err == nil {
		t.Fatal("a stalled server did not fail the send")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("timeout took %v", d)
	}
}

func TestNewSMTPRefusesPasswordInClear(t *testing.T) {
	if _, err := NewSMTP(SMTPConfig{Host: "smtp.example.com", Username: "u", Password: "p", From: "a@example.com", TLS: TLSNone}); err == nil {
		t.Fatal("password over clear text to a remote host accepted")
	}
	if _, err := NewSMTP(SMTPConfig{Host: "smtp.example.com", From: "a@example.com", TLS: "ssl"}); err == nil {
		t.Fatal("unknown tls mode accepted")
	}
}

func TestOutbox(t *testing.T) {
	dir := t.TempDir() + "/outbox"
	o, err := NewOutbox(dir, "Acme <no-reply@example.com>")
	if err != nil {
		t.Fatal(err)
	}
	m := testMessage(t)
	if err := o.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	m2, _ := Render(KindChanged, Data{Product: "Acme", Email: "b@example.com"})
	if err := o.Send(context.Background(), m2); err != nil {
		t.Fatal(err)
	}
	msgs, err := o.Messages()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].Kind != KindChanged || msgs[1].Kind != KindReset || msgs[1].To != "zoë@example.com" ||
		len(msgs[1].Links) != 1 || msgs[1].Subject != m.Subject {
		t.Fatalf("messages = %+v", msgs)
	}
	st, err := os.Stat(dir + "/" + msgs[0].Name)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("file mode = %v, %v", st, err)
	}

	rec := httptest.NewRecorder()
	o.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.gatehouse/dev/outbox", nil))
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, "DEV ONLY") || !strings.Contains(body, `href="https://gw.example.com/.gatehouse/local/acme/reset/confirm?token=abc.def_ghi-jkl="`) {
		t.Fatalf("page %d:\n%s", rec.Code, body)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("CSP = %q", csp)
	}
	rec = httptest.NewRecorder()
	o.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
}
