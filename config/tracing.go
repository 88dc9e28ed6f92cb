package config

// Tracing configures OpenTelemetry tracing. Its fields and checks are
// being designed.
type Tracing struct{}
