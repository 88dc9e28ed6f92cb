package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/app"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

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

func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	file := fs.String("c", "gatehouse.yaml", "policy file")
	watch := fs.Duration("watch", 2*time.Second, "how often to check the policy file for changes and reload it (0: only on SIGHUP)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	l, err := app.Load(*file)
	if err != nil {
		return err
	}
	log := newLogger(l.Config, stdout)
	defer log.Sync()
	gw, rt, err := newGateway(l, log)
	if err != nil {
		return err
	}
	rt.watch = *watch
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return serve(ctx, l, gw, rt, stderr)
}

// newGateway builds the gateway of a loaded policy with a fresh metrics
// registry, keeping the generated secrets for reloads.
func newGateway(l *app.Loaded, log *zap.Logger) (*proxy.Gateway, *runtime, error) {
	rt := newRuntime(log)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	shared, err := app.OpenShared(ctx, l.Config, log)
	if err != nil {
		return nil, nil, err
	}
	opts, secrets, err := app.Build(l, log, &app.Secrets{Shared: shared})
	if err != nil {
		shared.Close()
		return nil, nil, err
	}
	rt.secrets = secrets
	opts.Metrics = rt.metrics
	if err := rt.startTracing(l.Config.Tracing); err != nil {
		shared.Close()
		return nil, nil, err
	}
	if rt.tracer != nil {
		opts.TracerProvider = rt.tracer
	}
	gw, err := proxy.New(opts)
	if err != nil {
		rt.stopTracing()
		return nil, nil, err
	}
	return gw, rt, nil
}

// startTracing builds the tracer provider of the policy's tracing section
// (none when disabled). It lives as long as the process: tracing settings
// are read at start only.
func (rt *runtime) startTracing(t config.Tracing) error {
	tp, err := proxy.NewTracerProvider(&t, version, rt.log)
	if err != nil {
		return err
	}
	rt.tracer, rt.tracing = tp, t
	if tp != nil {
		rt.log.Info("tracing on: exporting spans over OTLP/HTTP", zap.String("endpoint", t.ExportURL()),
			zap.Float64("sample_ratio", t.SampleRate()), zap.String("service_name", t.Service()))
	}
	return nil
}

// stopTracing flushes the spans still buffered and stops the exporter.
func (rt *runtime) stopTracing() {
	if rt.tracer == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rt.tracer.Shutdown(ctx); err != nil {
		rt.log.Warn("tracing: flushing spans at shutdown failed", zap.Error(err))
	}
}

// runtime is what serve keeps across reloads: the logger, the metrics
// registry and the secrets generated at start.
type runtime struct {
	log      *zap.Logger
	registry *prometheus.Registry
	metrics  *proxy.Metrics
	secrets  *app.Secrets
	// tracer is the tracer provider built at start (nil: tracing off) and
	// tracing the settings it was built from.
	tracer  *sdktrace.TracerProvider
	tracing config.Tracing
	// watch is how often the policy file is checked for changes (0:
	// never; SIGHUP still reloads).
	watch time.Duration
}

func newRuntime(log *zap.Logger) *runtime {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &runtime{log: log, registry: reg, metrics: proxy.NewMetrics(reg)}
}

// serve runs the public and admin listeners until ctx ends, reloading the
// policy on SIGHUP, then drains in-flight requests.
func serve(ctx context.Context, l *app.Loaded, gw *proxy.Gateway, rt *runtime, stderr io.Writer) error {
	c := l.Config
	log := rt.log
	defer rt.stopTracing() // after the drain: in-flight requests' spans are flushed too
	rt.metrics.PolicyLoaded("", l.Hash)
	// Listen for SIGHUP before serving, so a reload signal can never hit
	// the default action (exit) once the gateway answers.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	srv := &http.Server{
		Addr:              c.Server.Listen,
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
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	jobsCtx, stopJobs := context.WithCancel(ctx)
	defer stopJobs()
	go privacyJobs(jobsCtx, gw, log)

	var admin *http.Server
	if c.Server.AdminListen != "" {
		admin = &http.Server{Addr: c.Server.AdminListen, Handler: adminHandler(gw, rt), ReadHeaderTimeout: 10 * time.Second}
		aln, err := net.Listen("tcp", c.Server.AdminListen)
		if err != nil {
			srv.Close()
			return fmt.Errorf("admin listener: %w", err)
		}
		go func() { errc <- admin.Serve(aln) }()
	}
	log.Info("gatehouse started",
		zap.String("listen", ln.Addr().String()), zap.String("admin_listen", c.Server.AdminListen),
		zap.String("public_url", c.Server.PublicURL), zap.String("policy", l.Path), zap.String("policy_sha256", l.Hash),
		zap.Int("routes", len(c.Routes)), zap.String("version", version))
	how := "SIGHUP reloads the policy"
	var tick <-chan time.Time
	if rt.watch > 0 {
		t := time.NewTicker(rt.watch)
		defer t.Stop()
		tick = t.C
		how = "the policy is reloaded when the file changes or on SIGHUP"
	}
	fmt.Fprintf(stderr, "gatehouse %s serving %s on http://%s (public URL %s); %s\n", version, l.Path, ln.Addr(), c.Server.PublicURL, how)

	// seen is the hash of the file content last tried, so a changed file
	// is reloaded once, and a broken one is reported once, not at every
	// check.
	seen := l.Hash
	doReload := func(trigger string) {
		old := gw.Policy().Hash
		next, err := reload(l.Path, gw, rt)
		if err != nil {
			rt.metrics.Reloaded(false, old, "")
			log.Error("policy reload refused; the running policy stays", zap.String("policy", l.Path), zap.String("trigger", trigger), zap.Error(err))
			return
		}
		seen = next.Hash
		rt.metrics.Reloaded(true, old, next.Hash)
		log.Info("policy reloaded", zap.String("policy", next.Path), zap.String("trigger", trigger), zap.String("policy_sha256", next.Hash), zap.Int("routes", len(next.Config.Routes)))
		auditPolicyReload(gw, log, old, next.Hash, trigger)
	}

	for {
		select {
		case <-hup:
			doReload("sighup")
		case <-tick:
			data, err := os.ReadFile(l.Path)
			if err != nil {
				// A ConfigMap update swaps a symlink; a moment without the
				// file is normal. The running policy stays.
				continue
			}
			sum := sha256.Sum256(data)
			if h := hex.EncodeToString(sum[:]); h != seen {
				seen = h
				doReload("file_change")
			}
		case err := <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		case <-ctx.Done():
			log.Info("shutting down: draining in-flight requests", zap.Duration("timeout", c.Server.Timeouts.Shutdown.D()))
			sctx, cancel := context.WithTimeout(context.Background(), c.Server.Timeouts.Shutdown.D())
			defer cancel()
			if admin != nil {
				admin.Shutdown(sctx)
			}
			if err := srv.Shutdown(sctx); err != nil {
				log.Warn("drain incomplete", zap.Error(err))
				return nil
			}
			log.Info("stopped")
			if rt.secrets != nil && rt.secrets.Shared != nil {
				rt.secrets.CloseShared()
			}
			return nil
		}
	}
}

// providerGrace is how long the providers of a replaced policy stay open
// for the requests still using them.
const providerGrace = time.Minute

// reload loads, compiles and builds a new policy beside the running one and
// swaps it in; on any error nothing changes. Listener addresses are not
// reloadable.
func reload(path string, gw *proxy.Gateway, rt *runtime) (*app.Loaded, error) {
	l, err := app.Load(path)
	if err != nil {
		return nil, err
	}
	opts, _, err := app.Build(l, rt.log, rt.secrets)
	if err != nil {
		return nil, err
	}
	opts.Metrics = rt.metrics
	if rt.tracer != nil {
		opts.TracerProvider = rt.tracer
	}
	if !l.Config.Tracing.Equal(&rt.tracing) {
		rt.log.Warn("tracing settings changed: they take effect when Gatehouse restarts; the running tracing stays as it was")
	}
	old := gw.Providers()
	if err := gw.Reload(opts); err != nil {
		app.CloseProviders(opts.Providers)
		return nil, err
	}
	// Requests that started before the swap may still use the old
	// providers (a sign-in callback, a mail being sent): close them later.
	time.AfterFunc(providerGrace, func() { app.CloseProviders(old) })
	return l, nil
}

// adminHandler serves the admin listener: metrics, health, readiness and
// the served policy's hash. None of it is on the public address (apart
// from the plain health probes).
func adminHandler(gw *proxy.Gateway, rt *runtime) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(rt.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := gw.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.Handle("POST /sessions/revoke", revokeHandler(gw, rt.log))
	mux.Handle("POST /privacy/export", privacyExportHandler(gw, rt.log))
	mux.Handle("POST /privacy/erase", privacyEraseHandler(gw, rt.log))
	mux.HandleFunc("GET /policy", func(w http.ResponseWriter, r *http.Request) {
		p := gw.Policy()
		fmt.Fprintf(w, "sha256 %s\nroutes %d\n", p.Hash, len(p.Routes()))
	})
	return mux
}
