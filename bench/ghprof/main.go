// Command ghprof runs Gatehouse the way `gatehouse serve -c FILE` does —
// same loading (internal/app), same gateway (proxy.New), same public
// http.Server settings — and writes Go profiles of the run, which the
// gatehouse binary does not offer. The load harness uses it for
// `go run ./bench/load -cpuprofile FILE`. There is no admin listener and
// no SIGHUP reload; the public listener must be a loopback address.
//
//	go run ./bench/ghprof -c policy.yaml -cpuprofile cpu.pprof [-memprofile mem.pprof]
//
// The profiles are written when the process gets SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/app"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ghprof:", err)
		os.Exit(1)
	}
}

func run() error {
	file := flag.String("c", "gatehouse.yaml", "policy file")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memProfile := flag.String("memprofile", "", "write an allocation profile to this file at exit")
	flag.Parse()

	l, err := app.Load(*file)
	if err != nil {
		return err
	}
	c := l.Config
	if err := checkLoopback(c.Server.Listen); err != nil {
		return err
	}
	log := newLogger(c, os.Stdout)
	defer log.Sync()
	opts, _, err := app.Build(l, log, nil)
	if err != nil {
		return err
	}
	gw, err := proxy.New(opts)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           gw,
		ReadHeaderTimeout: c.Server.Timeouts.ReadHeader.D(),
		IdleTimeout:       c.Server.Timeouts.Idle.D(),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	ln, err := net.Listen("tcp", c.Server.Listen)
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		runtime.MemProfileRate = 64 << 10
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(os.Stderr, "ghprof: gatehouse serving %s on http://%s\n", l.Path, ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	return nil
}

// newLogger is cmd/gatehouse's logger: JSON (or console) at the policy's
// level.
func newLogger(c *config.Config, out io.Writer) *zap.Logger {
	level := zapcore.InfoLevel
	_ = level.Set(c.Log.Level)
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if c.Log.Format == "console" {
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(out), level))
}

func checkLoopback(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("server.listen %q: %v", hostport, err)
	}
	if host == "localhost" {
		return nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.IsLoopback() {
		return fmt.Errorf("server.listen %q is not loopback: ghprof only listens on 127.0.0.0/8 or [::1]", hostport)
	}
	return nil
}
