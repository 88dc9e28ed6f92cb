package local

import (
	"context"
	"testing"
	"time"
)

// TestArgon2Timing measures one hash with the default parameters and logs
// it (go test -run Argon2Timing -v). It fails only if a hash takes absurdly
// long, which would make sign-in unusable.
func TestArgon2Timing(t *testing.T) {
	if testing.Short() {
		t.Skip("measures 64 MiB hashes")
	}
	h, err := newHasher(DefaultArgon2, 1)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := h.hash(context.Background(), "correct horse battery staple"); err != nil {
			t.Fatal(err)
		}
	}
	per := time.Since(start) / n
	t.Logf("argon2id m=%d KiB t=%d p=%d: %v per hash (mean of %d)", DefaultArgon2.MemoryKiB, DefaultArgon2.Iterations, DefaultArgon2.Parallelism, per, n)
	if per > 10*time.Second {
		t.Fatalf("one hash takes %v", per)
	}
}
