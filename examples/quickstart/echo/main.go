// Command echo is the quickstart's upstream app: it shows every header it
// received and verifies Gatehouse's signed assertion.
package main

import (
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/gatehouse-dev/gatehouse/examples/quickstart"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	gateway := flag.String("gateway", "http://localhost:8080", "the gateway's public URL (for its JWKS and as the assertion issuer)")
	flag.Parse()
	echo := &quickstart.Echo{JWKSURL: *gateway + "/.gatehouse/jwks.json", Issuer: *gateway}
	log.Printf("echo app on http://%s (verifying assertions from %s)", *addr, *gateway)
	srv := &http.Server{Addr: *addr, Handler: echo, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
