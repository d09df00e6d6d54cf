package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/dtree"
)

// RegionMarkBits returns the packet-mark (meta) and conntrack-mark (ct) bits
// that must all be clear for a packet to meet stage st's region rules: the
// packets nfgate's own chain would hand to the queue without a decision of
// its own (accept-mark, decided bits, re-check, per-hook bits). The preDNAT
// rules run before mangle PREROUTING restores the connmark into the packet
// mark, so they check the connmark itself; the filter hooks run after it.
func (m Marks) RegionMarkBits(st policy.Stage) (meta, ct uint32) {
	switch st {
	case policy.StagePreDNAT:
		return m.Accepted | m.PreDone | m.Pass, m.Persist()
	case policy.StageInput:
		return m.Accepted | m.InDone | m.Recheck | m.Pass | m.Reject, 0
	case policy.StageForward:
		return m.Accepted | m.InDone | m.OutDone | m.Recheck | m.Pass | m.Reject, 0
	}
	return m.All(), m.Persist()
}

// RegionStage reports whether stage st gets kernel deny regions: preDNAT,
// input and forward. The untracked stage sees every packet of its flows
// (nothing is NEW there) and the output stage only what this host sends.
func RegionStage(st policy.Stage) bool {
	return st == policy.StagePreDNAT || st == policy.StageInput || st == policy.StageForward
}

// regionHook is the hook a stage's queued packets come from when a region
// may be made from them.
var regionHook = [numStages]uint8{policy.StagePreDNAT: HookPrerouting, policy.StageInput: HookInput, policy.StageForward: HookForward}

// regionReq is one denied packet offered to the installer (copied by value
// through the channel: nothing is allocated on the packet path).
type regionReq struct {
	s       *snapshot
	sc      DenyScope
	pkt     classify.Packet
	in, out uint32
	d       policy.Decision
}

// regionScope is what an element's set and interface key share.
type regionScope struct {
	stage   policy.Stage
	fam     uint8
	kind    RegionKind
	in, out uint32
}

// liveRegion is an installed element and what the trace says about it.
type liveRegion struct {
	el                 RegionElem
	installed, expires time.Time
	gen                uint64
	hash               string
	in, out            string
	endpoint, tier     string
	policy             string
	verdict            string
	d                  policy.Decision
	packets, bytes     uint64
}

// regionMgr is the installer: it owns the kernel sets and their
// bookkeeping. The worker only sends it requests.
type regionMgr struct {
	e    *Engine
	k    RegionSets
	size int
	ttl  time.Duration
	reqs chan regionReq

	mu sync.Mutex // installs, flushes, maintenance and repairs, one at a time
	// epoch: installs are accepted only from snapshots of this region
	// epoch (0: none). A reload or a change of the interface bindings
	// sets it to 0, removes every element, and only then lets the new
	// snapshot go live and sets its epoch.
	epoch   uint64
	spec    RegionSpec
	reset   bool // the table was made by the last Reset (it can be checked and repaired)
	live    map[RegionElem]*liveRegion
	scopes  map[regionScope][]*liveRegion
	count   map[regionScope]int // per set (in, out zero)
	gone    uint64              // packets counted by elements no longer live
	lastRd  time.Time           // last counter read
	errLogs int
	batch   []regionReq
	els     []RegionElem
	pend    []*liveRegion
	reqOf   []int // batch indexes of the requests that added elements
}

// regionQueue bounds the requests waiting for the installer.
const regionQueue = 1024

func newRegionMgr(e *Engine, k RegionSets, size int, ttl time.Duration) *regionMgr {
	if ttl <= 0 {
		ttl = DefaultRegionTTL
	}
	return &regionMgr{e: e, k: k, size: size, ttl: ttl, reqs: make(chan regionReq, regionQueue),
		live: map[RegionElem]*liveRegion{}, scopes: map[regionScope][]*liveRegion{}, count: map[regionScope]int{}}
}

// kernelTTL is the timeout the kernel gets: the installer removes an
// element itself at its TTL (reading its counter first); the kernel's own
// expiry, a little later, covers a daemon that is gone.
func (m *regionMgr) kernelTTL() time.Duration { return m.ttl + 2*time.Second }

// offerRegion hands a packet the engine just denied to the installer, if a
// kernel region can be made from it, and reports whether it did (then the
// installer deny-caches the flow if it cannot install a region for it). It
// allocates nothing and never blocks.
func (w *worker) offerRegion(s *snapshot, p *Packet, pkt *classify.Packet, d *policy.Decision) bool {
	rg := w.e.rg
	st := w.stage
	if !RegionStage(st) || s.rprog == nil || s.repoch == 0 || d.Logged || pkt.Class != classify.OK || p.Hook != regionHook[st] {
		return false
	}
	meta, _ := w.e.marks.RegionMarkBits(st)
	if st == policy.StagePreDNAT {
		meta |= w.e.marks.Persist() // as queued, the mark holds the restored connmark
	}
	if p.Mark&meta != 0 || w.scope.Accepted {
		return false
	}
	req := regionReq{s: s, sc: w.scope, pkt: *pkt, in: p.InIf, d: *d}
	if st == policy.StageForward {
		req.out = p.OutIf
	}
	select {
	case rg.reqs <- req:
		w.e.stats.RegionOffers.Add(1)
		return true
	default:
		w.e.stats.RegionQueueFull.Add(1)
		return false
	}
}

// denyCache remembers a request's denial in the userspace deny cache: the
// kernel will not drop its flow (no element could be made, or installed).
func (m *regionMgr) denyCache(r *regionReq) {
	if dc := m.e.opt.Deny; dc != nil && r.s.gen == m.e.cur.Load().gen {
		dc.Add(r.sc, &r.pkt, DenyEntry{Gen: r.s.gen, Stage: r.sc.Stage, Reason: r.d.Reason, Tier: r.d.Tier, Policy: r.d.Policy, Rule: r.d.Rule})
	}
}

// run installs requested regions and keeps the installed ones (counters,
// expiry, repair) until ctx ends.
func (m *regionMgr) run(ctx context.Context) {
	tick := max(min(m.ttl/4, time.Second), 50*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	heal := m.e.opt.HookCheck
	if heal == 0 {
		heal = DefaultHookCheck
	}
	var healC <-chan time.Time
	if heal > 0 {
		ht := time.NewTicker(heal)
		defer ht.Stop()
		healC = ht.C
	}
	changes := m.k.Changes(ctx)
	for {
		select {
		case <-ctx.Done():
			m.stop()
			return
		case r := <-m.reqs:
			m.batch = append(m.batch[:0], r)
			for len(m.batch) < 64 {
				select {
				case r := <-m.reqs:
					m.batch = append(m.batch, r)
					continue
				default:
				}
				break
			}
			m.install(m.batch)
			clear(m.batch) // drop the snapshot references
		case <-t.C:
			m.maintain(false)
		case <-healC:
			m.repair()
		case <-changes:
			time.Sleep(20 * time.Millisecond) // let a change of many messages finish
			select {
			case <-changes:
			default:
			}
			m.repair()
		}
	}
}

// InstallPending processes the requests waiting for the installer now (the
// installer goroutine does this as they come; tests call it directly).
func (m *regionMgr) installPending() {
	for {
		m.batch = m.batch[:0]
		for len(m.batch) < 64 {
			select {
			case r := <-m.reqs:
				m.batch = append(m.batch, r)
				continue
			default:
			}
			break
		}
		if len(m.batch) == 0 {
			return
		}
		m.install(m.batch)
		clear(m.batch)
	}
}

// regionCall is the stage evaluation a request's decision came from.
func regionCall(sc DenyScope) policy.StageCall {
	c := policy.StageCall{Stage: sc.Stage, CT: classify.CTNew, Endpoint: sc.In}
	if sc.Stage == policy.StageForward {
		c.Endpoint = policy.NoEndpoint
		c.In, c.Out, c.Accepted = sc.In, sc.Out, sc.Accepted
	}
	return c
}

// sameDeny reports whether a is the denial b is (the region's decision is
// the packet's).
func sameDeny(a, b *policy.Decision) bool {
	return a.Verdict == policy.Drop && !a.Logged && a.Verdict == b.Verdict && a.Reason == b.Reason &&
		a.Endpoint == b.Endpoint && a.Tier == b.Tier && a.Policy == b.Policy && a.Rule == b.Rule
}

// install makes and installs the regions of a batch of requests.
func (m *regionMgr) install(batch []regionReq) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := &m.e.stats
	now := m.e.now()
	m.els, m.pend, m.reqOf = m.els[:0], m.pend[:0], m.reqOf[:0]
	for i := range batch {
		r := &batch[i]
		if m.epoch == 0 || r.s.repoch != m.epoch {
			st.RegionStale.Add(1)
			continue
		}
		fam, k, ok := policy.KeyOf(&r.pkt)
		if !ok {
			m.denyCache(r)
			continue
		}
		kind, ok := regionKindOf(fam, &k)
		if !ok {
			st.RegionInexpressible.Add(1)
			m.denyCache(r)
			continue
		}
		sc := regionScope{stage: r.sc.Stage, fam: fam, kind: kind, in: r.in, out: r.out}
		if m.covered(sc, &k) {
			st.RegionCoalesced.Add(1)
			continue
		}
		call := regionCall(r.sc)
		// First the box of every source (address and port) sending to
		// this destination service: a flood's shape, whether it changes
		// its source port or spoofs its address. Then the widest box the
		// compiled trees show around the packet (port scans). Both are
		// installed unless one holds the other.
		var boxes [2]policy.Box
		n := 0
		for pass := range 2 {
			in := policy.FullBox(fam)
			if pass == 0 {
				in = serviceShape(fam, &k)
			}
			d, b := r.s.rprog.RegionIn(call, in, &k)
			if !sameDeny(&d, &r.d) {
				st.RegionMismatch.Add(1)
				break
			}
			switch {
			case n == 1 && boxes[0].Covers(&b.Box):
			case n == 1 && b.Covers(&boxes[0].Box):
				boxes[0] = b
			default:
				boxes[n] = b
				n++
			}
		}
		added := 0
		for _, b := range boxes[:n] {
			el, ok := elemOf(sc, &b, &k)
			if !ok {
				st.RegionInexpressible.Add(1)
				continue
			}
			if r.sc.Stage != policy.StageForward && touchesFailsafe(&el, m.spec.FailsafeIn) {
				// RegionIn never returns a box holding a failsafe packet:
				// this is a second line.
				st.RegionFailsafe.Add(1)
				continue
			}
			added += m.plan(sc, el, r, now)
		}
		switch {
		case added > 0:
			m.reqOf = append(m.reqOf, i)
		case m.covered(sc, &k):
			st.RegionCoalesced.Add(1)
		default:
			m.denyCache(r)
		}
	}
	if len(m.els) == 0 {
		return
	}
	if err := m.k.Add(m.els, m.kernelTTL()); err != nil {
		// One bad element must not cost the others: try them one by one.
		m.logErr("installing deny regions", err)
		for i, el := range m.els {
			if err := m.k.Add([]RegionElem{el}, m.kernelTTL()); err != nil {
				st.RegionErrors.Add(1)
				m.forget(m.pend[i])
				continue
			}
			st.RegionsInstalled.Add(1)
		}
		// Requests whose key no installed element covers now: cache them.
		for _, i := range m.reqOf {
			r := &batch[i]
			if fam, k, ok := policy.KeyOf(&r.pkt); ok {
				kind, _ := regionKindOf(fam, &k)
				if !m.covered(regionScope{stage: r.sc.Stage, fam: fam, kind: kind, in: r.in, out: r.out}, &k) {
					m.denyCache(r)
				}
			}
		}
		return
	}
	st.RegionsInstalled.Add(uint64(len(m.els)))
}

func (m *regionMgr) logErr(what string, err error) {
	m.errLogs++
	if m.errLogs <= 10 || m.errLogs%1000 == 0 {
		m.e.log.Error(what, "err", err, "failures", m.errLogs)
	}
}

// plan queues el (and the pieces of it the kernel takes next to the
// elements already there) for installation, and books it. It returns how
// many elements it queued.
func (m *regionMgr) plan(sc regionScope, el RegionElem, r *regionReq, now time.Time) int {
	st := &m.e.stats
	pieces := []RegionElem{el}
	// nf_tables refuses an element with a corner inside another element
	// of the set (an exact duplicate or a partial overlap): such an
	// element is replaced by the parts of it outside the other one (all
	// within the proven box, so nothing widens), or left out.
	for _, o := range m.scopes[sc] {
		var next []RegionElem
		for _, p := range pieces {
			switch {
			case elemCovers(&o.el, &p):
				// Already there.
			case elemHasCorner(&o.el, &p):
				next = subtractElem(p, &o.el, next)
			default:
				next = append(next, p)
			}
		}
		pieces = next
		if len(pieces) > 8 {
			st.RegionInexpressible.Add(1)
			return 0
		}
	}
	set := regionScope{stage: sc.stage, fam: sc.fam, kind: sc.kind}
	n := 0
	for _, p := range pieces {
		if m.count[set] >= m.size {
			st.RegionSetFull.Add(1)
			break
		}
		lr := &liveRegion{el: p, installed: now, expires: now.Add(m.ttl), gen: r.s.gen, hash: r.s.hash,
			in: r.s.names[r.in], out: r.s.names[r.out], d: r.d, verdict: "DROP"}
		if m.spec.Reject && sc.stage != policy.StagePreDNAT {
			lr.verdict = "REJECT"
		}
		lr.endpoint, lr.tier, lr.policy = r.s.decisionNames(&r.d)
		m.live[p] = lr
		m.scopes[sc] = append(m.scopes[sc], lr)
		m.count[set]++
		m.els = append(m.els, p)
		m.pend = append(m.pend, lr)
		n++
	}
	return n
}

// forget drops lr from the bookkeeping.
func (m *regionMgr) forget(lr *liveRegion) {
	if m.live[lr.el] != lr {
		return
	}
	delete(m.live, lr.el)
	sc := regionScope{stage: lr.el.Stage, fam: lr.el.Fam, kind: lr.el.Kind, in: lr.el.InIf, out: lr.el.OutIf}
	l := m.scopes[sc]
	for i, o := range l {
		if o == lr {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(m.scopes, sc)
	} else {
		m.scopes[sc] = l
	}
	set := regionScope{stage: sc.stage, fam: sc.fam, kind: sc.kind}
	if m.count[set]--; m.count[set] <= 0 {
		delete(m.count, set)
	}
	m.gone += lr.packets
}

// covered reports whether an installed element of scope sc holds the key.
func (m *regionMgr) covered(sc regionScope, k *dtree.Key) bool {
	for _, lr := range m.scopes[sc] {
		if elemHasKey(&lr.el, k) {
			return true
		}
	}
	return false
}

// maintain reads the counters, removes expired elements (force: read now).
func (m *regionMgr) maintain(force bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.live) == 0 {
		return
	}
	now := m.e.now()
	var expired []*liveRegion
	for _, lr := range m.live {
		if !now.Before(lr.expires) {
			expired = append(expired, lr)
		}
	}
	if len(expired) == 0 && !force && now.Sub(m.lastRd) < time.Second {
		return
	}
	m.readCounters(now)
	if len(expired) == 0 {
		return
	}
	els := make([]RegionElem, 0, len(expired))
	for _, lr := range expired {
		if m.live[lr.el] == lr {
			els = append(els, lr.el)
		}
	}
	if err := m.k.Delete(els); err != nil {
		m.logErr("removing expired deny regions", err)
		m.e.stats.RegionErrors.Add(1)
	}
	for _, lr := range expired {
		if m.live[lr.el] == lr {
			m.forget(lr)
			m.traceEnd(lr, now, "expired")
		}
	}
	m.e.stats.RegionsLive.Store(uint64(len(m.live)))
	m.e.stats.RegionPackets.Store(m.packets())
}

// readCounters updates the live elements' counters; an element the kernel
// no longer holds (flushed by someone else) ends as "gone".
func (m *regionMgr) readCounters(now time.Time) {
	m.lastRd = now
	seen := make(map[RegionElem]bool, len(m.live))
	err := m.k.Counters(func(el RegionElem, packets, bytes uint64) {
		if lr := m.live[el]; lr != nil {
			lr.packets, lr.bytes = packets, bytes
			seen[el] = true
		}
	})
	if err != nil {
		m.logErr("reading the deny regions' counters", err)
		return
	}
	for el, lr := range m.live {
		if !seen[el] && now.Sub(lr.installed) > 100*time.Millisecond {
			m.forget(lr)
			m.traceEnd(lr, now, "gone")
		}
	}
	m.e.stats.RegionsLive.Store(uint64(len(m.live)))
	m.e.stats.RegionPackets.Store(m.packets())
}

func (m *regionMgr) packets() uint64 {
	n := m.gone
	for _, lr := range m.live {
		n += lr.packets
	}
	return n
}

// pause stops installs (flush below, then resume with the new epoch).
// The caller holds e.mu.
func (m *regionMgr) pause() {
	m.mu.Lock()
	m.epoch = 0
	m.mu.Unlock()
}

// resume lets installs from snapshots of epoch in.
func (m *regionMgr) resume(epoch uint64) {
	m.mu.Lock()
	m.epoch = epoch
	m.mu.Unlock()
}

// flush removes every element (the counters read first, for the trace)
// and renders the chains for spec, in one transaction. Installs must be
// paused. If the table cannot be replaced it is removed (ok false: no
// regions until the next flush); if that fails too, the elements may
// still be in the kernel, and flush returns the error.
func (m *regionMgr) flush(spec RegionSpec, why string) (ok bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.e.now()
	if len(m.live) > 0 {
		m.readCounters(now)
	}
	made := true
	if err := m.k.Reset(&spec); err != nil {
		m.logErr("replacing the deny-region table", err)
		if rerr := m.k.Remove(); rerr != nil {
			// The table (and the elements in it) is as it was.
			m.e.stats.RegionErrors.Add(1)
			return false, errors.Join(err, rerr)
		}
		made = false
	}
	m.reset, m.spec = made, spec
	for _, lr := range m.live {
		m.forget(lr)
		m.traceEnd(lr, now, why)
	}
	m.e.stats.RegionFlushes.Add(1)
	m.e.stats.RegionsLive.Store(0)
	m.e.stats.RegionPackets.Store(m.packets())
	return m.reset, nil
}

// repair re-creates the table when someone else changed it.
func (m *regionMgr) repair() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.reset {
		return
	}
	drift, err := m.k.Drift()
	if err != nil {
		m.logErr("checking the deny-region table", err)
		return
	}
	if drift == "" {
		return
	}
	now := m.e.now()
	if err := m.k.Reset(&m.spec); err != nil {
		m.logErr("restoring the deny-region table", err)
		return
	}
	for _, lr := range m.live {
		m.forget(lr)
		m.traceEnd(lr, now, "repaired")
	}
	n := m.e.stats.RegionRepairs.Add(1)
	m.e.stats.RegionsLive.Store(0)
	m.e.log.Warn("deny-region table changed by someone else; restored (empty)", "drift", drift, "repairs", n)
}

// stop writes the trace lines of the elements still installed (they stay
// in the kernel until their timeout).
func (m *regionMgr) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.epoch = 0
	if len(m.live) == 0 {
		return
	}
	now := m.e.now()
	m.readCounters(now)
	for _, lr := range m.live {
		m.forget(lr)
		m.traceEnd(lr, now, "stopped")
	}
}

// traceEnd writes the one trace line of an element.
func (m *regionMgr) traceEnd(lr *liveRegion, now time.Time, end string) {
	m.e.stats.RegionEnded.Add(1)
	t, ok := m.e.opt.Tracer.(RegionTracer)
	if !ok {
		return
	}
	t.Region(RegionInfo{Installed: lr.installed, Ended: now, End: end, Gen: lr.gen, Hash: lr.hash,
		Stage: lr.el.Stage.String(), In: lr.in, Out: lr.out, Set: regionSetName(&lr.el), Box: elemBox(&lr.el).String(),
		Verdict: lr.verdict, Endpoint: lr.endpoint, Tier: lr.tier, Policy: lr.policy, Rule: lr.d.Rule,
		Reason: lr.d.Reason.String(), Packets: lr.packets, Bytes: lr.bytes})
}

// RegionInfo is one kernel deny region's life, for the audit trace: one
// line when it ends.
type RegionInfo struct {
	Installed, Ended time.Time
	// End: "expired" (its TTL), "flushed" (a reload), "rebound" (the
	// interface bindings changed), "repaired" (someone else changed the
	// table), "gone" (someone else removed the element), "stopped" (the
	// daemon stopped; the element stays until the kernel's timeout).
	End      string
	Gen      uint64
	Hash     string
	Stage    string
	In, Out  string
	Set      string // stage/family/kind
	Box      string // the element as a region of packet space
	Verdict  string // DROP or REJECT
	Endpoint string
	Tier     string
	Policy   string
	Rule     int32
	Reason   string
	Packets  uint64 // dropped by the element (read at most 100 µs before it ended)
	Bytes    uint64
}

// RegionTracer is implemented by Tracers that record deny regions.
type RegionTracer interface {
	Region(ev RegionInfo)
}

// regionSetName names an element's set for people.
func regionSetName(el *RegionElem) string {
	f := "ip"
	if el.Fam == 6 {
		f = "ip6"
	}
	return el.Stage.String() + "/" + f + "/" + el.Kind.String()
}

// decisionNames returns the endpoint, tier and policy names of d.
func (s *snapshot) decisionNames(d *policy.Decision) (ep, tier, pol string) {
	if s.eper != nil {
		if d.Endpoint != policy.NoEndpoint {
			ep = s.eper.EndpointName(d.Endpoint)
		}
	} else if d.Endpoint >= 0 && int(d.Endpoint) < len(s.epName) {
		ep = s.epName[d.Endpoint]
	}
	if d.Tier != policy.NoIndex && s.tierer != nil {
		tier = s.tierer.TierName(d.Tier)
	}
	if d.Policy != policy.NoIndex && s.cfg != nil {
		if d.Reason == policy.ReasonProfile {
			if int(d.Policy) < len(s.cfg.Profiles) {
				pol = s.cfg.Profiles[d.Policy].Name
			}
		} else if int(d.Policy) < len(s.cfg.Policies) {
			pol = s.cfg.Policies[d.Policy].Name
		}
	}
	return ep, tier, pol
}
