package bearer

import (
	"context"
	"testing"
)

// BenchmarkJWTCached is a repeated token: a hash and a map lookup.
func BenchmarkJWTCached(b *testing.B) {
	p, j, _ := jwtSetup(b)
	r := bearerReq(token(b, kRS, claims(p, nil)))
	ctx := context.Background()
	if _, err := j.Authenticate(ctx, r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if id, err := j.Authenticate(ctx, r); err != nil || id == nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJWTCachedParallel(b *testing.B) {
	p, j, _ := jwtSetup(b)
	r := bearerReq(token(b, kRS, claims(p, nil)))
	ctx := context.Background()
	if _, err := j.Authenticate(ctx, r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if id, err := j.Authenticate(ctx, r); err != nil || id == nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkJWTVerify is the first sight of a token: parse, signature,
// claims and identity, without the cache.
func BenchmarkJWTVerify(b *testing.B) {
	p, j, clock := jwtSetup(b)
	for _, k := range []testKey{kRS, kPS, kES, kED} {
		b.Run(k.alg, func(b *testing.B) {
			tok := token(b, k, claims(p, nil))
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, _, _, err := j.verify(ctx, tok, clock.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkJWTRefusedEarly is a malformed or oversized token: refused
// before any decoding.
func BenchmarkJWTRefusedEarly(b *testing.B) {
	_, j, _ := jwtSetup(b)
	r := bearerReq("a.b.c.d.e.f.g.h")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := j.Authenticate(ctx, r); err == nil {
			b.Fatal("accepted")
		}
	}
}

func BenchmarkIntrospectionCached(b *testing.B) {
	as := newAuthServer(b)
	clock := newClock()
	p := newIntrospectionFor(b, "opaque", introspectionConfig(as), clock)
	as.set("bench-token", active(nil))
	r := bearerReq("bench-token")
	ctx := context.Background()
	if _, err := p.Authenticate(ctx, r); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if id, err := p.Authenticate(ctx, r); err != nil || id == nil {
			b.Fatal(err)
		}
	}
	if as.calls.Load() != 1 {
		b.Fatalf("%d introspection calls", as.calls.Load())
	}
}
