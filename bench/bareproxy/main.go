// Command bareproxy is the baseline of the load harness: a plain
// net/http/httputil.ReverseProxy with no authentication, policy or
// logging, and an upstream transport tuned like Gatehouse's (see
// proxy/forward.go: defaultTransport). Gatehouse's overhead is measured
// against it.
//
//	go run ./bench/bareproxy -addr 127.0.0.1:9002 -upstream http://127.0.0.1:9001
//
// Both addresses must be loopback. With -cpuprofile FILE it writes a CPU
// profile of its whole run when it gets SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9002", "listen address (loopback only)")
	upstream := flag.String("upstream", "http://127.0.0.1:9001", "upstream base URL (loopback only)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file (at SIGINT/SIGTERM)")
	flag.Parse()
	target, err := url.Parse(*upstream)
	if err == nil && (target.Scheme != "http" || target.Host == "") {
		err = fmt.Errorf("want http://host:port, got %q", *upstream)
	}
	if err == nil {
		err = checkLoopback(target.Host)
	}
	if err == nil {
		err = checkLoopback(*addr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bareproxy:", err)
		os.Exit(2)
	}

	// The same tuning as Gatehouse's default upstream transport.
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second

	rp := &httputil.ReverseProxy{
		Transport:  t,
		BufferPool: &bufferPool{c: make(chan []byte, 512)}, // as Gatehouse's proxies have, for a fair comparison
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bareproxy:", err)
		os.Exit(1)
	}
	// Server settings as in cmd/gatehouse/serve.go (defaults of the policy).
	srv := &http.Server{
		Handler:           rp,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bareproxy:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(os.Stderr, "bareproxy listening on http://%s -> %s\n", ln.Addr(), target)
	select {
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "bareproxy:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}
}

// checkLoopback refuses any address that is not a loopback IP
// (127.0.0.0/8 or ::1) or "localhost".
func checkLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("address %q: %v", hostport, err)
	}
	if host == "localhost" {
		return nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.IsLoopback() {
		return fmt.Errorf("address %q is not loopback: this harness only talks to 127.0.0.0/8 or [::1]", hostport)
	}
	return nil
}

// bufferPool lends 32 KiB copy buffers, like Gatehouse's reverse proxies
// (proxy/forward.go), so the comparison stays fair.
type bufferPool struct{ c chan []byte }

func (b *bufferPool) Get() []byte {
	select {
	case buf := <-b.c:
		return buf
	default:
		return make([]byte, 32<<10)
	}
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) != 32<<10 {
		return
	}
	select {
	case b.c <- buf[:cap(buf)]:
	default:
	}
}
