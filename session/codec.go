package session

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gorilla/securecookie"
)

// MinKeyLen is the minimum length in bytes of each secret in Options.Keys.
const MinKeyLen = 32

// HKDF info labels. Changing a label invalidates every cookie written under
// the old one, which is the intended way to retire an incompatible format.
const (
	hashKeyInfo  = "gatehouse session v1 hmac-sha256"
	blockKeyInfo = "gatehouse session v1 aes-256"
)

// deriveKeys expands each secret into a (hash key, block key) pair with
// HKDF-SHA256, in the order securecookie.CodecsFromPairs expects.
func deriveKeys(secrets [][]byte) ([][]byte, error) {
	if len(secrets) == 0 {
		return nil, errors.New("session: no keys")
	}
	pairs := make([][]byte, 0, 2*len(secrets))
	for i, k := range secrets {
		if len(k) < MinKeyLen {
			return nil, fmt.Errorf("session: key %d is %d bytes, want at least %d", i, len(k), MinKeyLen)
		}
		hk, err := hkdf.Key(sha256.New, k, nil, hashKeyInfo, 32)
		if err != nil {
			return nil, fmt.Errorf("session: derive key %d: %w", i, err)
		}
		bk, err := hkdf.Key(sha256.New, k, nil, blockKeyInfo, 32)
		if err != nil {
			return nil, fmt.Errorf("session: derive key %d: %w", i, err)
		}
		pairs = append(pairs, hk, bk)
	}
	return pairs, nil
}

// PayloadKey is the only key of sessions.Session.Values that [GorillaStore]
// understands; its value is a *Payload.
const PayloadKey = "gatehouse"

// transientEnvelope is the JSON form of a transient cookie: the caller's
// value and its expiry (Unix seconds).
type transientEnvelope struct {
	Exp   int64           `json:"e"`
	Value json.RawMessage `json:"v"`
}

// serializer is the securecookie.Serializer used instead of gob. It encodes
// session payloads in the binary form of wire.go and transient envelopes as
// JSON, and refuses anything else.
type serializer struct{}

var errUnsupported = errors.New("session: unsupported value for cookie serializer")

// Serialize implements securecookie.Serializer.
func (serializer) Serialize(src any) ([]byte, error) {
	switch v := src.(type) {
	case *Payload:
		return marshalPayload(v)
	case map[any]any: // sessions.Session.Values
		p, ok := v[PayloadKey].(*Payload)
		if !ok || p == nil || len(v) != 1 {
			return nil, fmt.Errorf("%w: Values must hold exactly one *Payload under PayloadKey", errUnsupported)
		}
		return marshalPayload(p)
	case *transientEnvelope:
		return json.Marshal(v)
	}
	return nil, fmt.Errorf("%w: %T", errUnsupported, src)
}

// Deserialize implements securecookie.Serializer.
func (serializer) Deserialize(src []byte, dst any) error {
	switch d := dst.(type) {
	case *Payload:
		return unmarshalPayload(src, d)
	case *map[any]any: // sessions.Session.Values
		p := new(Payload)
		if err := unmarshalPayload(src, p); err != nil {
			return err
		}
		if *d == nil {
			*d = make(map[any]any, 1)
		}
		(*d)[PayloadKey] = p
		return nil
	case *transientEnvelope:
		return json.Unmarshal(src, d)
	}
	return fmt.Errorf("%w: %T", errUnsupported, dst)
}

func marshalPayload(p *Payload) ([]byte, error) {
	return appendPayload(make([]byte, 0, 512), p), nil
}

func unmarshalPayload(b []byte, p *Payload) error {
	return decodePayload(b, p)
}

// newCodecs builds the securecookie codecs for the derived key pairs: the
// first pair encodes, all pairs decode. maxLength bounds decoded values;
// the encoder has no bound so that oversized values can be reported as
// ErrTooLarge by the caller.
func newCodecs(pairs [][]byte, maxAge time.Duration, maxLength int) (enc securecookie.Codec, dec []securecookie.Codec) {
	ageSecs := ceilSeconds(maxAge)
	setup := func(c securecookie.Codec, maxLen int) securecookie.Codec {
		sc := c.(*securecookie.SecureCookie)
		sc.SetSerializer(serializer{})
		sc.MaxAge(ageSecs)
		sc.MaxLength(maxLen)
		return sc
	}
	enc = setup(securecookie.CodecsFromPairs(pairs[0], pairs[1])[0], 0)
	dec = securecookie.CodecsFromPairs(pairs...)
	for i, c := range dec {
		dec[i] = setup(c, maxLength)
	}
	return enc, dec
}

// decodeError maps a securecookie decoding failure to ErrExpired (the
// codec's own timestamp check, a backstop for the payload's lifetime) or
// ErrInvalid (everything else), keeping the original error for logs.
func decodeError(err error) error {
	if isTimestampExpired(err) {
		return fmt.Errorf("%w: %v", ErrExpired, err)
	}
	return fmt.Errorf("%w: %v", ErrInvalid, err)
}

// securecookie does not export its expired-timestamp error; its message is
// stable in v1.1.2 and a test pins it.
const expiredTimestampMsg = "securecookie: expired timestamp"

func isTimestampExpired(err error) bool {
	var multi securecookie.MultiError
	if errors.As(err, &multi) {
		for _, e := range multi {
			if e != nil && e.Error() == expiredTimestampMsg {
				return true
			}
		}
		return false
	}
	return err != nil && err.Error() == expiredTimestampMsg
}
