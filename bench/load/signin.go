package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
)

// signIn walks the static provider's sign-in the way a browser does and
// returns the value of the session cookie:
//
//	GET  /            -> 302 /.gatehouse/login?audience=workforce&rd=/
//	GET  /login...    -> 302 /.gatehouse/static/<provider>?state=S (+ attempt cookie)
//	POST /callback/<provider> state=S user=<sub> -> 303 + session cookie
func signIn(ctx context.Context, base, path, provider, user, cookieName string) (string, error) {
	jar, _ := cookiejar.New(nil)
	c := newCheckClient()
	c.Jar = jar
	defer c.CloseIdleConnections()
	baseURL, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	if err := checkLoopback(baseURL.Host); err != nil {
		return "", err
	}
	step := func(method, target string, form url.Values, want int) (string, error) {
		u, err := baseURL.Parse(target)
		if err != nil {
			return "", err
		}
		if u.Host != baseURL.Host {
			return "", fmt.Errorf("sign-in: %s %s redirected off the gateway to %s", method, target, u)
		}
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
		if err != nil {
			return "", err
		}
		req.Header.Set("Accept", "text/html")
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", base)
		}
		resp, err := c.Do(req)
		if err != nil {
			return "", fmt.Errorf("sign-in: %s %s: %w", method, u.Path, err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		if resp.StatusCode != want {
			return "", fmt.Errorf("sign-in: %s %s: status %d, want %d: %.300s", method, u.Path, resp.StatusCode, want, b)
		}
		return resp.Header.Get("Location"), nil
	}

	loc, err := step(http.MethodGet, path, nil, http.StatusFound)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(loc, "/.gatehouse/login?") {
		return "", fmt.Errorf("sign-in: unauthenticated request redirected to %q, want /.gatehouse/login?...", loc)
	}
	loc, err = step(http.MethodGet, loc, nil, http.StatusFound)
	if err != nil {
		return "", err
	}
	picker, err := url.Parse(loc)
	if err != nil || picker.Path != "/.gatehouse/static/"+provider || picker.Query().Get("state") == "" {
		return "", fmt.Errorf("sign-in: login redirected to %q, want /.gatehouse/static/%s?state=...", loc, provider)
	}
	state := picker.Query().Get("state")
	form := url.Values{"state": {state}, "user": {user}}
	if _, err := step(http.MethodPost, "/.gatehouse/callback/"+provider, form, http.StatusSeeOther); err != nil {
		return "", err
	}
	for _, ck := range jar.Cookies(baseURL) {
		if ck.Name == cookieName {
			return ck.Value, nil
		}
	}
	var names []string
	for _, ck := range jar.Cookies(baseURL) {
		names = append(names, ck.Name)
	}
	return "", fmt.Errorf("sign-in: no %s cookie after the callback (cookies: %v); is session.insecure_cookies set?", cookieName, names)
}

// get performs one GET with an optional Cookie header and returns the
// status, Location and body (first 64 KiB).
func get(ctx context.Context, c *http.Client, u, cookieHeader string) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Accept", "text/html")
	if cookieHeader != "" {
		req.Header.Set("Cookie", cookieHeader)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Header.Get("Location"), string(b), err
}
