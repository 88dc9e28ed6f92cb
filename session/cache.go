package session

import (
	"hash/maphash"
	"sync"
	"time"
)

// decodeCache remembers recently verified session cookies, so that a
// browser's requests within a few seconds cost one authenticated
// decryption, not one each (about half of the gateway's own per-request
// CPU). It is keyed by the exact cookie name and value: a hit means these
// very bytes were authenticated and decrypted by this store, with its keys,
// moments ago. Entries live at most cacheTTL; expiry, audience and idle
// checks still run on every hit. A store is rebuilt on key reload, and
// with it the cache.
type decodeCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
}

const (
	cacheShards     = 16
	cacheShardLimit = 512 // entries per shard: 8192 sessions in all
	cacheTTL        = 10 * time.Second
)

type cacheShard struct {
	mu sync.RWMutex
	m  map[uint64]cacheEntry
}

type cacheEntry struct {
	name, value string
	p           Payload
	until       time.Time
}

func newDecodeCache() *decodeCache {
	c := &decodeCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]cacheEntry)
	}
	return c
}

func (c *decodeCache) key(name, value string) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(name)
	h.WriteByte(0)
	h.WriteString(value)
	return h.Sum64()
}

// get returns a copy of the payload verified for exactly (name, value).
func (c *decodeCache) get(name, value string, now time.Time) (*Payload, bool) {
	k := c.key(name, value)
	sh := &c.shards[k%cacheShards]
	sh.mu.RLock()
	e, ok := sh.m[k]
	sh.mu.RUnlock()
	if !ok || e.name != name || e.value != value || !now.Before(e.until) {
		return nil, false
	}
	p := e.p // the caller may modify its copy (Save sets LastSeen)
	return &p, true
}

// put remembers a verified payload. A full shard is emptied: simple, and
// the cost is one decode per evicted session.
func (c *decodeCache) put(name, value string, p *Payload, now time.Time) {
	k := c.key(name, value)
	sh := &c.shards[k%cacheShards]
	sh.mu.Lock()
	if len(sh.m) >= cacheShardLimit {
		clear(sh.m)
	}
	sh.m[k] = cacheEntry{name: name, value: value, p: *p, until: now.Add(cacheTTL)}
	sh.mu.Unlock()
}
