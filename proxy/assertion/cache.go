package assertion

import (
	"hash/maphash"
	"sync"
	"time"
)

// DefaultCacheEntries is the capacity NewCache uses when given a
// non-positive maxEntries.
const DefaultCacheEntries = 16384

// minShardEntries keeps shards big enough that splitting the capacity
// between them wastes little of it.
const minShardEntries = 64

// maxShards bounds lock striping; beyond this, contention is not the cost.
const maxShards = 64

// Cache reuses signed assertions so that the request hot path is a map
// lookup rather than a signature. It holds at most a fixed number of
// entries and never returns a token with less than a quarter of the
// Signer's TTL left. It is safe for concurrent use.
//
// The cache is split into shards, each a map guarded by a read-write mutex
// plus a list in insertion order. Because every entry has the same
// lifetime, insertion order is also expiry order: the front of the list is
// both the first entry to go stale and the oldest, so eviction (stale
// entries first, then the oldest) is O(1).
type Cache struct {
	signer       *Signer
	now          func() time.Time
	minRemaining int64 // nanoseconds
	seed         maphash.Seed
	shards       []cacheShard
	mask         uint64
}

type cacheShard struct {
	mu         sync.RWMutex
	entries    map[string]*cacheEntry
	head, tail *cacheEntry // oldest first
	max        int
	_          [64]byte // keep neighbouring shards' locks off one cache line
}

type cacheEntry struct {
	key        string
	token      string
	refreshAt  int64 // Unix nanoseconds from which token is no longer served
	prev, next *cacheEntry
}

// NewCache returns a Cache of signed assertions from s holding at most
// maxEntries tokens (DefaultCacheEntries when maxEntries <= 0). A token is
// served until a quarter of the Signer's TTL is left before its expiry,
// then replaced by a fresh one on the next Get. The cache reads the clock
// of s. NewCache panics if s is nil.
func NewCache(s *Signer, maxEntries int) *Cache {
	if s == nil {
		panic("assertion: NewCache with nil Signer")
	}
	if maxEntries <= 0 {
		maxEntries = DefaultCacheEntries
	}
	n := 1
	for n < maxShards && maxEntries/(n*2) >= minShardEntries {
		n *= 2
	}
	c := &Cache{
		signer:       s,
		now:          s.now,
		minRemaining: int64(s.ttl / 4),
		seed:         maphash.MakeSeed(),
		shards:       make([]cacheShard, n),
		mask:         uint64(n - 1),
	}
	base, extra := maxEntries/n, maxEntries%n
	for i := range c.shards {
		sh := &c.shards[i]
		sh.max = base
		if i < extra {
			sh.max++
		}
		sh.entries = make(map[string]*cacheEntry)
	}
	return c
}

func (c *Cache) shard(key string) *cacheShard {
	if c.mask == 0 {
		return &c.shards[0]
	}
	return &c.shards[maphash.String(c.seed, key)&c.mask]
}

// Get returns the cached assertion for key if it has at least a quarter of
// the TTL left; otherwise it signs build(), caches the result under key and
// returns it. build is called only on a miss, and a signing error is
// returned without caching anything. The caller chooses key, which must
// identify everything build puts in the claims (for example session ID +
// "\x00" + route name). Concurrent misses on one key may each sign; the
// last to finish stays cached.
func (c *Cache) Get(key string, build func() Claims) (string, error) {
	sh := c.shard(key)
	now := c.now().UnixNano()
	sh.mu.RLock()
	if e := sh.entries[key]; e != nil && now < e.refreshAt {
		tok := e.token
		sh.mu.RUnlock()
		return tok, nil
	}
	sh.mu.RUnlock()

	tok, exp, err := c.signer.Sign(build())
	if err != nil {
		return "", err
	}
	sh.put(key, tok, exp.UnixNano()-c.minRemaining, now)
	return tok, nil
}

// Len returns the number of entries in the cache, stale ones included. It
// never exceeds the capacity given to NewCache.
func (c *Cache) Len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.entries)
		sh.mu.RUnlock()
	}
	return n
}

func (sh *cacheShard) put(key, token string, refreshAt, now int64) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.entries[key]; e != nil {
		if refreshAt >= e.refreshAt { // a racing Get may have stored a newer one
			e.token, e.refreshAt = token, refreshAt
			sh.unlink(e)
			sh.pushBack(e)
		}
		return
	}
	// Drop stale entries from the front, then make room if still full.
	for sh.head != nil && sh.head.refreshAt <= now {
		sh.remove(sh.head)
	}
	for len(sh.entries) >= sh.max && sh.head != nil {
		sh.remove(sh.head)
	}
	if sh.max <= 0 {
		return
	}
	e := &cacheEntry{key: key, token: token, refreshAt: refreshAt}
	sh.entries[key] = e
	sh.pushBack(e)
}

func (sh *cacheShard) remove(e *cacheEntry) {
	sh.unlink(e)
	delete(sh.entries, e.key)
}

func (sh *cacheShard) unlink(e *cacheEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		sh.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		sh.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (sh *cacheShard) pushBack(e *cacheEntry) {
	e.prev = sh.tail
	if sh.tail != nil {
		sh.tail.next = e
	} else {
		sh.head = e
	}
	sh.tail = e
}
