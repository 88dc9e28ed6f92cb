package saml

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	crewjam "github.com/crewjam/saml"
	"go.uber.org/zap"
)

// maxMetadataSize bounds IdP metadata (a federation aggregate is larger,
// but Gatehouse takes one IdP's metadata).
const maxMetadataSize = 4 << 20

// metadata is one loaded copy of the IdP's metadata.
type metadata struct {
	ed     *crewjam.EntityDescriptor
	loaded time.Time
}

// metadataSource holds the IdP metadata: loaded once from a file or inline
// XML, or fetched from a URL and refreshed in the background, keeping the
// last good copy when a refresh fails. The refresh goroutine holds only
// the source, never the Provider, so that a Provider dropped by a policy
// reload can be collected and its goroutine stopped (see New).
type metadataSource struct {
	url     string
	client  *http.Client
	timeout time.Duration
	refresh time.Duration
	log     *zap.Logger
	now     func() time.Time

	cur     atomic.Pointer[metadata]
	lastErr atomic.Pointer[error]

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// retryDelays are the waits after a failed fetch while no copy is loaded
// yet; the last one repeats until a fetch succeeds (then metadata_refresh).
var retryDelays = []time.Duration{2 * time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute}

// set installs a freshly parsed copy.
func (m *metadataSource) set(ed *crewjam.EntityDescriptor) {
	m.cur.Store(&metadata{ed: ed, loaded: m.now()})
	m.lastErr.Store(nil)
}

// get returns the current copy, or nil.
func (m *metadataSource) get() *metadata { return m.cur.Load() }

// start runs the fetch-and-refresh loop for a URL source.
func (m *metadataSource) start() {
	m.stop = make(chan struct{})
	m.done = make(chan struct{})
	go m.loop()
}

func (m *metadataSource) loop() {
	defer close(m.done)
	failures := 0
	for {
		err := m.fetch()
		wait := m.refresh
		if err != nil {
			m.lastErr.Store(&err)
			if m.get() == nil {
				wait = retryDelays[min(failures, len(retryDelays)-1)]
				m.log.Error("cannot load the IdP metadata; sign-in with this provider is unavailable until it loads", zap.String("url", m.url), zap.Duration("retry_in", wait), zap.Error(err))
			} else {
				// Keep the last good copy; try again sooner than a full period.
				wait = min(m.refresh, max(time.Minute, m.refresh/4))
				m.log.Warn("IdP metadata refresh failed; keeping the last good copy", zap.String("url", m.url), zap.Time("loaded", m.get().loaded), zap.Duration("retry_in", wait), zap.Error(err))
			}
			failures++
		} else {
			failures = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-m.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// fetch downloads and parses the metadata once; on success it replaces
// the current copy.
func (m *metadataSource) fetch() error {
	ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
	defer cancel()
	go func() {
		select {
		case <-m.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/samlmetadata+xml, application/xml, text/xml")
	resp, err := m.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("metadata URL answered %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataSize+1))
	if err != nil {
		return err
	}
	ed, err := parseIdPMetadata(data)
	if err != nil {
		return err
	}
	prev := m.get()
	m.set(ed)
	if prev == nil {
		m.log.Info("IdP metadata loaded", zap.String("url", m.url), zap.String("idp_entity_id", ed.EntityID))
	} else if prev.ed.EntityID != ed.EntityID {
		m.log.Warn("IdP entity ID changed in refreshed metadata", zap.String("url", m.url), zap.String("was", prev.ed.EntityID), zap.String("now", ed.EntityID))
	}
	return nil
}

// signalStop asks the refresh loop to end, without waiting.
func (m *metadataSource) signalStop() {
	if m.stop != nil {
		m.stopOnce.Do(func() { close(m.stop) })
	}
}

// close stops the refresh loop and waits for it.
func (m *metadataSource) close() {
	if m.stop == nil {
		return
	}
	m.signalStop()
	<-m.done
}

// ready is nil once a copy is loaded.
func (m *metadataSource) ready() error {
	if m.get() != nil {
		return nil
	}
	if e := m.lastErr.Load(); e != nil {
		return fmt.Errorf("IdP metadata not loaded: %w", *e)
	}
	return errors.New("IdP metadata not loaded yet")
}

// parseIdPMetadata parses IdP metadata: an EntityDescriptor, or an
// EntitiesDescriptor holding exactly one entity with an IDPSSODescriptor.
// It refuses metadata Gatehouse could not use: no single sign-on service
// with the HTTP-Redirect or HTTP-POST binding, or no usable signing
// certificate.
func parseIdPMetadata(data []byte) (*crewjam.EntityDescriptor, error) {
	if len(data) > maxMetadataSize {
		return nil, fmt.Errorf("metadata is larger than %d bytes", maxMetadataSize)
	}
	if bytes.Contains(data, []byte("<!DOCTYPE")) || bytes.Contains(data, []byte("<!ENTITY")) {
		return nil, errors.New("metadata must not contain a DOCTYPE")
	}
	var root struct{ XMLName xml.Name }
	if err := xml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("metadata is not XML: %w", err)
	}
	const mdNS = "urn:oasis:names:tc:SAML:2.0:metadata"
	var ed *crewjam.EntityDescriptor
	switch root.XMLName {
	case xml.Name{Space: mdNS, Local: "EntityDescriptor"}:
		ed = &crewjam.EntityDescriptor{}
		if err := xml.Unmarshal(data, ed); err != nil {
			return nil, fmt.Errorf("cannot read metadata: %w", err)
		}
	case xml.Name{Space: mdNS, Local: "EntitiesDescriptor"}:
		var all crewjam.EntitiesDescriptor
		if err := xml.Unmarshal(data, &all); err != nil {
			return nil, fmt.Errorf("cannot read metadata: %w", err)
		}
		var idps []*crewjam.EntityDescriptor
		var walk func(d *crewjam.EntitiesDescriptor)
		walk = func(d *crewjam.EntitiesDescriptor) {
			for i := range d.EntityDescriptors {
				if len(d.EntityDescriptors[i].IDPSSODescriptors) > 0 {
					idps = append(idps, &d.EntityDescriptors[i])
				}
			}
			for i := range d.EntitiesDescriptors {
				walk(&d.EntitiesDescriptors[i])
			}
		}
		walk(&all)
		if len(idps) != 1 {
			return nil, fmt.Errorf("metadata holds %d identity providers; give the metadata of exactly one", len(idps))
		}
		ed = idps[0]
	default:
		return nil, fmt.Errorf("metadata root is <%s>, not an EntityDescriptor", root.XMLName.Local)
	}
	if ed.EntityID == "" {
		return nil, errors.New("metadata has no entityID")
	}
	if len(ed.IDPSSODescriptors) == 0 {
		return nil, fmt.Errorf("entity %q has no IDPSSODescriptor: is this the IdP's metadata?", ed.EntityID)
	}
	sso := false
	certs := 0
	for _, d := range ed.IDPSSODescriptors {
		for _, s := range d.SingleSignOnServices {
			if (s.Binding == crewjam.HTTPRedirectBinding || s.Binding == crewjam.HTTPPostBinding) && s.Location != "" {
				sso = true
			}
		}
		for _, kd := range d.KeyDescriptors {
			if kd.Use != "" && kd.Use != "signing" {
				continue
			}
			for _, c := range kd.KeyInfo.X509Data.X509Certificates {
				if _, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(c.Data), "")); err == nil {
					certs++
				}
			}
		}
	}
	if !sso {
		return nil, fmt.Errorf("entity %q has no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding", ed.EntityID)
	}
	if certs == 0 {
		return nil, fmt.Errorf("entity %q publishes no signing certificate", ed.EntityID)
	}
	return ed, nil
}
