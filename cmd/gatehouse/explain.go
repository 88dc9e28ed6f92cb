package main

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gatehouse-dev/gatehouse/internal/app"
	"github.com/gatehouse-dev/gatehouse/policy"
)

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func cmdExplain(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("explain", stderr)
	file := fs.String("c", "gatehouse.yaml", "policy file")
	rawURL := fs.String("url", "", "request URL, e.g. https://hr.example.com/admin (required)")
	method := fs.String("method", "GET", "request method")
	anonymous := fs.Bool("anonymous", false, "judge the request without any identity")
	aud := fs.String("audience", "", "the identity's audience (default: the route's first)")
	user := fs.String("user", "", "the identity's subject")
	provider := fs.String("provider", "", "the provider that authenticated the identity")
	email := fs.String("email", "", "the identity's email (treated as verified unless --email-unverified)")
	unverified := fs.Bool("email-unverified", false, "the email is not verified")
	acr := fs.String("acr", "", "authentication context class")
	authAge := fs.Duration("auth-age", 0, "time since the identity authenticated")
	var groups, roles, amr, scopes listFlag
	fs.Var(&groups, "groups", "IdP groups (comma-separated or repeated)")
	fs.Var(&roles, "roles", "roles to grant on top of those the policy derives")
	fs.Var(&amr, "amr", "authentication methods, e.g. pwd,otp")
	fs.Var(&scopes, "scopes", "token scopes (API audience)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *rawURL == "" {
		return usageError{"--url is required"}
	}
	u, err := url.Parse(*rawURL)
	if err != nil || u.Host == "" {
		return usageError{fmt.Sprintf("--url %q: give an absolute URL such as https://app.example.com/path", *rawURL)}
	}
	l, err := app.Load(*file)
	if err != nil {
		return err
	}
	pol := l.Policy
	now := time.Now()
	path, err := policy.NormalizePath(u.EscapedPath())
	if u.EscapedPath() == "" {
		path, err = "/", nil
	}
	fmt.Fprintf(stdout, "request   %s %s\n", strings.ToUpper(*method), *rawURL)
	if err != nil {
		fmt.Fprintf(stdout, "path      refused: %v\ndecision  DENY (400 Bad Request before matching)\n", err)
		return nil
	}
	fmt.Fprintf(stdout, "path      %s (normalized)\n", path)
	req := policy.Request{Host: u.Host, Path: path, Method: *method}
	route := pol.Match(req)
	if route != nil {
		pos := l.Config.Source.At(fmt.Sprintf("routes[%d]", route.Index))
		fmt.Fprintf(stdout, "route     %s (routes[%d], %s:%d)\n", route.Name, route.Index, l.Path, pos.Line)
	} else {
		fmt.Fprintf(stdout, "route     none\n")
	}

	var id *identity.Identity
	if !*anonymous && (*user != "" || *email != "" || len(groups) > 0 || len(roles) > 0 || len(scopes) > 0) {
		id = &identity.Identity{
			Subject: *user, Provider: *provider, Email: *email, EmailVerified: *email != "" && !*unverified,
			Groups: groups, AMR: amr, ACR: *acr, Scopes: scopes, Audience: identity.Audience(*aud),
		}
		if id.Subject == "" {
			id.Subject = "explain-user"
		}
		if *authAge > 0 {
			id.AuthTime = now.Add(-*authAge)
		} else {
			id.AuthTime = now
		}
		if id.Audience == "" && route != nil && len(route.Audiences) > 0 {
			id.Audience = route.Audiences[0]
		}
	}
	d := pol.DecideWithRoles(route, id, req, now, pol.RolesFromNames(roles))
	if d.Rule != nil {
		fmt.Fprintf(stdout, "rule      %s\n", d.Rule.Name)
	}
	if id != nil {
		fmt.Fprintf(stdout, "identity  sub=%s audience=%s", id.Subject, id.Audience)
		if id.Email != "" {
			fmt.Fprintf(stdout, " email=%s", id.Email)
		}
		if len(id.Groups) > 0 {
			fmt.Fprintf(stdout, " groups=%s", strings.Join(id.Groups, ","))
		}
		fmt.Fprintf(stdout, " roles=%s\n", strings.Join(pol.RoleNames(d.Roles), ","))
	} else {
		fmt.Fprintf(stdout, "identity  none (anonymous)\n")
	}
	fmt.Fprintf(stdout, "decision  %s (%s)\n", strings.ToUpper(d.Effect.String()), d.Reason)
	fmt.Fprintf(stdout, "why       %s\n", d.String())
	return nil
}
