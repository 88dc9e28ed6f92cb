package main

import (
	"testing"
	"time"
)

const wrkSample = `Running 5s test @ http://127.0.0.1:40111/
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.52ms  823.11us  21.30ms   87.15%
    Req/Sec    10.71k   612.33    11.90k    71.00%
  Latency Distribution
     50%    1.35ms
     75%    1.80ms
     90%    2.41ms
     99%    4.87ms
  106617 requests in 5.00s, 27.25MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 17
Requests/sec:  21317.04
Transfer/sec:      5.45MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkSample)
	if err != nil {
		t.Fatal(err)
	}
	if r.OK != 106600 || r.Non200 != 17 || r.Errs != 3 {
		t.Errorf("ok %d non200 %d errs %d", r.OK, r.Non200, r.Errs)
	}
	if r.Elapsed != 5*time.Second || r.P50 != 1350*time.Microsecond || r.P99 != 4870*time.Microsecond {
		t.Errorf("elapsed %v p50 %v p99 %v", r.Elapsed, r.P50, r.P99)
	}
	if r.RPS < 21319 || r.RPS > 21321 {
		t.Errorf("rps %v", r.RPS)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("parsed an error report")
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, a := range []string{"127.0.0.1:80", "127.1.2.3:0", "[::1]:8080", "localhost:1"} {
		if err := checkLoopback(a); err != nil {
			t.Errorf("%s refused: %v", a, err)
		}
	}
	for _, a := range []string{"10.0.0.1:80", "192.168.1.1:80", "0.0.0.0:80", "[::]:80", "example.com:80", ":80", "8.8.8.8:53"} {
		if err := checkLoopback(a); err == nil {
			t.Errorf("%s accepted", a)
		}
	}
}

func TestPercentile(t *testing.T) {
	var v []time.Duration
	for i := 1; i <= 100; i++ {
		v = append(v, time.Duration(i))
	}
	if p := percentile(v, 50); p != 50 {
		t.Errorf("p50 %v", p)
	}
	if p := percentile(v, 99); p != 99 {
		t.Errorf("p99 %v", p)
	}
	if p := percentile(v[:1], 99); p != 1 {
		t.Errorf("p99 of one %v", p)
	}
}

func TestConfigBounds(t *testing.T) {
	ok := config{duration: 5 * time.Second, warmup: 2 * time.Second, rounds: 3, conc: 32, maxTotal: 5 * time.Minute, host: "127.0.0.1", path: "/"}
	if err := ok.check(); err != nil {
		t.Fatal(err)
	}
	long := ok
	long.duration = time.Minute
	if long.check() == nil {
		t.Error("a run longer than -max-total was accepted")
	}
	remote := ok
	remote.host = "10.1.2.3"
	if remote.check() == nil {
		t.Error("a non-loopback -host was accepted")
	}
}
