package config

// RateLimit is a rate-limit setting (server-wide under server.rate_limit,
// or per route). Its fields and checks are being designed.
type RateLimit struct{}
