package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gatehouse-dev/gatehouse/examples/quickstart"
	"github.com/gatehouse-dev/gatehouse/internal/app"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// cmdDemo runs the quickstart on localhost with embedded defaults: the echo
// app on 127.0.0.1:9001 and the gateway on 127.0.0.1:8080, with the
// quickstart policy's DEMO-ONLY test users.
func cmdDemo(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	l, err := app.LoadBytes("examples/quickstart/gatehouse.yaml (embedded)", quickstart.Policy, os.LookupEnv)
	if err != nil {
		return err
	}
	c := l.Config
	log := newLogger(l.Config, stdout)
	defer log.Sync()

	upstreamAddr := "127.0.0.1:9001"
	uln, err := net.Listen("tcp", upstreamAddr)
	if err != nil {
		return fmt.Errorf("cannot start the demo app on %s (is another demo running?): %w", upstreamAddr, err)
	}
	echo := &quickstart.Echo{JWKSURL: "http://" + c.Server.Listen + proxy.Prefix + "jwks.json", Issuer: c.Server.PublicURL}
	up := &http.Server{Handler: echo, ReadHeaderTimeout: 10 * time.Second}
	go up.Serve(uln)
	defer up.Close()

	gw, rt, err := newGateway(l, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, `
  Gatehouse demo (DEMO ONLY: test users, random keys, nothing kept)

  Open      %[1]s/            the intranet (employees)
            %[1]s/admin       admin area (admin role + MFA)
            %[1]s/shop        a public shop; /shop/account needs a customer sign-in
            %[1]s/public      anonymous page
            %[1]s/.gatehouse/whoami   your sessions
  Users     alice (employee), bob (admin, MFA), carol (contractor: denied), dana (customer)
  Metrics   http://127.0.0.1:9090/metrics (admin listener)
  Try       go run ./cmd/gatehouse explain -c examples/quickstart/gatehouse.yaml --url %[1]s/admin --groups staff

`, c.Server.PublicURL)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return serve(ctx, l, gw, rt, stderr)
}
