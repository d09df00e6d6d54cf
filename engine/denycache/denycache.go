// Package denycache remembers recently denied flows for a short time, so a
// flood of packets of a denied flow is dropped without running the
// classifier again, in memory fixed when the cache is made.
//
// # Layout and eviction
//
// The cache is a set-associative table: shards, each behind its own mutex,
// hold buckets of up to 8 slots ("ways"). A key's hash (hash/maphash with a
// per-cache random seed, so senders cannot aim at one bucket) picks a shard
// and a bucket; the key can live only in one of that bucket's slots.
//
// Add stores into the slot already holding the key, else into an empty or
// expired slot, else it evicts the entry with the earliest expiry in that
// bucket. Since every entry lives for the same TTL that is the oldest entry
// of the bucket: eviction is FIFO per bucket. Lookup does not refresh an
// entry: a denied flow is classified again at least once per TTL, so a
// policy change is never hidden for longer than that even without Purge.
//
// Memory is allocated once in New. Lookup and Add allocate nothing and take
// one shard lock each; readers of different shards never contend.
//
// # Time
//
// Expiry is measured with a monotonic clock in nanoseconds: the one given to
// NewClock (the engine's, engine.Nanotime, one clock read per Lookup and
// Add), or the now function given to New, relative to the time New ran (with
// time.Now that is monotonic too, but each call reads the wall clock as
// well). Wall-clock steps neither expire entries early nor keep them alive.
package denycache

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/nfgate/nfgate/conntrack"
)

// Key is a denied flow as the engine saw it: the flow and the scope its
// verdict depended on. Two packets of one flow in different scopes (another
// stage, interface or endpoint) are different keys.
type Key struct {
	Flow  conntrack.FlowKey
	Scope Scope
}

// Scope is what, besides the flow, a cached verdict depended on. The cache
// only compares it; the engine defines the fields' meaning.
type Scope struct {
	Stage, Dir, Flags uint8
	In, Out           int32
}

// Entry is what the cache remembers about a denied flow: enough to account
// and trace the drop without re-running the classifier.
type Entry struct {
	Gen    uint64 // policy generation that denied the flow
	Policy int32  // policy index in that generation, -1 none
	Tier   int32  // tier index, -1 none
	Rule   int32  // rule index within the policy, -1 none
	Reason uint8  // engine-defined reason code
	Stage  uint8  // policy stage that denied it
}

// Stats counts cache events since New. Purge does not reset them.
type Stats struct {
	Hits      uint64 // Lookup found a live entry
	Misses    uint64 // Lookup found nothing, or only an expired entry
	Adds      uint64 // calls to Add
	Evictions uint64 // live entries pushed out by Add to make room
}

// ways is the number of slots per bucket.
const ways = 8

// maxShards bounds the number of locks; more buys nothing on small routers.
const maxShards = 64

type slot struct {
	key     Key
	used    bool
	expires int64 // nanoseconds since Cache.base
	val     Entry
}

type bucket [ways]slot

type shard struct {
	mu      sync.Mutex
	buckets []bucket
	n       uint64 // len(buckets)
	width   int    // usable ways per bucket (ways, or less for tiny caches)
	hits    uint64
	misses  uint64
	adds    uint64
	evicts  uint64
	_       [64]byte // keep neighbouring shards' locks off one cache line
}

// Cache is a bounded, TTL-limited map from flow key to Entry. It is safe for
// concurrent use. A Cache made with a non-positive size or TTL is disabled:
// Add does nothing and Lookup always misses.
type Cache struct {
	seed   maphash.Seed
	shards []shard
	mask   uint64 // len(shards)-1
	ttl    int64
	clock  func() int64 // monotonic nanoseconds
	cap    int
}

// New makes a cache holding at most size entries, each for ttl after it was
// added. now supplies the time (time.Now in production, a fake in tests);
// nil means time.Now. The real capacity, Cap, is size rounded down to a
// multiple of 8 (or size itself below 8): never more than size.
func New(size int, ttl time.Duration, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	base := now()
	return NewClock(size, ttl, func() int64 { return int64(now().Sub(base)) })
}

// NewClock is New with a monotonic clock in nanoseconds (any origin), such
// as engine.Nanotime: the packet path then reads one clock per Lookup.
func NewClock(size int, ttl time.Duration, nanos func() int64) *Cache {
	c := &Cache{seed: maphash.MakeSeed(), ttl: int64(ttl), clock: nanos}
	if size <= 0 || ttl <= 0 {
		return c
	}
	width := ways
	if size < ways {
		width = size
	}
	total := size / width // buckets overall, >= 1
	nshards := 1
	for nshards*2 <= maxShards && nshards*2 <= total {
		nshards *= 2
	}
	c.shards = make([]shard, nshards)
	for i := range c.shards {
		n := total / nshards
		if i < total%nshards {
			n++
		}
		c.shards[i].buckets = make([]bucket, n)
		c.shards[i].n = uint64(n)
		c.shards[i].width = width
	}
	c.mask = uint64(nshards - 1)
	c.cap = total * width
	return c
}

// Cap returns the number of entries the cache can hold.
func (c *Cache) Cap() int { return c.cap }

// locate returns the shard and bucket for k.
func (c *Cache) locate(k Key) (*shard, *bucket) {
	h := maphash.Comparable(c.seed, k)
	s := &c.shards[h&c.mask]
	// The high 32 bits pick the bucket (multiply-shift range reduction),
	// independent of the low bits that picked the shard.
	b := &s.buckets[((h>>32)*s.n)>>32]
	return s, b
}

// Lookup returns the live entry for k. Expired entries miss.
func (c *Cache) Lookup(k Key) (Entry, bool) {
	if len(c.shards) == 0 {
		return Entry{}, false
	}
	now := c.clock()
	s, b := c.locate(k)
	s.mu.Lock()
	for i := 0; i < s.width; i++ {
		e := &b[i]
		if e.used && e.key == k {
			if now < e.expires {
				v := e.val
				s.hits++
				s.mu.Unlock()
				return v, true
			}
			e.used = false // expired: free the slot now
			break
		}
	}
	s.misses++
	s.mu.Unlock()
	return Entry{}, false
}

// Add remembers v for k for the cache's TTL, replacing any entry for k.
func (c *Cache) Add(k Key, v Entry) {
	if len(c.shards) == 0 {
		return
	}
	now := c.clock()
	s, b := c.locate(k)
	s.mu.Lock()
	s.adds++
	free, oldest := -1, -1
	for i := 0; i < s.width; i++ {
		e := &b[i]
		if e.used && e.key == k {
			free = i
			break
		}
		if !e.used || e.expires <= now {
			if free < 0 {
				free = i
			}
			continue
		}
		if oldest < 0 || e.expires < b[oldest].expires {
			oldest = i
		}
	}
	if free < 0 {
		free = oldest
		s.evicts++
	}
	e := &b[free]
	*e = slot{key: k, used: true, expires: now + c.ttl, val: v}
	s.mu.Unlock()
}

// Len returns the number of live (unexpired) entries. It scans the whole
// table: use it for metrics and tests, not per packet.
func (c *Cache) Len() int {
	now := c.clock()
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for j := range s.buckets {
			for w := 0; w < s.width; w++ {
				if e := &s.buckets[j][w]; e.used && e.expires > now {
					n++
				}
			}
		}
		s.mu.Unlock()
	}
	return n
}

// Purge drops every entry, e.g. when a new policy generation goes live.
func (c *Cache) Purge() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.buckets)
		s.mu.Unlock()
	}
}

// Stats returns the counters summed over all shards.
func (c *Cache) Stats() Stats {
	var st Stats
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		st.Hits += s.hits
		st.Misses += s.misses
		st.Adds += s.adds
		st.Evictions += s.evicts
		s.mu.Unlock()
	}
	return st
}
