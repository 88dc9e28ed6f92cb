// Command upstream is the load harness's application server: it answers
// every request with 200 and a fixed ~100-byte body, so that what the
// harness measures is the proxy in front of it, not the application.
//
// It listens on loopback only:
//
//	go run ./bench/upstream -addr 127.0.0.1:9001
//
// GET /_bench/identity answers with the identity headers it received
// (user and whether an assertion was present) and the size of the request
// header; the harness uses it once to check that requests really pass
// through Gatehouse signed in, and to report what each proxy sends.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Body is the fixed response body: 100 bytes exactly.
const Body = "gatehouse bench upstream: fixed body of one hundred bytes for the loopback load harness ...........\n"

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address (loopback only)")
	flag.Parse()
	if err := checkLoopback(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
	body := []byte(Body)
	clen := strconv.Itoa(len(body))
	mux := http.NewServeMux()
	mux.HandleFunc("/_bench/identity", func(w http.ResponseWriter, r *http.Request) {
		assertion := "no"
		if r.Header.Get("X-Gatehouse-Assertion") != "" {
			assertion = "yes"
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		size := 0
		var names []string
		for k, vs := range r.Header {
			names = append(names, k)
			for _, v := range vs {
				size += len(k) + len(": ") + len(v) + len("\r\n")
			}
		}
		sort.Strings(names)
		fmt.Fprintf(w, "user=%s assertion=%s\nheader_bytes=%d %s\n", r.Header.Get("X-Gatehouse-User"), assertion, size, strings.Join(names, ","))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		h["Content-Length"] = []string{clen}
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(body)
		}
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	fmt.Fprintf(os.Stderr, "upstream listening on http://%s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

// checkLoopback refuses any listen address that is not a loopback IP
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
		return fmt.Errorf("address %q is not loopback: this harness only listens on 127.0.0.0/8 or [::1]", hostport)
	}
	return nil
}
