// Package inproc holds in-process benchmarks that compare Gatehouse's
// request path with a bare httputil.ReverseProxy, without sockets: both
// forward to a stub transport that answers at once, so the difference is
// Gatehouse's own work per request (sanitizing, session decoding, policy,
// identity headers, assertion, access record). They complement the
// loopback harness in bench/load, which includes the network stack.
//
//	go test -run '^$' -bench . -benchmem ./bench/inproc
//	go test -run '^$' -bench 'Gateway$' -cpuprofile /tmp/gw.pprof ./bench/inproc
//	go tool pprof -top /tmp/gw.pprof
package inproc
