package config

import (
	"fmt"
	"time"
)

// RateLimit is a rate-limit setting: server-wide under server.rate_limit
// (every request, the gateway's own /.gatehouse/ endpoints included), or
// one route's under routes[i].rate_limit. Where both are set both apply,
// each with its own counters, so the stricter one refuses first.
//
//	rate_limit:
//	  per_ip:   { requests: 100, per: 1m }
//	  per_user: { requests: 1000, per: 1h }
type RateLimit struct {
	PerIP   *RateQuota `yaml:"per_ip" doc:"Requests allowed per client address (IPv4 address or IPv6 /64) in each window. The address is the peer's, or the one a trusted proxy reports in X-Forwarded-For."`
	PerUser *RateQuota `yaml:"per_user" doc:"Requests allowed per signed-in person or API client (provider and subject) in each window. Anonymous requests count only per IP."`
}

// RateQuota is a number of requests in a fixed window.
type RateQuota struct {
	Requests int      `yaml:"requests" doc:"Requests allowed in each window; at least 1."`
	Per      Duration `yaml:"per" doc:"Window length, between 1s and 24h: 1m, 1h. Windows are aligned on the clock (a 1m window starts every whole minute)."`
}

// Bounds of a rate-limit window.
const (
	MinRateWindow = time.Second
	MaxRateWindow = 24 * time.Hour
)

// rateLimits checks server.rate_limit and every route's rate_limit.
func (v *validator) rateLimits() {
	v.rateLimit("server.rate_limit", v.cfg.Server.RateLimit, false)
	for i, r := range v.cfg.Routes {
		publicOnly := len(r.Audience) > 0
		for _, a := range r.Audience {
			publicOnly = publicOnly && a == "public"
		}
		v.rateLimit(fmt.Sprintf("routes[%d].rate_limit", i), r.RateLimit, publicOnly)
	}
}

func (v *validator) rateLimit(path string, rl *RateLimit, publicOnly bool) {
	if rl == nil {
		return
	}
	if rl.PerIP == nil && rl.PerUser == nil {
		v.add(path, "give per_ip, per_user or both, e.g. per_ip: { requests: 100, per: 1m }; or remove rate_limit", "rate_limit sets no limit")
		return
	}
	v.rateQuota(path+".per_ip", rl.PerIP)
	v.rateQuota(path+".per_user", rl.PerUser)
	if rl.PerUser != nil && publicOnly {
		v.add(path+".per_user", "the route's only audience is public, so nobody is signed in on it; use per_ip", "per_user never applies on this route")
	}
}

func (v *validator) rateQuota(path string, q *RateQuota) {
	if q == nil {
		return
	}
	switch {
	case q.Requests == 0:
		v.add(path+".requests", "e.g. requests: 100", "missing or zero requests: a limit allows at least 1 request per window")
	case q.Requests < 0:
		v.add(path+".requests", "a limit allows at least 1 request per window", "requests %d is negative", q.Requests)
	}
	switch d := q.Per.D(); {
	case d == 0:
		v.add(path+".per", "give a window between 1s and 24h, e.g. per: 1m", "missing or zero window")
	case d < MinRateWindow || d > MaxRateWindow:
		v.add(path+".per", "give a window between 1s and 24h, e.g. 1m or 1h", "per %s out of range", d)
	}
}
