package bearer

import (
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"
	"unsafe"

	"github.com/gatehouse-dev/gatehouse/identity"
)

// cacheKey is SHA-256(salt || SHA-256(token)), where the salt is derived
// from the provider name and a per-cache random value: the cache never
// holds a token, and a result is never found under another provider's
// name (ATTACKS #9), even if two providers shared one cache.
type cacheKey [sha256.Size]byte

const cacheShards = 16

// cache remembers verified tokens. It is bounded (random eviction within
// a shard when full) and an entry is only returned before its expiry,
// which callers set no later than the token's exp, and while the
// generation it was verified under (the JWKS in use) is current.
type cache struct {
	salt     [sha256.Size]byte
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[cacheKey]cacheEntry
}

type cacheEntry struct {
	id      *identity.Identity // never handed out: Get returns a copy
	expires int64              // unix nanoseconds, exclusive
	gen     uint64
}

func newCache(provider string, size int) *cache {
	if size <= 0 {
		size = 1
	}
	c := &cache{perShard: (size + cacheShards - 1) / cacheShards}
	var nonce [16]byte
	rand.Read(nonce[:])
	c.salt = sha256.Sum256(append([]byte("gatehouse bearer cache\x00"+provider+"\x00"), nonce[:]...))
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]cacheEntry)
	}
	return c
}

// key hashes token for this cache.
func (c *cache) key(token string) cacheKey {
	var buf [2 * sha256.Size]byte
	// A read-only view of the token's bytes: converting would copy (and
	// allocate) up to max_token_size bytes on every request.
	th := sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
	copy(buf[:sha256.Size], c.salt[:])
	copy(buf[sha256.Size:], th[:])
	return sha256.Sum256(buf[:])
}

func (c *cache) shard(k cacheKey) *cacheShard { return &c.shards[k[0]%cacheShards] }

// get returns a copy of the identity cached under k, or nil when there is
// none, it has expired, or it was verified under another generation.
func (c *cache) get(k cacheKey, now time.Time, gen uint64) *identity.Identity {
	sh := c.shard(k)
	sh.mu.RLock()
	e, ok := sh.m[k]
	sh.mu.RUnlock()
	if !ok || now.UnixNano() >= e.expires || e.gen != gen {
		return nil
	}
	cp := *e.id
	return &cp
}

// put remembers id under k until expires. An entry already expired is not
// stored. When the shard is full, expired entries go first, then a random
// one (Go's map iteration order is randomized).
func (c *cache) put(k cacheKey, id *identity.Identity, expires, now time.Time, gen uint64) {
	if !now.Before(expires) {
		return
	}
	sh := c.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[k]; !ok && len(sh.m) >= c.perShard {
		n, evicted := 0, false
		var victim cacheKey
		for key, e := range sh.m {
			if now.UnixNano() >= e.expires || e.gen != gen {
				delete(sh.m, key)
				evicted = true
			} else if n == 0 {
				victim = key
			}
			if n++; n >= 8 {
				break
			}
		}
		if !evicted {
			delete(sh.m, victim)
		}
	}
	sh.m[k] = cacheEntry{id: id, expires: expires.UnixNano(), gen: gen}
}

// len returns the number of entries (tests).
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.RLock()
		n += len(c.shards[i].m)
		c.shards[i].mu.RUnlock()
	}
	return n
}
