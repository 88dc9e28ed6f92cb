package session

import (
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// The session payload is encoded in a small binary format rather than JSON:
// decoding it runs on every proxied request, and encoding/json's reflection
// costs several times more than the cryptography. Layout, in order:
//
//	version   byte (wireVersion)
//	ID        string
//	Created   varint Unix seconds
//	LastSeen  varint Unix seconds
//	Identity  Subject, Issuer, Provider, Audience, Email: strings;
//	          EmailVerified: byte 0/1; Name: string; Groups, AMR: lists;
//	          ACR: string; AuthTime: time; Scopes: list; Extra: map
//	Tokens    map
//
// string = uvarint length, bytes; list = uvarint count, strings;
// map = uvarint count, (key string, value string) sorted by key;
// time = byte 0 (zero time) or 1, varint Unix seconds, uvarint nanoseconds.
//
// Every field of identity.Identity must appear here; TestWireCoversIdentity
// fails when a field is added to Identity and not to this encoding.
const wireVersion = 1

var errWire = errors.New("session: malformed payload")

// appendPayload appends the binary form of p to b.
func appendPayload(b []byte, p *Payload) []byte {
	id := &p.Identity
	b = append(b, wireVersion)
	b = appendString(b, p.ID)
	b = binary.AppendVarint(b, p.Created.Unix())
	b = binary.AppendVarint(b, p.LastSeen.Unix())
	b = appendString(b, id.Subject)
	b = appendString(b, id.Issuer)
	b = appendString(b, id.Provider)
	b = appendString(b, string(id.Audience))
	b = appendString(b, id.Email)
	b = appendBool(b, id.EmailVerified)
	b = appendString(b, id.Name)
	b = appendList(b, id.Groups)
	b = appendList(b, id.AMR)
	b = appendString(b, id.ACR)
	b = appendTime(b, id.AuthTime)
	b = appendList(b, id.Scopes)
	b = appendMap(b, id.Extra)
	b = appendMap(b, p.Tokens)
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendList(b []byte, l []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(l)))
	for _, s := range l {
		b = appendString(b, s)
	}
	return b
}

func appendMap(b []byte, m map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b = appendString(b, k)
		b = appendString(b, m[k])
	}
	return b
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// wireReader decodes the binary form. All strings are substrings of one
// copy of the input, so decoding allocates once for all of them. The first
// error sticks; later reads return zero values.
type wireReader struct {
	s   string
	err error
}

// decodePayload parses b into p. It never panics on malformed input.
func decodePayload(b []byte, p *Payload) error {
	if len(b) == 0 || b[0] != wireVersion {
		return errWire
	}
	r := &wireReader{s: string(b[1:])}
	var id identity.Identity
	pid := r.string()
	created := r.varint()
	lastSeen := r.varint()
	id.Subject = r.string()
	id.Issuer = r.string()
	id.Provider = r.string()
	id.Audience = identity.Audience(r.string())
	id.Email = r.string()
	id.EmailVerified = r.bool()
	id.Name = r.string()
	id.Groups = r.list()
	id.AMR = r.list()
	id.ACR = r.string()
	id.AuthTime = r.time()
	id.Scopes = r.list()
	id.Extra = r.smap()
	tokens := r.smap()
	if r.err == nil && r.s != "" {
		r.err = errWire // trailing bytes
	}
	if r.err != nil {
		return r.err
	}
	*p = Payload{
		ID:       pid,
		Identity: id,
		Created:  time.Unix(created, 0).UTC(),
		LastSeen: time.Unix(lastSeen, 0).UTC(),
		Tokens:   tokens,
	}
	return nil
}

func (r *wireReader) fail() { r.err, r.s = errWire, "" }

func (r *wireReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	var v uint64
	var shift uint
	for i := 0; i < len(r.s) && i < binary.MaxVarintLen64; i++ {
		c := r.s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break // overflow
			}
			r.s = r.s[i+1:]
			return v | uint64(c)<<shift
		}
		v |= uint64(c&0x7f) << shift
		shift += 7
	}
	r.fail()
	return 0
}

func (r *wireReader) varint() int64 {
	u := r.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

// count reads a length or element count and checks it against the bytes
// left (every element takes at least one byte), bounding allocations.
func (r *wireReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.s)) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *wireReader) string() string {
	n := r.count()
	s := r.s[:n]
	r.s = r.s[n:]
	return s
}

func (r *wireReader) bool() bool {
	if r.err != nil || r.s == "" || r.s[0] > 1 {
		r.fail()
		return false
	}
	v := r.s[0] == 1
	r.s = r.s[1:]
	return v
}

func (r *wireReader) list() []string {
	n := r.count()
	if n == 0 {
		return nil
	}
	l := make([]string, n)
	for i := range l {
		l[i] = r.string()
	}
	return l
}

func (r *wireReader) smap() map[string]string {
	n := r.count()
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	for range n {
		k := r.string()
		m[k] = r.string()
	}
	return m
}

func (r *wireReader) time() time.Time {
	if r.err != nil || r.s == "" || r.s[0] > 1 {
		r.fail()
		return time.Time{}
	}
	set := r.s[0] == 1
	r.s = r.s[1:]
	if !set {
		return time.Time{}
	}
	sec := r.varint()
	nsec := r.uvarint()
	if nsec >= uint64(time.Second) {
		r.fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}
