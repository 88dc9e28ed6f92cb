package session

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// TestWireCoversIdentity fills every field of identity.Identity with a
// non-zero value and checks that the binary encoding round-trips it. It fails
// when a field is added to Identity and forgotten in wire.go.
func TestWireCoversIdentity(t *testing.T) {
	var id identity.Identity
	v := reflect.ValueOf(&id).Elem()
	for i := range v.NumField() {
		f, sf := v.Field(i), v.Type().Field(i)
		switch {
		case f.Kind() == reflect.String:
			f.SetString("value of " + sf.Name)
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.Type() == reflect.TypeFor[[]string]():
			f.Set(reflect.ValueOf([]string{sf.Name + "-1", sf.Name + "-2"}))
		case f.Type() == reflect.TypeFor[map[string]string]():
			f.Set(reflect.ValueOf(map[string]string{sf.Name: "v", "b": "", "a": "x"}))
		case f.Type() == reflect.TypeFor[time.Time]():
			f.Set(reflect.ValueOf(time.Date(2024, 2, 29, 23, 59, 58, 123456789, time.UTC)))
		default:
			t.Fatalf("Identity.%s has type %v, unknown to this test and to wire.go: add it to both", sf.Name, f.Type())
		}
	}
	id.Audience = identity.Workforce
	p := &Payload{
		ID:       NewID(),
		Identity: id,
		Created:  t0,
		LastSeen: t0.Add(time.Minute),
		Tokens:   map[string]string{"refresh": "r", "id": "i"},
	}
	b, err := marshalPayload(p)
	if err != nil {
		t.Fatal(err)
	}
	var got Payload
	if err := unmarshalPayload(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, p) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, *p)
	}
	// Every truncation fails cleanly.
	for n := range len(b) {
		if err := unmarshalPayload(b[:n], &got); err == nil {
			t.Fatalf("truncated to %d of %d bytes: decoded", n, len(b))
		}
	}
	// Trailing bytes and unknown versions are refused.
	if err := unmarshalPayload(append(b[:len(b):len(b)], 0), &got); err == nil {
		t.Fatal("trailing byte accepted")
	}
	b[0] = wireVersion + 1
	if err := unmarshalPayload(b, &got); err == nil {
		t.Fatal("unknown version accepted")
	}
}

func TestWireTimes(t *testing.T) {
	for _, at := range []time.Time{
		{},
		time.Unix(0, 0).UTC(),
		time.Unix(-62135596800, 0).UTC(), // year 1, not zero in Unix terms but IsZero
		time.Unix(-1, 999999999).UTC(),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
	} {
		p := &Payload{ID: "x", Identity: identity.Identity{AuthTime: at}, Created: t0, LastSeen: t0}
		b, _ := marshalPayload(p)
		var got Payload
		if err := unmarshalPayload(b, &got); err != nil {
			t.Fatalf("%v: %v", at, err)
		}
		if !got.Identity.AuthTime.Equal(at) || got.Identity.AuthTime.IsZero() != at.IsZero() {
			t.Errorf("AuthTime %v came back as %v", at, got.Identity.AuthTime)
		}
	}
}

// FuzzDecodePayload checks that the binary decoder never panics and that
// whatever it accepts re-encodes to something it decodes identically. (The
// MAC keeps attacker bytes away from the decoder; this is defence in depth.)
func FuzzDecodePayload(f *testing.F) {
	b, _ := marshalPayload(testPayload(identity.Customer))
	f.Add(b)
	f.Add([]byte{wireVersion})
	f.Add([]byte{wireVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Payload
		if err := unmarshalPayload(b, &p); err != nil {
			return
		}
		again, _ := marshalPayload(&p)
		var q Payload
		if err := unmarshalPayload(again, &q); err != nil {
			t.Fatalf("re-encoding of accepted input fails: %v", err)
		}
		if !reflect.DeepEqual(fmt.Sprint(p), fmt.Sprint(q)) {
			t.Fatalf("re-encoding changed the payload:\n%+v\n%+v", p, q)
		}
	})
}
