package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// runWrk drives url with wrk (github.com/wg/wrk, Debian package "wrk") for
// d, rounded up to whole seconds, and parses its report. wrk does not
// follow or distinguish redirects (3xx count as successes), so the harness
// checks before and after each window that the cookie still gets a 200.
func runWrk(ctx context.Context, wrk, url, cookieHeader string, conc, threads int, d time.Duration) (phaseResult, string, error) {
	secs := int((d + time.Second - 1) / time.Second)
	secs = max(secs, 1)
	threads = max(1, min(threads, conc))
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conc), "-d", strconv.Itoa(secs) + "s",
		"--timeout", "10s", "--latency", "-H", "User-Agent: gatehouse-bench"}
	if cookieHeader != "" {
		args = append(args, "-H", "Cookie: "+cookieHeader)
	}
	args = append(args, url)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, wrk, args...)
	cmd.Env = cleanEnv(cmd.Environ())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return phaseResult{}, string(out), fmt.Errorf("wrk: %v\n%s", err, out)
	}
	r, err := parseWrk(string(out))
	if ps := cmd.ProcessState; ps != nil {
		r.GenCPU = ps.UserTime() + ps.SystemTime()
	}
	return r, string(out), err
}

var (
	wrkTotalRe  = regexp.MustCompile(`(\d+) requests in ([\d.]+)(us|ms|s|m|h),`)
	wrkPctRe    = regexp.MustCompile(`(?m)^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$`)
	wrkNon2xxRe = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSockRe   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkRPSRe    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
)

// parseWrk reads the parts of wrk's --latency report the harness uses.
// Requests that got a status of 400 or more are subtracted from the
// successes; socket errors are counted as errors.
func parseWrk(out string) (phaseResult, error) {
	var r phaseResult
	m := wrkTotalRe.FindStringSubmatch(out)
	if m == nil || !wrkRPSRe.MatchString(out) {
		return r, fmt.Errorf("wrk: cannot find the request count in its output:\n%s", out)
	}
	total, _ := strconv.ParseInt(m[1], 10, 64)
	el, err := wrkDuration(m[2], m[3])
	if err != nil {
		return r, err
	}
	r.Elapsed = el
	if m := wrkNon2xxRe.FindStringSubmatch(out); m != nil {
		r.Non200, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkSockRe.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errs += n
		}
	}
	r.OK = total - r.Non200
	if r.Elapsed > 0 {
		r.RPS = float64(r.OK) / r.Elapsed.Seconds()
	}
	for _, m := range wrkPctRe.FindAllStringSubmatch(out, -1) {
		v, err := wrkDuration(m[2], m[3])
		if err != nil {
			return r, err
		}
		if m[1] == "50" {
			r.P50 = v
		} else {
			r.P99 = v
		}
	}
	if r.P50 == 0 || r.P99 == 0 {
		return r, fmt.Errorf("wrk: no latency distribution in its output (was --latency lost?):\n%s", out)
	}
	return r, nil
}

func wrkDuration(num, unit string) (time.Duration, error) {
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("wrk: bad number %q", num)
	}
	mult := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	return time.Duration(f * float64(mult)), nil
}

// wrkVersion returns wrk's first line ("wrk 4.1.0 [epoll] ...").
func wrkVersion(wrk string) string {
	out, _ := exec.Command(wrk, "--version").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	line, _, _ = strings.Cut(line, " Copyright")
	return strings.TrimSpace(line)
}
