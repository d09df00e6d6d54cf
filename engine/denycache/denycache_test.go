package denycache

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/nfgate/nfgate/conntrack"
)

// fakeClock is a manual clock safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var (
	srcA = netip.MustParseAddr("198.18.0.1")
	dstA = netip.MustParseAddr("198.18.1.1")
)

// key returns a distinct TCP flow key for each i.
func key(i int) Key {
	return Key{Flow: conntrack.MakeKey(4, 6, srcA, dstA, uint16(i), uint16(i>>16))}
}

func TestLookupAndTTL(t *testing.T) {
	clk := newClock()
	c := New(64, 10*time.Second, clk.Now)
	want := Entry{Gen: 3, Policy: 1, Tier: 0, Rule: 7, Reason: 2, Stage: 4}

	if _, ok := c.Lookup(key(1)); ok {
		t.Fatal("empty cache: Lookup hit")
	}
	c.Add(key(1), want)
	steps := []struct {
		advance time.Duration
		hit     bool
		len     int
	}{
		{0, true, 1},
		{9*time.Second + 999*time.Millisecond, true, 1}, // just before the TTL
		{time.Millisecond, false, 0},                    // exactly at the TTL: expired
		{time.Hour, false, 0},
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		got, ok := c.Lookup(key(1))
		if ok != s.hit || (ok && got != want) {
			t.Errorf("step %d: Lookup = %+v, %v; want hit=%v", i, got, ok, s.hit)
		}
		if n := c.Len(); n != s.len {
			t.Errorf("step %d: Len = %d, want %d", i, n, s.len)
		}
	}
	if _, ok := c.Lookup(key(2)); ok {
		t.Error("Lookup of a key never added hit")
	}
	st := c.Stats()
	if st != (Stats{Hits: 2, Misses: 4, Adds: 1}) {
		t.Errorf("Stats = %+v", st)
	}
}

// NewClock takes a monotonic nanosecond clock (the engine's): expiry
// follows it alone, and each Lookup and Add reads it exactly once (the
// packet path pays one clock read, not time.Now's wall and monotonic pair).
func TestNewClock(t *testing.T) {
	var now int64 = 1 << 40 // any origin
	reads := 0
	c := NewClock(64, 10*time.Second, func() int64 { reads++; return now })
	reads = 0
	c.Add(key(1), Entry{Gen: 1})
	if reads != 1 {
		t.Errorf("Add read the clock %d times, want 1", reads)
	}
	for _, s := range []struct {
		advance time.Duration
		hit     bool
	}{{0, true}, {10*time.Second - 1, true}, {1, false}} {
		now += int64(s.advance)
		reads = 0
		if _, ok := c.Lookup(key(1)); ok != s.hit {
			t.Errorf("after %v more: hit %v, want %v", s.advance, ok, s.hit)
		}
		if reads != 1 {
			t.Errorf("Lookup read the clock %d times, want 1", reads)
		}
	}
}

func TestAddReplacesAndRefreshes(t *testing.T) {
	clk := newClock()
	c := New(64, 10*time.Second, clk.Now)
	c.Add(key(1), Entry{Gen: 1})
	clk.Advance(8 * time.Second)
	c.Add(key(1), Entry{Gen: 2})
	clk.Advance(8 * time.Second) // 16s after the first Add, 8s after the second
	got, ok := c.Lookup(key(1))
	if !ok || got.Gen != 2 {
		t.Errorf("Lookup = %+v, %v; want the second entry, still live", got, ok)
	}
	if c.Len() != 1 {
		t.Errorf("Len = %d, want 1 (same key replaced)", c.Len())
	}
}

func TestPurge(t *testing.T) {
	c := New(64, time.Minute, newClock().Now)
	for i := range 20 {
		c.Add(key(i), Entry{})
	}
	c.Purge()
	if c.Len() != 0 {
		t.Errorf("Len after Purge = %d", c.Len())
	}
	if _, ok := c.Lookup(key(3)); ok {
		t.Error("Lookup hit after Purge")
	}
}

func TestCapacity(t *testing.T) {
	tests := []struct{ size, cap int }{
		{0, 0}, {-5, 0}, {1, 1}, {7, 7}, {8, 8}, {10, 8}, {1000, 1000}, {1001, 1000}, {65536, 65536},
	}
	for _, tt := range tests {
		if got := New(tt.size, time.Second, nil).Cap(); got != tt.cap {
			t.Errorf("New(%d).Cap() = %d, want %d", tt.size, got, tt.cap)
		}
	}
}

func TestDisabled(t *testing.T) {
	for _, c := range []*Cache{New(0, time.Second, nil), New(100, 0, nil)} {
		c.Add(key(1), Entry{})
		if _, ok := c.Lookup(key(1)); ok || c.Len() != 0 {
			t.Errorf("disabled cache (cap %d) stored an entry", c.Cap())
		}
		c.Purge()
	}
}

// TestBounded inserts ten times the size in distinct keys: the cache never
// holds more than its size, the newest entry is always kept, and every
// displaced live entry is counted as an eviction.
func TestBounded(t *testing.T) {
	for _, size := range []int{5, 100, 1000} {
		clk := newClock()
		c := New(size, time.Hour, clk.Now)
		for i := range 10 * size {
			c.Add(key(i), Entry{Gen: uint64(i)})
			if got, ok := c.Lookup(key(i)); !ok || got.Gen != uint64(i) {
				t.Fatalf("size %d: newest key %d not found", size, i)
			}
			if i%97 == 0 {
				if n := c.Len(); n > size {
					t.Fatalf("size %d: Len = %d after %d adds", size, n, i+1)
				}
			}
		}
		n := c.Len()
		st := c.Stats()
		if n > size || n < size/2 {
			t.Errorf("size %d: Len = %d after %d adds, want in [%d, %d]", size, n, 10*size, size/2, size)
		}
		if st.Adds != uint64(10*size) || st.Evictions != st.Adds-uint64(n) {
			t.Errorf("size %d: Stats = %+v with Len %d; want Adds=%d, Evictions=Adds-Len", size, st, n, 10*size)
		}
	}
}

// TestExpiredSlotsReused: once entries expire, new keys take their slots
// without evicting anything live. Size 8 is a single bucket, so every key
// competes for the same slots.
func TestExpiredSlotsReused(t *testing.T) {
	clk := newClock()
	c := New(8, time.Second, clk.Now)
	for i := range 8 {
		c.Add(key(i), Entry{})
	}
	clk.Advance(2 * time.Second)
	for i := 100; i < 108; i++ {
		c.Add(key(i), Entry{})
	}
	if st := c.Stats(); st.Evictions != 0 {
		t.Errorf("Evictions = %d while only expired entries were replaced", st.Evictions)
	}
	for i := 100; i < 108; i++ {
		if _, ok := c.Lookup(key(i)); !ok {
			t.Errorf("key %d missing", i)
		}
	}
	// A ninth live key evicts the oldest one.
	clk.Advance(time.Millisecond)
	c.Add(key(200), Entry{})
	if _, ok := c.Lookup(key(100)); ok {
		t.Error("oldest entry survived a full bucket")
	}
	if st := c.Stats(); st.Evictions != 1 {
		t.Errorf("Evictions = %d, want 1", st.Evictions)
	}
}

func TestConcurrent(t *testing.T) {
	clk := newClock()
	c := New(512, time.Second, clk.Now)
	const workers, ops = 4, 5000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ops {
				k := key((i * (w + 1)) % 2000)
				if _, ok := c.Lookup(k); !ok {
					c.Add(k, Entry{Gen: uint64(w)})
				}
				if i%1000 == 0 {
					clk.Advance(300 * time.Millisecond)
					_ = c.Len()
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			c.Purge()
			_ = c.Stats()
		}
	}()
	wg.Wait()
	st := c.Stats()
	if st.Hits+st.Misses != workers*ops {
		t.Errorf("Hits+Misses = %d, want %d", st.Hits+st.Misses, workers*ops)
	}
	if n := c.Len(); n > c.Cap() {
		t.Errorf("Len = %d > Cap %d", n, c.Cap())
	}
}

var sinkEntry Entry

func TestNoAllocs(t *testing.T) {
	c := New(4096, time.Minute, nil)
	for i := range 8192 {
		c.Add(key(i), Entry{})
	}
	i := 0
	n := testing.AllocsPerRun(1000, func() {
		i++
		c.Add(key(i), Entry{Gen: 1})
		sinkEntry, _ = c.Lookup(key(i / 2))
	})
	if n != 0 {
		t.Errorf("Add+Lookup allocated %v times per run, want 0", n)
	}
}

func BenchmarkLookupHit(b *testing.B) {
	c := New(65536, time.Minute, nil)
	for i := range 1024 {
		c.Add(key(i), Entry{})
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sinkEntry, _ = c.Lookup(key(i & 1023))
	}
}

// BenchmarkLookupHitMono is BenchmarkLookupHit with a monotonic clock
// (what the daemon uses: engine.Nanotime) instead of time.Now.
func BenchmarkLookupHitMono(b *testing.B) {
	base := time.Now()
	c := NewClock(65536, time.Minute, func() int64 { return int64(time.Since(base)) })
	for i := range 1024 {
		c.Add(key(i), Entry{})
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sinkEntry, _ = c.Lookup(key(i & 1023))
	}
}

func BenchmarkLookupMiss(b *testing.B) {
	c := New(65536, time.Minute, nil)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sinkEntry, _ = c.Lookup(key(i))
	}
}

func BenchmarkAddEvicting(b *testing.B) {
	c := New(4096, time.Minute, nil)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.Add(key(i), Entry{})
	}
}

func BenchmarkLookupParallel(b *testing.B) {
	c := New(65536, time.Minute, nil)
	for i := range 4096 {
		c.Add(key(i), Entry{})
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Lookup(key(i & 4095))
			i++
		}
	})
}
