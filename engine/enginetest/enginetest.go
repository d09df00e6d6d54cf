// Package enginetest provides fakes for the engine's seams (queue, hooks,
// links, conntrack, deny cache, tracer, policy), so engine tests run
// without root. Everything here is primarily useful for tests.
package enginetest

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/policy"
)

// Verdict is one answer a Queue received.
type Verdict = engine.Verdict

// Queue is a channel-driven engine.Queue: each packet sent on In is a
// burst of one. It records the verdicts as sent (a batch verdict is one
// record; see Kernel for the kernel's view).
type Queue struct {
	N        uint16
	In       chan *engine.Packet
	mu       sync.Mutex
	verdicts []Verdict
	Out      chan Verdict // every verdict is also sent here when non-nil (buffered by the caller)
}

// NewQueue returns a queue with number n.
func NewQueue(n uint16) *Queue {
	return &Queue{N: n, In: make(chan *engine.Packet, 64), Out: make(chan Verdict, 1024)}
}

func (q *Queue) Num() uint16 { return q.N }

// Receive feeds packets from In to fn until ctx ends or In is closed.
func (q *Queue) Receive(ctx context.Context, fn func(*engine.Burst)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case p, ok := <-q.In:
			if !ok {
				<-ctx.Done()
				return nil
			}
			fn(&engine.Burst{Packets: []engine.Packet{*p}})
		}
	}
}

// SetVerdicts records the answers.
func (q *Queue) SetVerdicts(vs []engine.Verdict) error {
	q.mu.Lock()
	q.verdicts = append(q.verdicts, vs...)
	q.mu.Unlock()
	if q.Out != nil {
		for _, v := range vs {
			select {
			case q.Out <- v:
			default:
			}
		}
	}
	return nil
}

// Verdicts returns a copy of every answer so far.
func (q *Queue) Verdicts() []Verdict {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]Verdict(nil), q.verdicts...)
}

// Kernel models a kernel NFQUEUE as nfnetlink_queue implements it: packets
// wait in id order until answered; a verdict answers its id, a batch
// verdict every waiting packet whose id is not after its id. It records the
// answer each packet got and every verdict that answered nothing or a
// packet twice. Safe for concurrent use.
type Kernel struct {
	mu      sync.Mutex
	waiting []uint32 // ids in queue order
	got     map[uint32][]Verdict
	Errors  []string // verdicts for ids not waiting
}

// NewKernel returns an empty queue.
func NewKernel() *Kernel { return &Kernel{got: map[uint32][]Verdict{}} }

// Queue adds a packet with id to the waiting list.
func (k *Kernel) Queue(id uint32) {
	k.mu.Lock()
	k.waiting = append(k.waiting, id)
	k.mu.Unlock()
}

// Apply answers waiting packets as the kernel would.
func (k *Kernel) Apply(vs []Verdict) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, v := range vs {
		if v.Batch {
			n := 0
			for n < len(k.waiting) && int32(v.ID-k.waiting[n]) >= 0 {
				k.got[k.waiting[n]] = append(k.got[k.waiting[n]], v)
				n++
			}
			if n == 0 {
				k.Errors = append(k.Errors, fmt.Sprintf("batch verdict %d answered nothing", v.ID))
			}
			k.waiting = k.waiting[n:]
			continue
		}
		i := slices.Index(k.waiting, v.ID)
		if i < 0 {
			k.Errors = append(k.Errors, fmt.Sprintf("verdict for %d, which is not waiting", v.ID))
			continue
		}
		k.got[v.ID] = append(k.got[v.ID], v)
		k.waiting = slices.Delete(k.waiting, i, i+1)
	}
}

// Got returns the answers packet id received (exactly one if all is well).
func (k *Kernel) Got(id uint32) []Verdict {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Verdict(nil), k.got[id]...)
}

// Waiting returns the ids not answered yet.
func (k *Kernel) Waiting() []uint32 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]uint32(nil), k.waiting...)
}

// Errs returns the verdicts that answered nothing.
func (k *Kernel) Errs() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.Errors...)
}

// KernelQueue is an engine.Queue over a Kernel: the test hands bursts to
// the handler itself (Handler), the verdicts go to the Kernel.
type KernelQueue struct {
	N uint16
	K *Kernel
}

func (q *KernelQueue) Num() uint16 { return q.N }
func (q *KernelQueue) Receive(ctx context.Context, fn func(*engine.Burst)) error {
	<-ctx.Done()
	return nil
}
func (q *KernelQueue) SetVerdicts(vs []engine.Verdict) error { q.K.Apply(vs); return nil }

// Hooks records applied plans. It is an engine.HookVerifier: Tamper
// makes the kernel's rules "drift" until the next Apply.
type Hooks struct {
	mu      sync.Mutex
	Plans   []*engine.HookPlan
	Removed int
	Err     error
	drift   string
	changes chan struct{}
}

func (h *Hooks) Apply(p *engine.HookPlan) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.Err != nil {
		return h.Err
	}
	h.Plans = append(h.Plans, p)
	h.drift = ""
	return nil
}

// Tamper simulates someone else changing the rules (notify: and the
// backend telling so).
func (h *Hooks) Tamper(what string, notify bool) {
	h.mu.Lock()
	h.drift = what
	ch := h.changes
	h.mu.Unlock()
	if notify && ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (h *Hooks) Drift() (string, error) { h.mu.Lock(); defer h.mu.Unlock(); return h.drift, nil }

func (h *Hooks) Changes(ctx context.Context) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.changes == nil {
		h.changes = make(chan struct{}, 1)
	}
	return h.changes
}

func (h *Hooks) Remove() error { h.mu.Lock(); h.Removed++; h.mu.Unlock(); return nil }

// Count returns how many plans were applied.
func (h *Hooks) Count() int { h.mu.Lock(); defer h.mu.Unlock(); return len(h.Plans) }

// Last returns the last applied plan.
func (h *Hooks) Last() *engine.HookPlan {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.Plans) == 0 {
		return nil
	}
	return h.Plans[len(h.Plans)-1]
}

// Links is a static interface map; Set replaces it and signals Changed.
type Links struct {
	mu     sync.Mutex
	ifaces []engine.Iface
	ch     chan struct{}
}

func NewLinks(ifaces ...engine.Iface) *Links {
	return &Links{ifaces: ifaces, ch: make(chan struct{}, 1)}
}

func (l *Links) Interfaces() []engine.Iface {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]engine.Iface(nil), l.ifaces...)
}

func (l *Links) Name(i uint32) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.ifaces {
		if f.Index == i {
			return f.Name, true
		}
	}
	return "", false
}

func (l *Links) Changed() <-chan struct{} { return l.ch }

func (l *Links) Set(ifaces ...engine.Iface) {
	l.mu.Lock()
	l.ifaces = ifaces
	l.mu.Unlock()
	select {
	case l.ch <- struct{}{}:
	default:
	}
}

// Conntrack records re-checks and cuts.
type Conntrack struct {
	mu       sync.Mutex
	Flows    int // what Recheck reports
	Err      error
	Rechecks [][3]uint32
	Cuts     []engine.FlowTuple
}

func (c *Conntrack) Recheck(owned, clear, set uint32) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Rechecks = append(c.Rechecks, [3]uint32{owned, clear, set})
	return c.Flows, c.Err
}

func (c *Conntrack) Cut(t engine.FlowTuple) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Cuts = append(c.Cuts, t)
	return nil
}

// CutCount returns how many cuts were asked for.
func (c *Conntrack) CutCount() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.Cuts) }

// DenyCache is a map-backed deny cache (allocates; not for AllocsPerRun).
type DenyCache struct {
	mu     sync.Mutex
	m      map[denyKey]engine.DenyEntry
	Purges int
}

type denyKey struct {
	sc       engine.DenyScope
	proto    uint8
	src, dst netip.Addr
	sp, dp   uint16
}

func NewDenyCache() *DenyCache { return &DenyCache{m: map[denyKey]engine.DenyEntry{}} }

func key(sc engine.DenyScope, p *classify.Packet) denyKey {
	return denyKey{sc, p.Proto, p.Src, p.Dst, p.SrcPort, p.DstPort}
}

func (d *DenyCache) Lookup(sc engine.DenyScope, p *classify.Packet, gen uint64) (engine.DenyEntry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.m[key(sc, p)]
	if !ok || e.Gen != gen {
		return engine.DenyEntry{}, false
	}
	return e, true
}

func (d *DenyCache) Add(sc engine.DenyScope, p *classify.Packet, e engine.DenyEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m[key(sc, p)] = e
}

func (d *DenyCache) Purge() {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.m)
	d.Purges++
}

// Tracer records decisions and reloads.
type Tracer struct {
	mu      sync.Mutex
	Records []engine.TraceRecord
	Reloads []engine.ReloadInfo
	Discard bool // count nothing, keep nothing (for allocation tests)
}

func (t *Tracer) Decision(r *engine.TraceRecord) bool {
	if t.Discard {
		return true
	}
	t.mu.Lock()
	t.Records = append(t.Records, *r)
	t.mu.Unlock()
	return true
}

func (t *Tracer) Reload(ev engine.ReloadInfo) {
	t.mu.Lock()
	t.Reloads = append(t.Reloads, ev)
	t.mu.Unlock()
}

// Policy is a function-driven engine.Policy. Nil functions give NONE.
type Policy struct {
	BindFn      func(policy.Interface) policy.Binding
	UntrackedFn func(ep policy.EndpointID, dir policy.Dir, pkt *classify.Packet) policy.Decision
	PreDNATFn   func(ep policy.EndpointID, pkt *classify.Packet) policy.Decision
	LocalFn     func(ep policy.EndpointID, dir policy.Dir, pkt *classify.Packet) policy.Decision
	ForwardFn   func(in, out policy.EndpointID, accepted bool, pkt *classify.Packet) policy.Decision
}

// NoDecision is a NONE decision.
var NoDecision = policy.Decision{Verdict: policy.None, Reason: policy.ReasonNotPoliced, Endpoint: policy.NoEndpoint,
	Tier: policy.NoIndex, Policy: policy.NoIndex, Rule: policy.NoIndex}

// Decide builds a decision with verdict v by rule r of policy pol.
func Decide(v policy.Verdict, pol, r int32) policy.Decision {
	d := NoDecision
	d.Verdict, d.Reason, d.Policy, d.Rule, d.Endpoint = v, policy.ReasonRule, pol, r, 0
	return d
}

func (p *Policy) Bind(ifc policy.Interface) policy.Binding {
	if p.BindFn != nil {
		return p.BindFn(ifc)
	}
	return policy.NoBinding()
}

func (p *Policy) Untracked(ep policy.EndpointID, dir policy.Dir, pkt *classify.Packet) policy.Decision {
	if p.UntrackedFn != nil {
		return p.UntrackedFn(ep, dir, pkt)
	}
	return NoDecision
}

func (p *Policy) PreDNAT(ep policy.EndpointID, pkt *classify.Packet) policy.Decision {
	if p.PreDNATFn != nil {
		return p.PreDNATFn(ep, pkt)
	}
	return NoDecision
}

func (p *Policy) Local(ep policy.EndpointID, dir policy.Dir, pkt *classify.Packet) policy.Decision {
	if p.LocalFn != nil {
		return p.LocalFn(ep, dir, pkt)
	}
	return NoDecision
}

func (p *Policy) Forward(in, out policy.EndpointID, accepted bool, pkt *classify.Packet) policy.Decision {
	if p.ForwardFn != nil {
		return p.ForwardFn(in, out, accepted, pkt)
	}
	return NoDecision
}

// TCP4 builds a minimal IPv4 TCP packet (SYN).
func TCP4(src, dst string, sport, dport uint16) []byte {
	b := make([]byte, 40)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], 40)
	b[8], b[9] = 64, classify.ProtoTCP
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], dport)
	b[32] = 5 << 4
	b[33] = 0x02
	return b
}
