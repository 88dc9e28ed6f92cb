package session

import (
	"net/http/httptest"
	"testing"

	"github.com/gatehouse-dev/gatehouse/identity"
	"github.com/gorilla/securecookie"
)

// BenchmarkLoad measures Load of a typical single-cookie session, the work
// done on every proxied request.
func BenchmarkLoad(b *testing.B) {
	benchLoad(b, testPayload(identity.Workforce), [][]byte{key1})
}

// BenchmarkLoadRotated measures Load when the cookie was written with the
// second key (one failed MAC check first).
func BenchmarkLoadRotated(b *testing.B) {
	benchLoadWith(b, testPayload(identity.Workforce), [][]byte{key1}, [][]byte{key2, key1})
}

// BenchmarkLoadChunked measures Load of a 3-cookie session (200 groups).
func BenchmarkLoadChunked(b *testing.B) {
	benchLoad(b, bigPayload(identity.Workforce, 200), [][]byte{key1})
}

func benchLoad(b *testing.B, p *Payload, keys [][]byte) { benchLoadWith(b, p, keys, keys) }

func benchLoadWith(b *testing.B, p *Payload, writeKeys, readKeys [][]byte) {
	w, _ := newTestStore(b, func(o *Options) { o.Keys = writeKeys })
	s, _ := newTestStore(b, func(o *Options) { o.Keys = readKeys })
	j := newJar()
	save(b, w, j, p)
	r := j.request()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := s.Load(r, identity.Workforce); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSave measures writing a typical session (once per Touch).
func BenchmarkSave(b *testing.B) {
	s, _ := newTestStore(b, nil)
	p := testPayload(identity.Workforce)
	r := newJar().request()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Save(httptest.NewRecorder(), r, p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeFloor measures securecookie alone (MAC, decryption, no
// deserialization) on the cookie BenchmarkLoad reads: the part of Load this
// package cannot make faster. Compare the two to see Load's own overhead.
func BenchmarkDecodeFloor(b *testing.B) {
	s, _ := newTestStore(b, nil)
	j := newJar()
	save(b, s, j, testPayload(identity.Workforce))
	name := s.CookieName(identity.Workforce)
	v := j.values[name]
	pairs, err := deriveKeys([][]byte{key1})
	if err != nil {
		b.Fatal(err)
	}
	c := securecookie.New(pairs[0], pairs[1]).SetSerializer(securecookie.NopEncoder{})
	b.ReportAllocs()
	for b.Loop() {
		var out []byte
		if err := c.Decode(name, v, &out); err != nil {
			b.Fatal(err)
		}
	}
}
