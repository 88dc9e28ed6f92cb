package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// Outbox is a DEVELOPMENT ONLY sender: it writes every message as an .eml
// file into a folder instead of sending it, and its ServeHTTP lists the
// messages with their links, so that confirmation and reset links can be
// followed without a mail server. Never use it in production: anyone who
// can reach the page can read every message, including reset links.
type Outbox struct {
	dir  string
	from string
	now  func() time.Time
	mu   sync.Mutex
}

// NewOutbox creates dir (0700) when needed. from is the sender address of
// messages without one.
func NewOutbox(dir, from string) (*Outbox, error) {
	if dir == "" {
		return nil, errors.New("mail: outbox folder is empty")
	}
	if from == "" {
		from = "Gatehouse <no-reply@localhost.localdomain>"
	}
	if _, err := checkAddr(from); err != nil {
		return nil, fmt.Errorf("mail: outbox from: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mail: outbox: %w", err)
	}
	return &Outbox{dir: dir, from: from, now: time.Now}, nil
}

// Dir returns the outbox folder.
func (o *Outbox) Dir() string { return o.dir }

// Send writes m as <time>-<random>.eml, atomically (temporary file, then
// rename) and readable by the owner only.
func (o *Outbox) Send(_ context.Context, m Message) error {
	if m.From == "" {
		m.From = o.from
	}
	now := o.now()
	body, err := Encode(m, now)
	if err != nil {
		return err
	}
	r := make([]byte, 4)
	rand.Read(r)
	name := now.UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(r) + ".eml"
	o.mu.Lock()
	defer o.mu.Unlock()
	tmp, err := os.CreateTemp(o.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("mail: outbox: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		return fmt.Errorf("mail: outbox: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("mail: outbox: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(o.dir, name)); err != nil {
		return fmt.Errorf("mail: outbox: %w", err)
	}
	return nil
}

// Stored is a message read back from the outbox.
type Stored struct {
	Name    string // file name
	Kind    string
	From    string
	To      string
	Subject string
	Date    time.Time
	Text    string
	HTML    string
	Links   []string // http(s) links found in the text part, in order
}

var linkRE = regexp.MustCompile(`https?://[^\s<>"']+`)

// Messages returns the messages in the outbox, newest first.
func (o *Outbox) Messages() ([]Stored, error) {
	entries, err := os.ReadDir(o.dir)
	if err != nil {
		return nil, fmt.Errorf("mail: outbox: %w", err)
	}
	var out []Stored
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".eml") {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(o.dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("mail: outbox: %w", err)
		}
		s, err := Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("mail: outbox %s: %w", e.Name(), err)
		}
		s.Name = e.Name()
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name > out[j].Name })
	return out, nil
}

// Parse reads back a message written by Encode.
func Parse(raw []byte) (Stored, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Stored{}, err
	}
	var dec mime.WordDecoder
	subj, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		subj = msg.Header.Get("Subject")
	}
	s := Stored{Kind: msg.Header.Get("X-Gatehouse-Mail"), From: msg.Header.Get("From"), To: msg.Header.Get("To"), Subject: subj}
	s.Date, _ = msg.Header.Date()
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return Stored{}, err
	}
	if strings.HasPrefix(mt, "multipart/") {
		// multipart.Reader undoes quoted-printable by itself.
		mr := multipart.NewReader(msg.Body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return Stored{}, err
			}
			b, err := io.ReadAll(p)
			if err != nil {
				return Stored{}, err
			}
			pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
			switch pt {
			case "text/plain":
				s.Text = string(b)
			case "text/html":
				s.HTML = string(b)
			}
		}
	} else {
		b, err := io.ReadAll(qpReader(msg))
		if err != nil {
			return Stored{}, err
		}
		s.Text = string(b)
	}
	s.Text = strings.ReplaceAll(s.Text, "\r\n", "\n")
	s.Links = linkRE.FindAllString(s.Text, -1)
	return s, nil
}

func qpReader(m *mail.Message) io.Reader {
	if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		return quotedprintable.NewReader(m.Body)
	}
	return m.Body
}

var outboxPage = template.Must(template.New("outbox").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>DEV ONLY: mail outbox</title>
<style nonce="{{.Nonce}}">
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#f6f7f9;--card:#fff;--line:#d0d5dd;--warn:#9a3412;--warnbg:#ffedd5}
@media (prefers-color-scheme:dark){:root{--fg:#e6e8eb;--bg:#111418;--card:#1b2027;--line:#343b45;--warn:#fed7aa;--warnbg:#431407}}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:56rem;margin:0 auto;padding:1rem}
.dev{background:var(--warnbg);color:var(--warn);border:2px solid currentColor;border-radius:.5rem;padding:.75rem 1rem;font-weight:600}
article{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:1rem;margin:1rem 0;overflow-wrap:anywhere}
pre{white-space:pre-wrap;font-size:.875rem}
h2{font-size:1.1rem;margin:.25rem 0}
.meta{font-size:.875rem;opacity:.8}
</style></head><body><main>
<p class="dev" role="alert">DEV ONLY: this page shows every message Gatehouse would have emailed, including password reset links. It must never be reachable in production.</p>
<h1>Mail outbox</h1>
<p class="meta">Folder: {{.Dir}} · {{len .Messages}} message(s), newest first.</p>
{{range .Messages}}<article>
<h2>{{.Subject}}</h2>
<p class="meta">To {{.To}} · {{.Date.Format "2006-01-02 15:04:05 MST"}}{{if .Kind}} · {{.Kind}}{{end}}</p>
{{range .Links}}<p><a href="{{.}}">{{.}}</a></p>{{end}}
<details><summary>Text</summary><pre>{{.Text}}</pre></details>
</article>{{else}}<p>No messages yet.</p>{{end}}
</main></body></html>
`))

// ServeHTTP lists the outbox (GET and HEAD only). The page is marked DEV
// ONLY and loads nothing external; links open the confirmation and reset
// pages they point to.
func (o *Outbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	msgs, err := o.Messages()
	if err != nil {
		http.Error(w, "cannot read the outbox", http.StatusInternalServerError)
		return
	}
	nb := make([]byte, 16)
	rand.Read(nb)
	nonce := base64.RawStdEncoding.EncodeToString(nb)
	var b bytes.Buffer
	if err := outboxPage.Execute(&b, map[string]any{"Nonce": nonce, "Dir": o.dir, "Messages": msgs}); err != nil {
		http.Error(w, "cannot render the outbox", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Robots-Tag", "noindex")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+nonce+"'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
	w.Write(b.Bytes())
}
