package config

// Privacy configures consent purposes, data minimization, regions and
// retention for the customer audience. Its fields and checks are being
// designed.
type Privacy struct{}

// RoutePrivacy is a route's privacy settings. Its fields and checks are
// being designed.
type RoutePrivacy struct{}
