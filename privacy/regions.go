package privacy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/store"
)

// Regions holds one open store per residency region and the ordered sources
// that place a new customer in a region. A customer's data is written only
// to their region's store.
type Regions struct {
	stores  map[string]store.Store
	names   []string
	def     string
	sources []config.RegionSource
}

// OpenRegions opens (and migrates) the store of every configured region.
// o is passed to store.Open with Region set per store. On error the stores
// already opened are closed again.
func OpenRegions(ctx context.Context, rc config.Regions, o store.Options) (*Regions, error) {
	const op = "privacy: open regions"
	r := &Regions{stores: map[string]store.Store{}, def: rc.DefaultRegion(), sources: slices.Clone(rc.From)}
	names := make([]string, 0, len(rc.Stores))
	for name := range rc.Stores {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ro := o
		ro.Region = name
		s, err := store.Open(ctx, rc.Stores[name], ro)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("%s: region %s: %w", op, name, err)
		}
		r.stores[name] = s
		r.names = append(r.names, name)
	}
	if r.def != "" && r.stores[r.def] == nil {
		r.Close()
		return nil, fmt.Errorf("%s: default region %q: %w", op, r.def, ErrUnknownRegion)
	}
	return r, nil
}

// NewRegions wraps stores that are already open (tests, tooling). def is the
// default region and must be one of them.
func NewRegions(stores map[string]store.Store, def string, sources []config.RegionSource) (*Regions, error) {
	r := &Regions{stores: map[string]store.Store{}, def: def, sources: slices.Clone(sources)}
	for name, s := range stores {
		if s == nil {
			return nil, fmt.Errorf("privacy: new regions: %w: region %s has a nil store", ErrInvalid, name)
		}
		r.stores[name] = s
		r.names = append(r.names, name)
	}
	sort.Strings(r.names)
	if r.def == "" && len(r.names) == 1 {
		r.def = r.names[0]
	}
	if r.stores[r.def] == nil {
		return nil, fmt.Errorf("privacy: new regions: default region %q: %w", def, ErrUnknownRegion)
	}
	return r, nil
}

// Names returns the region names, sorted.
func (r *Regions) Names() []string {
	if r == nil {
		return nil
	}
	return slices.Clone(r.names)
}

// Default returns the default region.
func (r *Regions) Default() string {
	if r == nil {
		return ""
	}
	return r.def
}

// Store returns the store of region, or nil when the region is unknown.
func (r *Regions) Store(region string) store.Store {
	if r == nil {
		return nil
	}
	return r.stores[region]
}

// storeFor is Store with an error naming the operation.
func (r *Regions) storeFor(op, region string) (store.Store, error) {
	if s := r.Store(region); s != nil {
		return s, nil
	}
	if r == nil {
		return nil, fmt.Errorf("privacy: %s: %w: no region stores configured", op, ErrNotConfigured)
	}
	return nil, fmt.Errorf("privacy: %s: %w %q", op, ErrUnknownRegion, region)
}

// RegionOf places a customer by the configured sources, in order: an extra
// claim, a header (believed only when trustedPeer says the request came
// from a trusted proxy) or the provider they signed in with. A value that
// is not a configured region is ignored and the next source is tried; the
// default region is the fallback. It does not look at stored data: use
// Resolve for an existing customer.
func (r *Regions) RegionOf(id *identity.Identity, req *http.Request, trustedPeer bool) string {
	if r == nil {
		return ""
	}
	for _, s := range r.sources {
		var v string
		switch {
		case s.Claim != "":
			if id != nil {
				v = id.Extra[s.Claim]
			}
		case s.Header != "":
			if trustedPeer && req != nil {
				v = req.Header.Get(s.Header)
			}
		case s.Provider != nil:
			if id != nil {
				v = s.Provider[id.Provider]
			}
		}
		v = strings.ToLower(strings.TrimSpace(v))
		if _, ok := r.stores[v]; ok && v != "" {
			return v
		}
	}
	return r.def
}

// Locate returns the regions whose store holds anything under subjectKey
// (a profile, consent history or audit events; see store.HasSubject),
// sorted. A correctly run deployment finds at most one; more means the
// customer's data was split (see Resolve). After an erasure, a region it
// still lists holds rows written under the subject meanwhile, for example
// an audit event of a request that was in flight: erase there again.
func (r *Regions) Locate(ctx context.Context, subjectKey string) ([]string, error) {
	const op = "locate subject"
	if err := validKey(op, subjectKey); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, nil
	}
	var out []string
	for _, name := range r.names {
		ok, err := r.stores[name].HasSubject(ctx, subjectKey)
		if err != nil {
			return nil, fmt.Errorf("privacy: %s: region %s: %w", op, name, err)
		}
		if ok {
			out = append(out, name)
		}
	}
	return out, nil
}

// LocateIn is Locate for one region: whether region's store holds
// anything under subjectKey.
func (r *Regions) LocateIn(ctx context.Context, subjectKey, region string) (bool, error) {
	const op = "locate subject"
	if err := validKey(op, subjectKey); err != nil {
		return false, err
	}
	s, err := r.storeFor(op, region)
	if err != nil {
		return false, err
	}
	ok, err := s.HasSubject(ctx, subjectKey)
	if err != nil {
		return false, fmt.Errorf("privacy: %s: region %s: %w", op, region, err)
	}
	return ok, nil
}

// Resolve returns the region of a customer at sign-in: the region that
// already holds their data (residency is sticky, so a customer travelling
// through another edge region keeps their home region), else RegionOf.
// When data is found in several regions the first one is returned.
func (r *Regions) Resolve(ctx context.Context, id *identity.Identity, req *http.Request, trustedPeer bool) (string, error) {
	if id == nil {
		return "", invalid("resolve region", "nil identity")
	}
	found, err := r.Locate(ctx, SubjectKey(id))
	if err != nil {
		return "", err
	}
	if len(found) > 0 {
		return found[0], nil
	}
	return r.RegionOf(id, req, trustedPeer), nil
}

// Close closes every store.
func (r *Regions) Close() error {
	if r == nil {
		return nil
	}
	var errs []error
	for _, name := range r.names {
		if err := r.stores[name].Close(); err != nil {
			errs = append(errs, fmt.Errorf("region %s: %w", name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("privacy: close regions: %w", err)
	}
	return nil
}
