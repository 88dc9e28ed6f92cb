package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is one server process started by the harness.
type child struct {
	name   string
	cmd    *exec.Cmd
	stderr *tailBuffer
	done   chan struct{}
	err    error // set before done is closed
}

// exited reports whether the process has ended, and how.
func (c *child) exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.err
	default:
		return false, nil
	}
}

// children owns every process the harness starts; stopAll ends them.
type children struct {
	mu   sync.Mutex
	list []*child
}

// start runs bin with args. stdout goes to out (nil: discarded); stderr is
// kept (its last few KiB) for error reports.
func (cs *children) start(name, bin string, args []string, out io.Writer) (*child, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdin = nil
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout = out
	tb := &tailBuffer{max: 8 << 10}
	cmd.Stderr = tb
	cmd.SysProcAttr = childSysProcAttr()
	// The children get the harness's environment minus proxy settings, so
	// that nothing they do can leave the machine through a configured proxy.
	cmd.Env = cleanEnv(os.Environ())
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, stderr: tb, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	cs.mu.Lock()
	cs.list = append(cs.list, c)
	cs.mu.Unlock()
	return c, nil
}

// stopAll sends SIGTERM to every child still running, waits up to grace
// for them to exit, then kills the rest. It is safe to call more than once.
func (cs *children) stopAll(grace time.Duration) {
	cs.mu.Lock()
	list := cs.list
	cs.list = nil
	cs.mu.Unlock()
	for _, c := range list {
		if ok, _ := c.exited(); !ok {
			_ = c.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.After(grace)
	for _, c := range list {
		select {
		case <-c.done:
		case <-deadline:
			for _, k := range list {
				if ok, _ := k.exited(); !ok {
					_ = k.cmd.Process.Kill()
				}
			}
			for _, k := range list {
				<-k.done
			}
			return
		}
	}
}

func cleanEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}

// checkLoopback refuses any host:port whose host is not a loopback IP
// (127.0.0.0/8, ::1) or "localhost". Every address the harness listens on
// or sends to passes through it.
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
		return fmt.Errorf("address %q is not loopback: the harness only talks to 127.0.0.0/8 or [::1]", hostport)
	}
	return nil
}

// waitReady polls url until it answers with status want, the child exits,
// ctx ends or timeout passes.
func waitReady(ctx context.Context, c *child, url string, want int, timeout time.Duration) error {
	client := newCheckClient()
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if ok, err := c.exited(); ok {
			return fmt.Errorf("%s exited before it was ready (%v)\n--- %s stderr ---\n%s", c.name, err, c.name, c.stderr)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready at %s after %v (last: %v)\n--- %s stderr ---\n%s", c.name, url, timeout, last, c.name, c.stderr)
}

// newCheckClient is a small client for readiness, sign-in and checks: no
// proxy from the environment, no redirects followed.
func newCheckClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext, DisableCompression: true},
		Timeout:   5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// cpuTime returns the user+system CPU time a process has used, read from
// /proc/PID/stat (all threads), or an error where /proc is not available.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// fields are counted after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')': state is field 3, so utime (14) and stime (15) are at
	// indexes 11 and 12.
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat format")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unexpected /proc stat format")
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return time.Duration(ut+st) * (time.Second / 100), nil
}

// busyCPU returns the CPU time all CPUs spent busy since boot, from
// /proc/stat: user, nice, system, irq and softirq, plus steal (time the
// hypervisor gave to other machines), but not idle or iowait.
func busyCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("unexpected /proc/stat format")
	}
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, errors.New("unexpected /proc/stat format")
		}
		busy += n
	}
	return time.Duration(busy) * (time.Second / 100), nil
}

// cpuSnapshot is the CPU time of the processes of one measured window.
type cpuSnapshot struct {
	ok                         bool
	busy, self, proxy, upstrem time.Duration
}

func takeCPU(proxyPID, upstreamPID int) cpuSnapshot {
	var s cpuSnapshot
	var e1, e2, e3, e4 error
	s.busy, e1 = busyCPU()
	s.self, e2 = cpuTime(os.Getpid())
	s.proxy, e3 = cpuTime(proxyPID)
	s.upstrem, e4 = cpuTime(upstreamPID)
	s.ok = e1 == nil && e2 == nil && e3 == nil && e4 == nil
	return s
}
