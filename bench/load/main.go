// Command load is Gatehouse's loopback load harness. It builds and starts
// three servers on the loopback interface — a tiny upstream
// (bench/upstream), a bare httputil.ReverseProxy in front of it
// (bench/bareproxy) and Gatehouse in front of it (cmd/gatehouse, a policy
// with one static user and one route allowing any signed-in user) — signs
// in to Gatehouse, checks that a signed-in request reaches the upstream and
// an anonymous one is sent to sign in, then drives the bare proxy and
// Gatehouse in turn, round after round, for a fixed time at a fixed
// concurrency, and prints requests/s, p50 and p99 latency and the ratio
// Gatehouse / bare proxy.
//
//	go run ./bench/load                        # 3 rounds x 5 s, 32 connections
//	go run ./bench/load -wrk                   # the same with wrk as the client
//	go run ./bench/load -access-log            # also Gatehouse with info-level access logs
//	go run ./bench/load -redis redis://127.0.0.1:6379/0   # also Gatehouse with server-side sessions in Redis
//	go run ./bench/load -min-ratio 0.8         # exit 1 below 80% of the bare proxy
//	go run ./bench/load -profile-dir /tmp/p    # CPU profiles of both proxies (Gatehouse via bench/ghprof)
//
// It only ever listens on and connects to loopback addresses, stops by
// itself (-max-total bounds the whole run), and stops every server it
// started when it exits, fails or is interrupted. It is not run by CI.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	duration, warmup, maxTotal time.Duration
	rounds, conc, wrkThreads   int
	useWrk, accessLog, keep    bool
	verbose, bareCookie        bool
	noAssertion                bool
	sessionValue               string // a Gatehouse session cookie, sent to the bare proxy too
	minRatio, maxNoise         float64
	host, path, root           string
	profileDir                 string
	redisURL                   string // also measure Gatehouse with session.store server on this Redis
}

// target is one server driven by the load generator.
type target struct {
	name       string
	base       string // http://host:port
	proc       *child
	gatehouse  bool
	cookieName string
	results    []phaseResult
	// upstreamSees is what the upstream reported about the request header
	// it got through this proxy ("header_bytes=N Name,Name,...").
	upstreamSees string
}

const (
	staticProvider = "bench"
	staticUser     = "bench-user"
	sessionCookie  = "gatehouse-workforce" // insecure_cookies: no __Host- prefix
)

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "measured time per target per round")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each measured window")
	fs.IntVar(&cfg.rounds, "rounds", 3, "rounds; each drives every target once, bare proxy first")
	fs.IntVar(&cfg.conc, "c", 32, "concurrent keep-alive connections")
	fs.BoolVar(&cfg.useWrk, "wrk", false, "use wrk (on PATH; Debian package wrk) instead of the built-in Go load generator")
	fs.IntVar(&cfg.wrkThreads, "wrk-threads", 0, "wrk threads (0: the number of CPUs)")
	fs.BoolVar(&cfg.accessLog, "access-log", false, "also measure a second Gatehouse logging every request at info level (JSON to /dev/null)")
	fs.DurationVar(&cfg.maxTotal, "max-total", 5*time.Minute, "hard limit on the whole run, build included")
	fs.Float64Var(&cfg.minRatio, "min-ratio", 0, "exit 1 when Gatehouse's req/s / the bare proxy's is below this (0: only report)")
	fs.Float64Var(&cfg.maxNoise, "max-noise", 0, "re-run (at most -rounds times) a round during which unrelated processes kept more than this many CPUs busy (0: keep every round)")
	fs.StringVar(&cfg.host, "host", "127.0.0.1", "loopback address every server listens on (127.0.0.0/8 or ::1)")
	fs.StringVar(&cfg.path, "path", "/", "request path")
	fs.StringVar(&cfg.root, "root", "", "module root (default: found from the working directory)")
	fs.StringVar(&cfg.profileDir, "profile-dir", "", "write CPU profiles of the bare proxy and of Gatehouse (run by bench/ghprof, same request path as gatehouse serve) to this directory")
	fs.BoolVar(&cfg.bareCookie, "bare-cookie", true, "send the bare proxy the same session Cookie header as Gatehouse (a browser would), so both parse the same request")
	fs.BoolVar(&cfg.noAssertion, "no-assertion", false, "run Gatehouse with assertion.disabled (no signed X-Gatehouse-Assertion header upstream), to see what the assertion costs")
	fs.StringVar(&cfg.redisURL, "redis", "", "also measure a Gatehouse keeping sessions in this Redis (session.store server; a loopback redis:// URL)")
	fs.BoolVar(&cfg.verbose, "v", false, "print the raw CPU accounting of every window")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory (binaries, policies, logs)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "load: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if err := cfg.check(); err != nil {
		fmt.Fprintln(stderr, "load:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.maxTotal, fmt.Errorf("-max-total %v reached", cfg.maxTotal))
	defer cancel()

	ratio, err := measure(ctx, &cfg, stdout, stderr)
	if err != nil {
		if c := context.Cause(ctx); c != nil {
			err = fmt.Errorf("%w (stopped: %v)", err, c)
		}
		fmt.Fprintln(stderr, "load:", err)
		return 1
	}
	if cfg.minRatio > 0 && ratio < cfg.minRatio {
		fmt.Fprintf(stderr, "load: Gatehouse / bare proxy = %.3f, below -min-ratio %.3f\n", ratio, cfg.minRatio)
		return 1
	}
	return 0
}

func (c *config) check() error {
	switch {
	case c.duration <= 0 || c.warmup < 0:
		return errors.New("-duration must be positive and -warmup not negative")
	case c.rounds < 1 || c.rounds > 100:
		return errors.New("-rounds must be between 1 and 100")
	case c.conc < 1 || c.conc > 4096:
		return errors.New("-c must be between 1 and 4096")
	case !strings.HasPrefix(c.path, "/") || strings.HasPrefix(c.path, "/.gatehouse"):
		return errors.New("-path must start with / and not be a /.gatehouse/ endpoint")
	}
	if err := checkLoopback(net.JoinHostPort(c.host, "0")); err != nil {
		return fmt.Errorf("-host: %w", err)
	}
	targets := 2
	if c.accessLog {
		targets++
	}
	if c.redisURL != "" {
		u, err := url.Parse(c.redisURL)
		if err != nil || u.Scheme != "redis" {
			return errors.New("-redis must be a redis:// URL")
		}
		if err := checkLoopback(u.Host); err != nil {
			return fmt.Errorf("-redis: %w", err)
		}
		targets++
	}
	w, d := c.warmup, c.duration
	if c.useWrk { // wrk counts in whole seconds
		w, d = w.Round(time.Second)+time.Second, d.Round(time.Second)+time.Second
	}
	rounds := c.rounds
	if c.maxNoise > 0 {
		rounds *= 2 // every round may be run twice
	}
	est := time.Duration(rounds*targets) * (w + d)
	if est > c.maxTotal {
		what := "rounds"
		if c.maxNoise > 0 {
			what = "rounds (possible re-runs included)"
		}
		return fmt.Errorf("%d %s x %d targets x (warm-up %v + %v) = %v is longer than -max-total %v", rounds, what, targets, c.warmup, c.duration, est, c.maxTotal)
	}
	return nil
}

// measure sets everything up, runs the rounds and prints the report. It
// returns the ratio of Gatehouse's median req/s to the bare proxy's.
func measure(ctx context.Context, cfg *config, stdout, stderr io.Writer) (float64, error) {
	var wrkPath string
	if cfg.useWrk {
		p, err := exec.LookPath("wrk")
		if err != nil {
			return 0, errors.New("-wrk: wrk is not on PATH (apt-get install wrk)")
		}
		wrkPath = p
	}
	root := cfg.root
	if root == "" {
		var err error
		if root, err = findModuleRoot(); err != nil {
			return 0, err
		}
	}
	if cfg.profileDir != "" {
		d, err := filepath.Abs(cfg.profileDir)
		if err == nil {
			err = os.MkdirAll(d, 0o755)
		}
		if err != nil {
			return 0, err
		}
		cfg.profileDir = d
		defer fmt.Fprintf(stderr, "load: CPU profiles (whole server lifetimes) in %s; e.g. go tool pprof -top %s\n", d, filepath.Join(d, "gatehouse.cpu.pprof"))
	}
	tmp, err := os.MkdirTemp("", "gatehouse-bench-")
	if err != nil {
		return 0, err
	}
	if cfg.keep {
		fmt.Fprintf(stderr, "load: keeping %s\n", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	// 1. Build the three servers.
	fmt.Fprintf(stderr, "load: building gatehouse, upstream and bareproxy in %s ...\n", tmp)
	t0 := time.Now()
	goVersion, err := build(ctx, root, tmp, cfg.profileDir != "")
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(stderr, "load: built in %v\n", time.Since(t0).Round(100*time.Millisecond))

	// 2. Start them. Every child is stopped on the way out, whatever happens.
	cs := &children{}
	defer cs.stopAll(3 * time.Second)
	addr := func() (string, error) {
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.host, "0"))
		if err != nil {
			return "", err
		}
		defer ln.Close()
		a := ln.Addr().String()
		return a, checkLoopback(a)
	}
	upAddr, err := addr()
	if err != nil {
		return 0, err
	}
	up, err := cs.start("upstream", filepath.Join(tmp, "upstream"), []string{"-addr", upAddr}, nil)
	if err != nil {
		return 0, err
	}
	if err := waitReady(ctx, up, "http://"+upAddr+"/", 200, 15*time.Second); err != nil {
		return 0, err
	}

	bareAddr, err := addr()
	if err != nil {
		return 0, err
	}
	bareArgs := []string{"-addr", bareAddr, "-upstream", "http://" + upAddr}
	if cfg.profileDir != "" {
		bareArgs = append(bareArgs, "-cpuprofile", filepath.Join(cfg.profileDir, "bare.cpu.pprof"))
	}
	bare, err := cs.start("bareproxy", filepath.Join(tmp, "bareproxy"), bareArgs, nil)
	if err != nil {
		return 0, err
	}
	if err := waitReady(ctx, bare, "http://"+bareAddr+"/", 200, 15*time.Second); err != nil {
		return 0, err
	}
	targets := []*target{{name: "bare", base: "http://" + bareAddr, proc: bare}}

	type ghSpec struct {
		name, level string
		redis       bool
	}
	specs := []ghSpec{{"gatehouse", "warn", false}}
	if cfg.accessLog {
		specs = append(specs, ghSpec{"gatehouse+log", "info", false})
	}
	if cfg.redisURL != "" {
		specs = append(specs, ghSpec{"gatehouse+redis", "warn", true})
	}
	for _, sp := range specs {
		ghAddr, err := addr()
		if err != nil {
			return 0, err
		}
		policy := filepath.Join(tmp, sp.name+".yaml")
		redisURL := ""
		if sp.redis {
			redisURL = cfg.redisURL
		}
		if err := os.WriteFile(policy, []byte(policyYAML(ghAddr, upAddr, sp.level, !cfg.noAssertion, redisURL)), 0o600); err != nil {
			return 0, err
		}
		// Logs: warn level to a file (a few start-up warnings), info level
		// (one JSON line per request) to /dev/null, so the encoding and the
		// write are paid but nothing accumulates.
		var out io.Writer
		if sp.level == "info" {
			devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				return 0, err
			}
			defer devnull.Close()
			out = devnull
		} else {
			f, err := os.Create(filepath.Join(tmp, sp.name+".log"))
			if err != nil {
				return 0, err
			}
			defer f.Close()
			out = f
		}
		bin, ghArgs := filepath.Join(tmp, "gatehouse"), []string{"serve", "-c", policy}
		if cfg.profileDir != "" && sp.level == "warn" {
			bin, ghArgs = filepath.Join(tmp, "ghprof"), []string{"-c", policy, "-cpuprofile", filepath.Join(cfg.profileDir, "gatehouse.cpu.pprof")}
		}
		gh, err := cs.start(sp.name, bin, ghArgs, out)
		if err != nil {
			return 0, err
		}
		if err := waitReady(ctx, gh, "http://"+ghAddr+"/.gatehouse/healthz", 200, 20*time.Second); err != nil {
			return 0, err
		}
		targets = append(targets, &target{name: sp.name, base: "http://" + ghAddr, proc: gh, gatehouse: true, cookieName: sessionCookie})
	}

	// 3. Check the setup before measuring anything.
	upBody, cookieLen, err := verify(ctx, cfg, "http://"+upAddr, targets)
	if err != nil {
		return 0, fmt.Errorf("setup check failed, nothing measured: %w", err)
	}

	// 4. Header.
	gen := "built-in Go load generator (net/http client, keep-alive)"
	if cfg.useWrk {
		threads := cfg.wrkThreads
		if threads == 0 {
			threads = runtime.NumCPU()
		}
		cfg.wrkThreads = max(1, min(threads, cfg.conc))
		gen = fmt.Sprintf("%s, %d threads", wrkVersion(wrkPath), cfg.wrkThreads)
	}
	fmt.Fprintf(stdout, "Gatehouse loopback load test\n")
	fmt.Fprintf(stdout, "  machine:   %d CPUs (%s), GOMAXPROCS %d, %s/%s\n", runtime.NumCPU(), cpuModel(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(stdout, "  go:        servers built with %s, harness %s\n", goVersion, runtime.Version())
	fmt.Fprintf(stdout, "  client:    %s\n", gen)
	fmt.Fprintf(stdout, "  load:      %d connections, %d rounds x (%v warm-up + %v measured) per target, GET %s\n", cfg.conc, cfg.rounds, cfg.warmup, cfg.duration, cfg.path)
	sentTo := "Gatehouse only"
	if cfg.bareCookie {
		sentTo = "both proxies"
	}
	fmt.Fprintf(stdout, "  upstream:  200, %d-byte body; policy: 1 route, allow authenticated, signed assertion %s\n", len(upBody), map[bool]string{true: "on", false: "off"}[!cfg.noAssertion])
	fmt.Fprintf(stdout, "  cookie:    %d-byte session Cookie header sent to %s\n", cookieLen, sentTo)
	if cfg.profileDir != "" {
		fmt.Fprintf(stdout, "  profiling: CPU profiles on; Gatehouse runs as bench/ghprof (gatehouse serve's request path)\n")
	}
	for _, t := range targets {
		fmt.Fprintf(stdout, "  upstream request via %-13s %s\n", t.name+":", t.upstreamSees)
	}
	fmt.Fprintf(stdout, "  load avg:  %s at start (other processes on the machine compete for the same CPUs)\n", loadAvg())
	if runtime.NumCPU() <= 4 {
		fmt.Fprintf(stdout, "  note:      with %d CPUs the client, the proxy and the upstream share the cores; nothing is pinned\n", runtime.NumCPU())
	}
	fmt.Fprintf(stdout, "  columns:   proxy/client CPU = CPU time of the proxy / load generator per 200 response;\n")
	fmt.Fprintf(stdout, "             others = CPUs kept busy by unrelated processes (or stolen by the hypervisor) during the window: noise\n")
	fmt.Fprintln(stdout)

	// 5. Rounds: every target once per round, in the same order. With
	// -max-noise, a round during which unrelated processes kept more CPUs
	// busy than that is discarded and run again (at most -rounds times).
	discarded := 0
	for round := 1; round <= cfg.rounds; round++ {
		results := make([]phaseResult, len(targets))
		noisy := false
		for i, t := range targets {
			r, err := drive(ctx, cfg, wrkPath, t, up)
			if err != nil {
				return 0, fmt.Errorf("round %d, %s: %w", round, t.name, err)
			}
			results[i] = r
			noisy = noisy || (cfg.maxNoise > 0 && r.Others > cfg.maxNoise)
			line := fmt.Sprintf("round %d/%d  %-14s %7.0f req/s  p50 %-8s p99 %-8s errors %d  proxy CPU %s/req  client CPU %s/req  others %s",
				round, cfg.rounds, t.name, r.RPS, fmtDur(r.P50), fmtDur(r.P99), r.Errors(), fmtDur(r.CPUPerReq), fmtDur(perReq(r.GenCPU, r.OK)), fmtCPUs(r.Others))
			if i > 0 {
				line += fmt.Sprintf("  ratio %.3f", r.RPS/results[0].RPS)
			}
			if r.Refreshes > 0 {
				line += fmt.Sprintf("  (%d cookie refreshes)", r.Refreshes)
			}
			fmt.Fprintln(stdout, line)
		}
		if noisy && discarded < cfg.rounds {
			discarded++
			fmt.Fprintf(stdout, "round %d/%d  discarded: other processes used more than %.2f CPUs in a window (%d of %d re-runs used)\n", round, cfg.rounds, cfg.maxNoise, discarded, cfg.rounds)
			round--
			continue
		}
		for i, t := range targets {
			t.results = append(t.results, results[i])
		}
	}

	// 6. Summary.
	fmt.Fprintf(stdout, "\nSummary (every column the median of %d rounds)\n\n", cfg.rounds)
	fmt.Fprintln(stdout, "| target | req/s | p50 | p99 | errors | proxy CPU / req | busy others | req/s vs bare | bare CPU / proxy CPU |")
	fmt.Fprintln(stdout, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	bareCPU := median(targets[0].results, func(r phaseResult) float64 { return float64(r.CPUPerReq) })
	bareRPS := median(targets[0].results, func(r phaseResult) float64 { return r.RPS })
	var ratio float64
	for i, t := range targets {
		rps := median(t.results, func(r phaseResult) float64 { return r.RPS })
		p50 := time.Duration(median(t.results, func(r phaseResult) float64 { return float64(r.P50) }))
		p99 := time.Duration(median(t.results, func(r phaseResult) float64 { return float64(r.P99) }))
		cpu := time.Duration(median(t.results, func(r phaseResult) float64 { return float64(r.CPUPerReq) }))
		others := median(t.results, func(r phaseResult) float64 { return r.Others })
		var errs int64
		for _, r := range t.results {
			errs += r.Errors()
		}
		rel := rps / bareRPS
		if i == 1 {
			ratio = rel
		}
		capRatio := "-"
		if cpu > 0 && bareCPU > 0 {
			capRatio = fmt.Sprintf("%.3f", bareCPU/float64(cpu))
		}
		fmt.Fprintf(stdout, "| %s | %.0f | %s | %s | %d | %s | %s | %.3f | %s |\n", t.name, rps, fmtDur(p50), fmtDur(p99), errs, fmtDur(cpu), fmtCPUs(others), rel, capRatio)
	}
	fmt.Fprintf(stdout, "\nbare CPU / proxy CPU: the proxy's CPU time per request relative to the bare proxy's, i.e. the req/s ratio\n")
	fmt.Fprintf(stdout, "to expect when the proxy alone is the bottleneck (its own cores, client and upstream elsewhere).\n")
	if discarded > 0 {
		fmt.Fprintf(stdout, "%d noisy round(s) discarded and run again.\n", discarded)
	}
	fmt.Fprintf(stdout, "load avg at end: %s\n", loadAvg())
	paired := make([]phaseResult, len(targets[1].results))
	for i := range paired {
		paired[i].RPS = targets[1].results[i].RPS / targets[0].results[i].RPS
	}
	fmt.Fprintf(stdout, "Gatehouse / bare proxy (req/s): %.3f (median of rounds' paired ratios %.3f; target >= 0.8: %s)\n",
		ratio, median(paired, func(r phaseResult) float64 { return r.RPS }), map[bool]string{true: "met", false: "NOT met"}[ratio >= 0.8])
	return ratio, nil
}

// drive runs one warm-up and one measured window against t. For Gatehouse
// it signs in afresh first (so the session is never old enough to be
// re-issued on every request) and checks afterwards that the cookie still
// gets a 200.
func drive(ctx context.Context, cfg *config, wrkPath string, t *target, upstream *child) (phaseResult, error) {
	url := t.base + cfg.path
	var cookie *cookieBox
	switch {
	case t.gatehouse:
		v, err := signIn(ctx, t.base, cfg.path, staticProvider, staticUser, t.cookieName)
		if err != nil {
			return phaseResult{}, err
		}
		cookie = newCookieBox(t.cookieName, v)
	case cfg.bareCookie:
		// The same header a signed-in browser sends; the bare proxy never
		// answers with Set-Cookie, so nothing is adopted.
		cookie = newCookieBox(sessionCookie, cfg.sessionValue)
	}
	window := func(d time.Duration) (phaseResult, error) {
		if cfg.useWrk {
			r, _, err := runWrk(ctx, wrkPath, url, cookie.header(), cfg.conc, cfg.wrkThreads, d)
			return r, err
		}
		return runGo(ctx, url, cookie, cfg.conc, d)
	}
	if cfg.warmup > 0 {
		if _, err := window(cfg.warmup); err != nil {
			return phaseResult{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	c0 := takeCPU(t.proc.cmd.Process.Pid, upstream.cmd.Process.Pid)
	r, err := window(cfg.duration)
	if err != nil {
		return r, err
	}
	c1 := takeCPU(t.proc.cmd.Process.Pid, upstream.cmd.Process.Pid)
	r.Others = -1
	if c0.ok && c1.ok && r.OK > 0 {
		r.ProxyCPU = c1.proxy - c0.proxy
		r.CPUPerReq = r.ProxyCPU / time.Duration(r.OK)
		if !cfg.useWrk {
			r.GenCPU = c1.self - c0.self
		}
		own := r.ProxyCPU + (c1.upstrem - c0.upstrem) + r.GenCPU
		if cfg.useWrk {
			own += c1.self - c0.self // the harness itself, waiting for wrk
		}
		r.Others = max(0, float64(c1.busy-c0.busy-own)/float64(r.Elapsed))
		if cfg.verbose {
			fmt.Fprintf(os.Stderr, "cpu: busy %v proxy %v upstream %v self %v gen %v elapsed %v\n", c1.busy-c0.busy, r.ProxyCPU, c1.upstrem-c0.upstrem, c1.self-c0.self, r.GenCPU, r.Elapsed)
		}
	}
	if ok, err := t.proc.exited(); ok {
		return r, fmt.Errorf("%s exited during the run (%v)\n%s", t.name, err, t.proc.stderr)
	}
	if t.gatehouse {
		c := newCheckClient()
		defer c.CloseIdleConnections()
		status, loc, _, err := get(ctx, c, url, cookie.header())
		if err != nil || status != 200 {
			return r, fmt.Errorf("after the window the session no longer gets a 200 (status %d, location %q, err %v): the measurement is not of signed-in requests", status, loc, err)
		}
	}
	if r.OK == 0 {
		return r, fmt.Errorf("no successful request in the window (%d non-200, %d errors)", r.Non200, r.Errs)
	}
	return r, nil
}

// verify checks the setup: the bare proxy and Gatehouse (signed in) return
// the upstream's body, Gatehouse passes the identity and an assertion, and
// Gatehouse sends an anonymous request to sign in.
func verify(ctx context.Context, cfg *config, upBase string, targets []*target) (string, int, error) {
	c := newCheckClient()
	defer c.CloseIdleConnections()
	status, _, upBody, err := get(ctx, c, upBase+cfg.path, "")
	if err != nil || status != 200 || upBody == "" {
		return "", 0, fmt.Errorf("upstream: status %d, err %v", status, err)
	}
	cookieLen := 0
	// Gatehouse first, so that the bare proxy can be sent its cookie.
	ordered := append(slices.Clone(targets[1:]), targets[0])
	for _, t := range ordered {
		u := t.base + cfg.path
		if !t.gatehouse {
			bareCk := ""
			if cfg.bareCookie {
				bareCk = sessionCookie + "=" + cfg.sessionValue
			}
			status, _, body, err := get(ctx, c, u, bareCk)
			if err != nil || status != 200 || body != upBody {
				return "", 0, fmt.Errorf("%s: GET %s: status %d, err %v, body %q (want the upstream's)", t.name, u, status, err, body)
			}
			_, _, id, _ := get(ctx, c, t.base+"/_bench/identity", bareCk)
			first, rest, _ := strings.Cut(id, "\n")
			if first != "user= assertion=no" {
				return "", 0, fmt.Errorf("%s: upstream saw %q, want no identity", t.name, id)
			}
			t.upstreamSees = strings.TrimSpace(rest)
			continue
		}
		status, loc, _, err := get(ctx, c, u, "")
		if err != nil || status != 302 || !strings.HasPrefix(loc, "/.gatehouse/login?") {
			return "", 0, fmt.Errorf("%s: anonymous GET %s: status %d, location %q, err %v; want 302 to /.gatehouse/login", t.name, u, status, loc, err)
		}
		v, err := signIn(ctx, t.base, cfg.path, staticProvider, staticUser, t.cookieName)
		if err != nil {
			return "", 0, fmt.Errorf("%s: %w", t.name, err)
		}
		ck := t.cookieName + "=" + v
		cookieLen = len(ck)
		cfg.sessionValue = v
		status, loc, body, err := get(ctx, c, u, ck)
		if err != nil || status != 200 || body != upBody {
			return "", 0, fmt.Errorf("%s: signed-in GET %s: status %d, location %q, err %v, body %.200q (want 200 and the upstream's body)", t.name, u, status, loc, err, body)
		}
		_, _, id, _ := get(ctx, c, t.base+"/_bench/identity", ck)
		first, rest, _ := strings.Cut(id, "\n")
		want := "user=" + staticUser + " assertion=yes"
		if cfg.noAssertion {
			want = "user=" + staticUser + " assertion=no"
		}
		if first != want {
			return "", 0, fmt.Errorf("%s: upstream saw %q, want %q", t.name, first, want)
		}
		t.upstreamSees = strings.TrimSpace(rest)
	}
	return upBody, cookieLen, nil
}

// policyYAML is Gatehouse's policy for the run: one static user, one
// route for every path allowing any signed-in workforce user.
func policyYAML(listen, upstream, level string, assertion bool, redisURL string) string {
	key := make([]byte, 32)
	rand.Read(key)
	assertionLine := ""
	if !assertion {
		assertionLine = "assertion: { disabled: true }\n"
	}
	if redisURL != "" {
		// Server-side sessions in Redis, under a prefix of this run only.
		assertionLine += fmt.Sprintf("state: { redis_url: %q, key_prefix: \"gatehouse-bench-%s:\" }\n", redisURL, hex.EncodeToString(key[:4]))
	}
	return fmt.Sprintf(`# Written by bench/load for one run.
version: 1
server:
  listen: %q
  public_url: %q
log:
  format: json
  level: %s
  user: hash
session:
  keys: [%q]
  insecure_cookies: true   # plain http on loopback
  store: %s
%saudiences:
  workforce: { providers: [%s] }
providers:
  %s:
    type: static
    display_name: "Bench users"
    users:
      - { sub: %s, name: Bench User, email: bench@example.test, groups: [staff] }
routes:
  - name: app
    match: { path: / }
    audience: workforce
    allow: { authenticated: true }
    upstream: %q
`, listen, "http://"+listen, level, hex.EncodeToString(key), map[bool]string{true: "server", false: "cookie"}[redisURL != ""], assertionLine, staticProvider, staticProvider, staticUser, "http://"+upstream)
}

// build compiles the three servers into dir and returns the Go version.
func build(ctx context.Context, root, dir string, profiling bool) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("go is not on PATH")
	}
	args := []string{"build", "-trimpath", "-o", dir + string(os.PathSeparator), "./cmd/gatehouse", "./bench/upstream", "./bench/bareproxy"}
	if profiling {
		args = append(args, "./bench/ghprof")
	}
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, goBin, "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOVERSION: %v", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// findModuleRoot walks up from the working directory to Gatehouse's go.mod.
func findModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			if strings.Contains(string(b), "module github.com/gatehouse-dev/gatehouse\n") {
				return dir, nil
			}
			return "", fmt.Errorf("%s/go.mod is not Gatehouse's; run from the repository or pass -root", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found; run from the repository or pass -root")
		}
		dir = parent
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func perReq(d time.Duration, n int64) time.Duration {
	if n <= 0 {
		return 0
	}
	return d / time.Duration(n)
}

func fmtCPUs(f float64) string {
	if f < 0 {
		return "?"
	}
	return fmt.Sprintf("%.2f CPUs", f)
}

// loadAvg returns the 1, 5 and 15 minute load averages from /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func median(rs []phaseResult, f func(phaseResult) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// fmtDur prints a latency with three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}
