// Package mail sends Gatehouse's own email: the confirmation, "you already
// have an account", password reset and "password changed" messages of the
// local provider.
//
// A Sender delivers a Message. Two implementations exist: SMTP, which
// speaks to a mail relay (STARTTLS required unless explicitly disabled,
// AUTH PLAIN, time limits on every step), and Outbox, a DEVELOPMENT ONLY
// sender that writes each message as an .eml file into a folder and serves
// a page listing them with their links.
//
// Messages are built from embedded templates (plain text and HTML for each
// Kind) by Render, and encoded as multipart/alternative MIME by Encode.
package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	texttemplate "text/template"
	"time"
)

// Kinds of message, one embedded template pair each.
const (
	KindVerify  = "verify"  // confirm the address of a new account
	KindExists  = "exists"  // someone tried to register an address that has an account
	KindReset   = "reset"   // a password reset link
	KindChanged = "changed" // the password was changed
)

// Message is one email.
type Message struct {
	// From defaults to the sender's configured address when empty.
	From    string
	To      string
	Subject string
	Text    string
	HTML    string // optional alternative
	// Kind is the template the message came from, for logs and tests.
	Kind string
}

// Sender delivers messages.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Data fills a template.
type Data struct {
	Product  string // product name, e.g. the provider's display name
	Email    string // the recipient's address
	Link     string // the action link (absolute URL)
	ValidFor string // how long the link works, e.g. "1 hour"
}

//go:embed templates
var templateFS embed.FS

// Each kind's text template is parsed on its own, because every one of
// them defines its own "subject".
var (
	textTmpl = map[string]*texttemplate.Template{}
	htmlTmpl = htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/*.html"))
)

func init() {
	for _, k := range []string{KindVerify, KindExists, KindReset, KindChanged} {
		textTmpl[k] = texttemplate.Must(texttemplate.New(k+".txt").Option("missingkey=error").ParseFS(templateFS, "templates/"+k+".txt"))
	}
}

// Render builds a message of the given kind to the address in d.Email.
func Render(kind string, d Data) (Message, error) {
	var subj, text, html bytes.Buffer
	t := textTmpl[kind]
	if t == nil {
		return Message{}, fmt.Errorf("mail: no template for %q", kind)
	}
	if err := t.Execute(&text, d); err != nil {
		return Message{}, fmt.Errorf("mail: render %s: %w", kind, err)
	}
	if err := t.ExecuteTemplate(&subj, "subject", d); err != nil {
		return Message{}, fmt.Errorf("mail: render %s subject: %w", kind, err)
	}
	if h := htmlTmpl.Lookup(kind + ".html"); h != nil {
		if err := h.Execute(&html, d); err != nil {
			return Message{}, fmt.Errorf("mail: render %s: %w", kind, err)
		}
	}
	return Message{To: d.Email, Subject: strings.TrimSpace(subj.String()), Text: text.String(), HTML: html.String(), Kind: kind}, nil
}

// ErrBadHeader is returned for addresses or subjects that could smuggle
// headers (line breaks) or are not addresses.
var ErrBadHeader = errors.New("mail: invalid header value")

// checkAddr accepts one bare address ("a@example.com") or a named one
// ("Gatehouse <a@example.com>") and returns the bare address.
func checkAddr(s string) (string, error) {
	if strings.ContainsAny(s, "\r\n") {
		return "", fmt.Errorf("%w: line break in address", ErrBadHeader)
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrBadHeader, s, err)
	}
	return a.Address, nil
}

// Encode turns m into an RFC 5322 message with CRLF line endings: plain
// text, or multipart/alternative when HTML is set, both quoted-printable.
func Encode(m Message, now time.Time) ([]byte, error) {
	from, err := checkAddr(m.From)
	if err != nil {
		return nil, err
	}
	if _, err := checkAddr(m.To); err != nil {
		return nil, err
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return nil, fmt.Errorf("%w: line break in subject", ErrBadHeader)
	}
	var b bytes.Buffer
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", m.From)
	hdr("To", m.To)
	hdr("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	hdr("Date", now.UTC().Format(time.RFC1123Z))
	id := make([]byte, 12)
	rand.Read(id)
	domain := from[strings.LastIndex(from, "@")+1:]
	hdr("Message-ID", "<"+hex.EncodeToString(id)+"@"+domain+">")
	hdr("MIME-Version", "1.0")
	hdr("Auto-Submitted", "auto-generated")
	if m.Kind != "" {
		hdr("X-Gatehouse-Mail", m.Kind)
	}
	if m.HTML == "" {
		hdr("Content-Type", `text/plain; charset="utf-8"`)
		hdr("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		if err := writeQP(&b, m.Text); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	hdr("Content-Type", `multipart/alternative; boundary="`+mw.Boundary()+`"`)
	b.WriteString("\r\n")
	for _, part := range []struct{ typ, s string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.typ + `; charset="utf-8"`},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		if err := writeQP(pw, part.s); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	b.Write(body.Bytes())
	return b.Bytes(), nil
}

type writer interface{ Write([]byte) (int, error) }

func writeQP(w writer, s string) error {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
	q := quotedprintable.NewWriter(w)
	if _, err := q.Write([]byte(s)); err != nil {
		return err
	}
	return q.Close()
}
