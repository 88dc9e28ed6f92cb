package privacy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"
)

// Purged counts the audit events one Purge removed from one region and
// kind.
type Purged struct {
	Region  string
	Kind    string
	Before  time.Time
	Deleted int64
}

// Purge applies the retention settings: in every region, audit events of
// each configured kind older than now minus its period are deleted
// (store.PurgeAudit). Kinds without a period are kept. The consent ledger
// is never purged: it is the proof of consent. An error in one region or
// kind does not stop the others; the errors are returned joined, with the
// counts of what succeeded. Run it daily.
func (p *Policy) Purge(ctx context.Context, now time.Time) ([]Purged, error) {
	if now.IsZero() {
		now = p.now()
	}
	kinds := make([]string, 0, len(p.retention))
	for k := range p.retention {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var out []Purged
	var errs []error
	for _, region := range p.regions.Names() {
		s := p.regions.Store(region)
		for _, kind := range kinds {
			if err := ctx.Err(); err != nil {
				return out, errors.Join(append(errs, fmt.Errorf("privacy: purge: %w", err))...)
			}
			before := now.Add(-p.retention[kind])
			n, err := s.PurgeAudit(ctx, kind, before)
			if err != nil {
				errs = append(errs, fmt.Errorf("privacy: purge: region %s, kind %s: %w", region, kind, err))
				continue
			}
			out = append(out, Purged{Region: region, Kind: kind, Before: before, Deleted: n})
		}
	}
	return out, errors.Join(errs...)
}

// Retention returns the configured period of an audit kind, and whether
// one is configured.
func (p *Policy) Retention(kind string) (time.Duration, bool) {
	d, ok := p.retention[kind]
	return d, ok
}
