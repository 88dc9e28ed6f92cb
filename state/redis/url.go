package redis

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// target is a parsed connection URL: which kind of client to build and
// with what, plus a form of the URL that is safe to print.
type target struct {
	kind    string // "single", "sentinel" or "cluster"
	single  *goredis.Options
	sentOpt *goredis.FailoverOptions
	cluster *goredis.ClusterOptions
	display string // scheme and hosts only: no credentials, no query
}

// parseURL understands the URL forms documented on [Open].
func parseURL(raw string) (*target, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, errors.New("state/redis: URL must start with redis://, rediss://, redis+sentinel:// or redis+cluster://")
	}
	scheme = strings.ToLower(scheme)
	switch scheme {
	case "redis", "rediss":
		o, err := goredis.ParseURL(raw)
		if err != nil {
			// go-redis errors may quote the URL; describe it ourselves.
			return nil, fmt.Errorf("state/redis: invalid %s URL for %s", scheme, displayOf(scheme, rest))
		}
		return &target{kind: "single", single: o, display: scheme + "://" + o.Addr + "/" + strconv.Itoa(o.DB)}, nil
	case "redis+sentinel", "redis+cluster":
	default:
		return nil, fmt.Errorf("state/redis: unsupported URL scheme %q (want redis, rediss, redis+sentinel or redis+cluster)", scheme)
	}

	a, err := splitAuthority(rest)
	if err != nil {
		return nil, fmt.Errorf("state/redis: %s URL for %s: %v", scheme, displayOf(scheme, rest), err)
	}
	display := scheme + "://" + strings.Join(a.hosts, ",")
	if scheme == "redis+cluster" {
		if a.path != "" {
			return nil, fmt.Errorf("state/redis: %s: a cluster URL takes no path (clusters have only database 0)", display)
		}
		return &target{kind: "cluster", display: display, cluster: &goredis.ClusterOptions{
			Addrs:    a.hosts,
			Username: a.user,
			Password: a.pass,
		}}, nil
	}

	// redis+sentinel://hosts/<master>[/<db>]
	master, dbPart, _ := strings.Cut(a.path, "/")
	if master == "" {
		return nil, fmt.Errorf("state/redis: %s: the path must name the master: /<master>/<db>", display)
	}
	db := 0
	if dbPart != "" {
		db, err = strconv.Atoi(dbPart)
		if err != nil || db < 0 {
			return nil, fmt.Errorf("state/redis: %s: invalid database number %q", display, dbPart)
		}
	}
	display += "/" + master + "/" + strconv.Itoa(db)
	return &target{kind: "sentinel", display: display, sentOpt: &goredis.FailoverOptions{
		MasterName:       master,
		SentinelAddrs:    a.hosts,
		Username:         a.user,
		Password:         a.pass,
		SentinelUsername: a.query.Get("sentinel_username"),
		SentinelPassword: a.query.Get("sentinel_password"),
		DB:               db,
	}}, nil
}

type authority struct {
	user, pass string
	hosts      []string
	path       string // without the leading '/'
	query      url.Values
}

// splitAuthority splits "[user:pass@]h1:p,h2:p[/path][?query]". url.Parse
// is not used because a list of hosts is not a valid URL host.
func splitAuthority(rest string) (*authority, error) {
	var a authority
	rest, rawQuery, _ := strings.Cut(rest, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, errors.New("invalid query")
	}
	for k := range q {
		if k != "sentinel_username" && k != "sentinel_password" {
			return nil, fmt.Errorf("unknown query parameter %q", k)
		}
	}
	a.query = q
	hostPart, path, _ := strings.Cut(rest, "/")
	a.path = strings.TrimSuffix(path, "/")
	if at := strings.LastIndexByte(hostPart, '@'); at >= 0 {
		info := hostPart[:at]
		hostPart = hostPart[at+1:]
		u, p, hasPass := strings.Cut(info, ":")
		if a.user, err = url.PathUnescape(u); err != nil {
			return nil, errors.New("invalid user name encoding")
		}
		if hasPass {
			if a.pass, err = url.PathUnescape(p); err != nil {
				return nil, errors.New("invalid password encoding")
			}
		}
	}
	for h := range strings.SplitSeq(hostPart, ",") {
		if h == "" {
			continue
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" {
			return nil, fmt.Errorf("host %q: want host:port", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("host %q: invalid port", h)
		}
		a.hosts = append(a.hosts, h)
	}
	if len(a.hosts) == 0 {
		return nil, errors.New("no hosts")
	}
	return &a, nil
}

// displayOf returns scheme://<hosts> for an unparsable URL, dropping any
// credentials and everything after the hosts.
func displayOf(scheme, rest string) string {
	hostPart, _, _ := strings.Cut(rest, "/")
	hostPart, _, _ = strings.Cut(hostPart, "?")
	if at := strings.LastIndexByte(hostPart, '@'); at >= 0 {
		hostPart = hostPart[at+1:]
	}
	return scheme + "://" + hostPart
}
