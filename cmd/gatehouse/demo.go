package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gatehouse-dev/gatehouse/examples/quickstart"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

// demoFlags are the settings of 'gatehouse demo'.
type demoFlags struct {
	opts quickstart.DemoOptions
}

func parseDemoFlags(args []string, stderr io.Writer) (*demoFlags, error) {
	fs := newFlags("demo", stderr)
	f := &demoFlags{}
	fs.StringVar(&f.opts.Listen, "listen", quickstart.DefaultDemoListen, "the gateway's address (loopback only); the app is at http://localhost:PORT")
	fs.StringVar(&f.opts.AdminListen, "admin-listen", quickstart.DefaultDemoAdminListen, `the admin listener (metrics, health); "off" for none`)
	fs.StringVar(&f.opts.UpstreamListen, "upstream-listen", quickstart.DefaultDemoUpstream, "the demo app's address (a free port is used when taken)")
	fs.StringVar(&f.opts.IdPListen, "idp-listen", quickstart.DefaultDemoIdP, "the demo SAML IdP's address (a free port is used when taken)")
	fs.StringVar(&f.opts.Dir, "dir", "", "demo folder (accounts, privacy store, mail outbox, keys), reused and kept; default: a new temporary folder")
	fs.BoolVar(&f.opts.Keep, "keep", false, "keep the temporary demo folder at exit")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	return f, nil
}

// cmdDemo runs the demo on localhost with embedded defaults and no
// external service: the gateway with examples/quickstart/demo.yaml,
// customers with local accounts (mail in a development outbox) and the
// privacy pages, employees through a built-in demo SAML IdP, and the echo
// app as the upstream. Ctrl-C stops it all.
func cmdDemo(args []string, stdout, stderr io.Writer) error {
	f, err := parseDemoFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return runDemo(ctx, f.opts, stdout, stderr, nil)
}

// runDemo starts the demo, prints the banner once the gateway is ready and
// runs until ctx ends. started, when set, is called with the running demo
// (tests).
func runDemo(ctx context.Context, o quickstart.DemoOptions, stdout, stderr io.Writer, started func(*quickstart.Demo)) error {
	// The demo's policy says log.format console; build the logger from it
	// before the policy is loaded with the real addresses.
	log := newDemoLogger(stdout)
	defer log.Sync()
	rt := newRuntime(log)
	o.Logger = log
	o.Configure = func(opts *proxy.Options) { opts.Metrics = rt.metrics }
	o.Admin = func(gw *proxy.Gateway) http.Handler { return adminHandler(gw, rt) }
	d, err := quickstart.StartDemo(o)
	if err != nil {
		return err
	}
	rt.metrics.PolicyLoaded("", d.Loaded.Hash)
	jobsCtx, stopJobs := context.WithCancel(ctx)
	defer stopJobs()
	go privacyJobs(jobsCtx, d.Gateway, log)

	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := d.WaitReady(rctx); err != nil {
		log.Warn("the demo started, but the gateway is not ready yet (employees cannot sign in until it is)", zap.Error(err))
	}
	cancel()
	fmt.Fprint(stderr, d.Banner())
	if started != nil {
		started(d)
	}

	<-ctx.Done()
	log.Info("stopping the demo")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = d.Close(sctx)
	if d.Temporary {
		fmt.Fprintf(stderr, "gatehouse demo stopped; removed %s\n", d.Dir)
	} else {
		fmt.Fprintf(stderr, "gatehouse demo stopped; kept %s (start again with -dir %s)\n", d.Dir, d.Dir)
	}
	return err
}

// newDemoLogger is the console logger the demo policy asks for.
func newDemoLogger(out io.Writer) *zap.Logger {
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = func(t time.Time, enc zapcore.PrimitiveArrayEncoder) { enc.AppendString(t.Format("15:04:05")) }
	encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
	return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(encCfg), zapcore.AddSync(out), zapcore.InfoLevel))
}
