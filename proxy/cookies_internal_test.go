package proxy

import (
	"net/http"
	"testing"
)

func TestStripOwnCookies(t *testing.T) {
	cases := []struct {
		in   []string
		want []string // nil: header removed
	}{
		{[]string{"a=1; b=2"}, []string{"a=1; b=2"}},
		{[]string{"__Host-gatehouse-workforce=xyz; app=1"}, []string{"app=1"}},
		{[]string{"gatehouse-customer=1", "gatehouse-customer.1=2; theme=dark"}, []string{"theme=dark"}},
		{[]string{"__Host-gatehouse-t-login-abc=1"}, nil},
		{[]string{"__Secure-gatehouse-workforce=1;  x=y ;"}, []string{"x=y"}},
		{[]string{"mygatehouse-workforce=1"}, []string{"mygatehouse-workforce=1"}},
	}
	for _, tc := range cases {
		h := http.Header{"Cookie": tc.in}
		stripOwnCookies(h, "gatehouse-")
		got := h["Cookie"]
		if len(got) != len(tc.want) || (len(got) == 1 && got[0] != tc.want[0]) {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}
