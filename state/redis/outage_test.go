package redis_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/state"
	"github.com/gatehouse-dev/gatehouse/state/redis"
	"github.com/gatehouse-dev/gatehouse/state/redis/redistest"
)

const redisServerBin = "/usr/bin/redis-server"

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// hangingListener accepts connections and never answers.
func hangingListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// server is a private redis-server process.
type server struct {
	port string
	cmd  *exec.Cmd
	log  bytes.Buffer
}

func startServer(t *testing.T, port string) *server {
	t.Helper()
	s := &server{port: port}
	s.cmd = exec.Command(redisServerBin,
		"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--protected-mode", "yes")
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	t.Cleanup(s.stop)
	// Wait until it accepts connections.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on port %s did not start: %v\n%s", port, err, s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the process this test started (only that one) and reaps it.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // in case it was paused
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// ops runs every kind of operation once and returns the errors by name.
func ops(ctx context.Context, st *redis.Store) map[string]error {
	errs := map[string]error{}
	_, errs["Claim"] = st.Once().Claim(ctx, "k", time.Now().Add(time.Minute))
	errs["Revoke"] = st.Revocations().Revoke(ctx, "sid:k", time.Now(), time.Minute)
	_, errs["RevokedAt"] = st.Revocations().RevokedAt(ctx, "sid:k", "sub:k")
	_, _, errs["Allow"] = st.Limiter().Allow(ctx, "k", 100, time.Minute)
	errs["Set"] = st.Sessions().Set(ctx, "k", []byte("v"), time.Minute)
	_, errs["Get"] = st.Sessions().Get(ctx, "k")
	errs["Delete"] = st.Sessions().Delete(ctx, "k")
	errs["Ping"] = st.Ping(ctx)
	return errs
}

func TestOutage(t *testing.T) {
	if _, err := os.Stat(redisServerBin); err != nil {
		redistest.SkipOrFail(t, "the Redis outage test needs "+redisServerBin)
	}
	port := freePort(t)
	srv := startServer(t, port)
	const timeout = 250 * time.Millisecond
	st, err := redis.Open(context.Background(), "redis://127.0.0.1:"+port+"/0", redis.Options{KeyPrefix: "outage:", Timeout: timeout})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer st.Close()
	for op, err := range ops(t.Context(), st) {
		if err != nil {
			t.Fatalf("%s before the outage: %v", op, err)
		}
	}

	check := func(phase string) {
		t.Helper()
		for op, err := range timedOps(t, st, timeout) {
			if !errors.Is(err, state.ErrUnavailable) {
				t.Errorf("%s: %s = %v, want an error matching state.ErrUnavailable", phase, op, err)
			}
		}
	}

	// A paused server: connections stay open but nothing answers.
	if err := srv.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	check("paused server")
	if err := srv.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}

	// A dead server: connections are refused.
	srv.stop()
	check("stopped server")

	// Back on the same port: the same Store recovers by itself.
	startServer(t, port)
	deadline := time.Now().Add(5 * time.Second)
	for st.Ping(t.Context()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the Store did not reconnect within 5s after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for op, err := range ops(t.Context(), st) {
		if err != nil {
			t.Errorf("%s after Redis came back: %v", op, err)
		}
	}
	if ok, err := st.Once().Claim(t.Context(), "after", time.Now().Add(time.Minute)); !ok || err != nil {
		t.Errorf("Claim after recovery = %v, %v", ok, err)
	}
}

// timedOps runs ops, checking that each returns within about timeout.
func timedOps(t *testing.T, st *redis.Store, timeout time.Duration) map[string]error {
	t.Helper()
	errs := map[string]error{}
	for op, f := range map[string]func(ctx context.Context) error{
		"Claim": func(ctx context.Context) error {
			_, err := st.Once().Claim(ctx, "k", time.Now().Add(time.Minute))
			return err
		},
		"Revoke": func(ctx context.Context) error {
			return st.Revocations().Revoke(ctx, "sid:k", time.Now(), time.Minute)
		},
		"RevokedAt": func(ctx context.Context) error {
			_, err := st.Revocations().RevokedAt(ctx, "sid:k", "sub:k")
			return err
		},
		"Allow": func(ctx context.Context) error {
			_, _, err := st.Limiter().Allow(ctx, "k", 100, time.Minute)
			return err
		},
		"Set": func(ctx context.Context) error { return st.Sessions().Set(ctx, "k", []byte("v"), time.Minute) },
		"Get": func(ctx context.Context) error {
			_, err := st.Sessions().Get(ctx, "k")
			return err
		},
		"Delete": func(ctx context.Context) error { return st.Sessions().Delete(ctx, "k") },
		"Ping":   func(ctx context.Context) error { return st.Ping(ctx) },
	} {
		start := time.Now()
		err := func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("panic: %v", p)
				}
			}()
			return f(context.Background())
		}()
		if d := time.Since(start); d > timeout+500*time.Millisecond {
			t.Errorf("%s took %v with a %v timeout", op, d, timeout)
		}
		if err != nil && bytes.Contains([]byte(err.Error()), []byte("panic")) {
			t.Errorf("%s panicked: %v", op, err)
		}
		errs[op] = err
	}
	return errs
}
