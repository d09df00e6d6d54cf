package engine

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/nfgate/nfgate/classify"
)

// A re-check cuts a flow by deleting its conntrack entry. That alone does
// not keep it dead: the peer retransmits what the cut dropped (for TCP the
// data or ACK in flight), the kernel's loose pickup makes a conntrack entry
// for it in the other orientation, and if the policy has nothing to say
// about that direction (NONE: the host's rules accept it), the flow lives
// on, now with the server as its originator (seen in e2e TestReload: the
// server's retransmission 160 ms after the cut revived a denied TCP/80
// flow). cutMemory remembers each cut flow's 5-tuple in both orientations;
// a new packet of either is dropped at any tracked stage (reason cut-flow)
// while the memory holds it. An entry lives cutFlowTTL after its last hit,
// so a peer that keeps retransmitting keeps it; a reload clears the memory
// (the new policy decides again). ICMP flows are not remembered (their
// tuple has no identifier to tell one echo flow from another).
type cutMemory struct {
	n   atomic.Int64 // entries; 0: not looked up at all
	mu  sync.RWMutex
	m   map[cutKey]*atomic.Int64 // expiry (engine nanoseconds)
	max int
	ttl int64
}

type cutKey struct {
	proto      uint8
	src, dst   netip.Addr
	sport, dpt uint16
}

// cutFlowTTL is how long a cut flow is remembered after its last packet;
// cutFlowMax bounds the memory (about 100 bytes an entry).
const (
	cutFlowTTL = 5 * 60 * 1e9
	cutFlowMax = 65536
)

func newCutMemory(max int, ttl int64) *cutMemory {
	return &cutMemory{m: map[cutKey]*atomic.Int64{}, max: max, ttl: ttl}
}

// add remembers t in both orientations; false when the memory is full of
// live entries (the caller counts it).
func (c *cutMemory) add(t FlowTuple, now int64) bool {
	if t.Proto == 1 || t.Proto == 58 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+2 > c.max {
		for k, exp := range c.m {
			if exp.Load() <= now {
				delete(c.m, k)
			}
		}
	}
	if len(c.m)+2 > c.max {
		return false
	}
	for _, k := range [2]cutKey{
		{t.Proto, t.Src, t.Dst, t.SrcPort, t.DstPort},
		{t.Proto, t.Dst, t.Src, t.DstPort, t.SrcPort},
	} {
		exp, ok := c.m[k]
		if !ok {
			exp = new(atomic.Int64)
			c.m[k] = exp
		}
		exp.Store(now + c.ttl)
	}
	c.n.Store(int64(len(c.m)))
	return true
}

// remembers reports whether any cut flow is remembered: one atomic load,
// so that a packet pays nothing more (no clock read) while none is.
func (c *cutMemory) remembers() bool { return c.n.Load() != 0 }

// has reports whether p belongs to a remembered cut flow, and extends its
// life. It allocates nothing.
func (c *cutMemory) has(p *classify.Packet, now int64) bool {
	if !c.remembers() || p.Proto == 1 || p.Proto == 58 {
		return false
	}
	k := cutKey{p.Proto, p.Src, p.Dst, p.SrcPort, p.DstPort}
	c.mu.RLock()
	exp := c.m[k]
	c.mu.RUnlock()
	if exp == nil || exp.Load() <= now {
		return false
	}
	exp.Store(now + c.ttl)
	return true
}

// clear forgets every cut flow.
func (c *cutMemory) clear() {
	c.mu.Lock()
	clear(c.m)
	c.n.Store(0)
	c.mu.Unlock()
}
