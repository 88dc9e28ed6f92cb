package main

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse-dev/gatehouse/proxy"
)

// Background work of the privacy section, while serve runs:
const (
	// deliveryEvery is how often due deletion notices are sent to the
	// configured webhooks (each notice has its own backoff).
	deliveryEvery = 5 * time.Second
	// purgeEvery is how often audit events past their retention go.
	purgeEvery = 6 * time.Hour
)

// privacyJobs sends due webhook deliveries and purges expired audit events
// until ctx ends. Several replicas may run it at once: deliveries are
// claimed with a lease in the store, and a purge is idempotent.
func privacyJobs(ctx context.Context, gw *proxy.Gateway, log *zap.Logger) {
	client := &http.Client{Timeout: 10 * time.Second}
	deliver := time.NewTicker(deliveryEvery)
	defer deliver.Stop()
	purge := time.NewTimer(time.Minute) // first purge soon after start
	defer purge.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-deliver.C:
			p := gw.Privacy()
			if p == nil || len(p.Webhooks()) == 0 || p.Regions() == nil {
				continue
			}
			if _, err := p.Deliver(ctx, client); err != nil && ctx.Err() == nil {
				log.Warn("privacy: webhook deliveries", zap.Error(err))
			}
		case <-purge.C:
			purge.Reset(purgeEvery)
			p := gw.Privacy()
			if p == nil || p.Regions() == nil {
				continue
			}
			if done, err := p.Purge(ctx, time.Now()); err != nil {
				log.Warn("privacy: audit purge", zap.Error(err))
			} else if len(done) > 0 {
				log.Info("privacy: audit purge", zap.Any("purged", done))
			}
		}
	}
}
