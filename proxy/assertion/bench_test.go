package assertion

import (
	"crypto"
	"testing"
)

func benchKeys(b *testing.B) []struct {
	name string
	key  crypto.Signer
} {
	return []struct {
		name string
		key  crypto.Signer
	}{{"ES256", newECKey(b)}, {"EdDSA", newEdKey(b)}}
}

func BenchmarkSign(b *testing.B) {
	for _, k := range benchKeys(b) {
		b.Run(k.name, func(b *testing.B) {
			s := newSigner(b, nil, Key{Signer: k.key})
			claims := fullClaims()
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.Sign(claims); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, k := range benchKeys(b) {
		b.Run(k.name, func(b *testing.B) {
			s := newSigner(b, nil, Key{Signer: k.key})
			v := newVerifier(b, s, nil)
			tok, _, err := s.Sign(fullClaims())
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(tok, "wiki"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
