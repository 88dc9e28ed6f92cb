package main

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// phaseResult is what one measured window of one target produced.
type phaseResult struct {
	OK       int64         // 200 responses
	Non200   int64         // other statuses
	Errs     int64         // transport errors (connect, reset, timeout)
	Elapsed  time.Duration // from the first request to the last response
	RPS      float64       // OK / Elapsed
	P50, P99 time.Duration // of the 200 responses
	// Refreshes counts responses that re-issued the session cookie (the
	// Go generator adopts them, as a browser would).
	Refreshes int64
	// ProxyCPU is the CPU time the proxy process used in the window, and
	// CPUPerReq that divided by the requests answered (0 when unknown).
	ProxyCPU  time.Duration
	CPUPerReq time.Duration
	// GenCPU is the load generator's CPU time (the harness process, or
	// wrk), and Others the average number of CPUs kept busy in the window
	// by processes other than the generator, the upstream and the proxy
	// measured (-1 when unknown): the noise the machine added.
	GenCPU time.Duration
	Others float64
}

// Errors is every request that did not get a 200.
func (r phaseResult) Errors() int64 { return r.Non200 + r.Errs }

// cookieBox holds the Cookie header the generator sends; a Set-Cookie of
// the session cookie in any response replaces it for later requests.
type cookieBox struct {
	name string
	v    atomic.Pointer[string]
}

func newCookieBox(name, value string) *cookieBox {
	b := &cookieBox{name: name}
	if name != "" {
		h := name + "=" + value
		b.v.Store(&h)
	}
	return b
}

func (b *cookieBox) header() string {
	if b == nil {
		return ""
	}
	if p := b.v.Load(); p != nil {
		return *p
	}
	return ""
}

// adopt takes a re-issued session cookie from resp, if there is one.
func (b *cookieBox) adopt(resp *http.Response) bool {
	if b == nil || b.name == "" {
		return false
	}
	for _, c := range resp.Cookies() {
		if c.Name == b.name && c.Value != "" && c.MaxAge >= 0 {
			h := c.Name + "=" + c.Value
			b.v.Store(&h)
			return true
		}
	}
	return false
}

// runGo drives url with conc keep-alive connections, each a goroutine
// sending GET after GET until d has passed. Only 200 responses count and
// have their latency (request written to body read) recorded.
func runGo(ctx context.Context, url string, cookie *cookieBox, conc int, d time.Duration) (phaseResult, error) {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * conc,
		MaxIdleConnsPerHost: conc,
		MaxConnsPerHost:     conc,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		Timeout:   10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	// Hard stop a little after the window, whatever happens.
	ctx, cancel := context.WithTimeout(ctx, d+15*time.Second)
	defer cancel()

	type workerOut struct {
		lat                    []time.Duration
		ok, non200, errs, refr int64
	}
	outs := make([]workerOut, conc)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	var last atomic.Int64 // unix nanos of the latest response
	for i := range conc {
		wg.Add(1)
		go func(o *workerOut) {
			defer wg.Done()
			o.lat = make([]time.Duration, 0, 1<<14)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			req.Header.Set("User-Agent", "gatehouse-bench")
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				if h := cookie.header(); h != "" {
					req.Header["Cookie"] = []string{h}
				}
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					o.errs++
					time.Sleep(time.Millisecond) // no hot loop on a refused connection
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				t1 := time.Now()
				last.Store(t1.UnixNano())
				switch {
				case err != nil:
					o.errs++
				case resp.StatusCode == http.StatusOK:
					o.ok++
					o.lat = append(o.lat, t1.Sub(t0))
				default:
					o.non200++
				}
				if _, ok := resp.Header["Set-Cookie"]; ok && cookie.adopt(resp) {
					o.refr++
				}
			}
		}(&outs[i])
	}
	wg.Wait()
	if err := ctx.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return phaseResult{}, err
	}
	var r phaseResult
	var all []time.Duration
	for _, o := range outs {
		r.OK += o.ok
		r.Non200 += o.non200
		r.Errs += o.errs
		r.Refreshes += o.refr
		all = append(all, o.lat...)
	}
	if l := last.Load(); l > 0 {
		r.Elapsed = time.Unix(0, l).Sub(start)
	} else {
		r.Elapsed = time.Since(start)
	}
	if r.Elapsed > 0 {
		r.RPS = float64(r.OK) / r.Elapsed.Seconds()
	}
	slices.Sort(all)
	r.P50 = percentile(all, 50)
	r.P99 = percentile(all, 99)
	return r, nil
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}
