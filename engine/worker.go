package engine

import (
	"context"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

// worker serves one queue. Its scratch space (decoder, packet, trace
// record, the burst's slots and verdict buffers) is reused for every packet.
//
// A burst is decided packet by packet and answered at its end, in one
// kernel call (batch verdicts for runs of equal answers, see coalesce).
// The watchdog may take over a burst whose current packet is held longer
// than the deadline; prog arbitrates, so every packet gets exactly one
// answer: the worker publishes each decision with a compare-and-swap on
// prog, the watchdog claims the burst with one (setting progTaken), and
// whoever loses stays silent. After a takeover the watchdog answers the
// packets decided so far with their decisions and the rest (the hung one
// and those behind it) with the failure-mode verdict, at once; the worker
// finishes the burst only to trace what the kernel got.
type worker struct {
	e     *Engine
	q     Queue
	stage policy.Stage
	dec   Decoder
	pkt   classify.Packet
	rec   TraceRecord

	// The burst being decided: slots[:n] hold each packet's id and queued
	// mark (written before the burst is published in prog) and its answer
	// (slot i written before prog counts i+1 decided).
	slots   [MaxBurst]slot
	n       int
	ordered bool // ids follow each other: batch verdicts are exact
	seq     uint32
	// prog is seq<<32 | progBusy | progTaken | decided count.
	prog atomic.Uint64
	// start is when the decision of the packet prog's count points at
	// began (ns, e.now); the watchdog measures the deadline from it.
	start atomic.Int64
	// answer serialises a burst's answer: the worker's at the burst's end
	// or the watchdog's takeover, which holds it while it sends, so the
	// worker's next batch verdict cannot overtake (and cover) its answers.
	answer sync.Mutex
	vbuf   [MaxBurst]Verdict // the worker's answers
	wslots [MaxBurst]slot    // the watchdog's copy of a taken burst
	wbuf   [MaxBurst]Verdict // the watchdog's answers
	// lastID is the last packet id read (the kernel's ids start at 1).
	lastID uint32
	one    [1]Packet // single-packet bursts (tests)
	oneB   Burst

	// busy is the arrival time (ns) of the burst being handled, 0 when
	// idle; handled counts packets handled. Both feed Readers (liveness).
	busy    atomic.Int64
	handled atomic.Uint64
	phase   atomic.Uint64 // odd while a burst is decided and answered: Swap waits for the answer
	// The decision to trace once the verdict is settled (tsnap nil: none).
	tsnap *snapshot
	td    policy.Decision
	tnote string
	scope DenyScope // of the packet being decided
	// The last interface pair's bindings in snapshot bs.
	bs        *snapshot
	bIn, bOut uint32
	inB, outB policy.Binding
}

// slot is one packet of a burst.
type slot struct {
	id    uint32
	mark  uint32 // as queued
	nmark uint32 // answer: new mark
	act   Action // answer: verdict
}

const (
	progBusy  = 1 << 31
	progTaken = 1 << 30
	progCount = 1<<16 - 1
)

// burst decides and answers the packets of one read, MaxBurst at a time.
func (w *worker) burst(b *Burst) {
	if b.VerdictErrs > 0 {
		w.e.stats.VerdictErr.Add(uint64(b.VerdictErrs))
	}
	ps := b.Packets
	for len(ps) > 0 {
		n := min(len(ps), MaxBurst)
		w.run(ps[:n])
		ps = ps[n:]
	}
}

// handle decides and answers one packet (a burst of one).
func (w *worker) handle(p *Packet) {
	w.one[0] = *p
	w.oneB.Packets = w.one[:]
	w.burst(&w.oneB)
	w.one[0].Payload = nil
}

// run decides ps (at most MaxBurst) and answers them, exactly once each.
func (w *worker) run(ps []Packet) {
	e := w.e
	n := len(ps)
	wall := e.now() // for liveness and trace lines
	t0 := e.nanos()
	w.ordered = w.track(ps)
	for i := range ps {
		w.slots[i] = slot{id: ps[i].ID, mark: ps[i].Mark}
	}
	w.n = n
	w.seq++
	base := uint64(w.seq)<<32 | progBusy
	e.stats.Queued[w.stage].Add(uint64(n))
	w.busy.Store(wall.UnixNano())
	w.phase.Add(1) // odd: Swap waits for this burst's answer
	w.start.Store(t0)
	w.prog.Store(base)
	late := false
	for i := range ps {
		p := &ps[i]
		a, mark := w.decideSafe(p)
		if !late {
			w.slots[i].act, w.slots[i].nmark = a, mark
		}
		tn := e.nanos() // the packet path's one clock read
		e.stats.observe(tn - t0)
		w.start.Store(tn)
		// Publish the answer; failing means the watchdog took the burst
		// over before this packet was decided: it got the failure verdict.
		if !late && !w.prog.CompareAndSwap(base|uint64(i), base|uint64(i+1)) {
			late = true
		}
		if w.tsnap != nil {
			note := w.tnote
			if late {
				note = "deadline"
			}
			w.trace(w.tsnap, p, w.td, note, late, wall.Add(time.Duration(tn-t0)))
		}
		w.tsnap = nil
	}
	// An idle reader must not keep an old generation alive: drop the
	// cached bindings' snapshot (one bind lookup per burst to refill).
	w.bs = nil
	w.answer.Lock()
	if !late && w.prog.CompareAndSwap(base|uint64(n), 0) {
		vs := coalesce(w.slots[:n], w.ordered, w.vbuf[:0])
		if err := w.q.SetVerdicts(vs); err != nil {
			e.stats.VerdictErr.Add(uint64(n))
		}
	} else {
		w.prog.Store(0) // the watchdog answered (it held the lock while sending)
	}
	w.answer.Unlock()
	w.phase.Add(1)
	w.handled.Add(uint64(n))
	w.busy.Store(0)
}

// track reports whether the ids of ps follow the last id read in serial
// order (the kernel numbers a queue's packets 1, 2, ...; batch verdicts are
// only exact then) and counts the ids skipped: packets the kernel numbered
// but could not deliver because the socket buffer was full (dropped, or
// accepted in fail-open mode).
func (w *worker) track(ps []Packet) bool {
	ok := true
	for i := range ps {
		id := ps[i].ID
		switch d := int32(id - w.lastID); {
		case d <= 0:
			ok = false
		case d > 1:
			w.e.stats.Undelivered.Add(uint64(d - 1))
		}
		w.lastID = id
	}
	return ok
}

// coalesce appends the answers for a whole burst (every packet read and
// not yet answered, in the order read) to vs: one verdict per run of equal
// action and mark, a batch verdict at the run's last id for a run longer
// than one. The kernel applies a batch verdict to every packet still
// waiting whose id is not after it; since every earlier packet was answered
// before (earlier bursts, earlier messages of this call, which the kernel
// handles in order), that is exactly the run. With ids out of order every
// packet gets its own verdict.
func coalesce(ss []slot, ordered bool, vs []Verdict) []Verdict {
	for i := 0; i < len(ss); i++ {
		j := i
		if ordered {
			for j+1 < len(ss) && ss[j+1].act == ss[i].act && ss[j+1].nmark == ss[i].nmark {
				j++
			}
		}
		vs = append(vs, Verdict{ID: ss[j].id, Action: ss[i].act, Mark: ss[i].nmark, Batch: j > i})
		i = j
	}
	return vs
}

// checkDeadline takes over the burst if its current packet has been held
// longer than the deadline: it answers the packets decided so far with
// their decisions and the others with the failure-mode verdict, now.
func (w *worker) checkDeadline(now int64) {
	e := w.e
	p := w.prog.Load()
	if p&progBusy == 0 || p&progTaken != 0 {
		return
	}
	s := w.start.Load()
	if w.prog.Load() != p || now-s < int64(e.rt.Deadline) {
		return // progress, or not late yet
	}
	w.answer.Lock()
	defer w.answer.Unlock()
	if !w.prog.CompareAndSwap(p, p|progTaken) {
		return
	}
	d, n := int(p&progCount), w.n
	ss := w.wslots[:n]
	copy(ss[:d], w.slots[:d])
	for i := d; i < n; i++ {
		// Not the whole slot: the worker may be writing this one's answer.
		id, mark := w.slots[i].id, w.slots[i].mark
		a, nmark := e.failVerdict(mark)
		ss[i] = slot{id: id, mark: mark, act: a, nmark: nmark}
	}
	e.stats.Deadline.Add(uint64(n - d))
	if err := w.q.SetVerdicts(coalesce(ss, w.ordered, w.wbuf[:0])); err != nil {
		e.stats.VerdictErr.Add(uint64(n))
	}
}

// watchdog answers, with the failure-mode verdict, any packet a worker has
// held longer than the deadline. Exactly one of the two answers wins.
func (e *Engine) watchdog(ctx context.Context) {
	period := e.rt.Deadline / 4
	if period < time.Millisecond {
		period = time.Millisecond
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.CheckDeadlines()
		}
	}
}

// nanos is the engine's clock in nanoseconds for timing decisions: the
// monotonic clock alone (one vDSO read, half the cost of time.Now) unless
// Options.Now replaced the clock (tests), which it then follows.
func (e *Engine) nanos() int64 {
	if e.mono {
		return Nanotime()
	}
	return e.now().UnixNano()
}

var clockBase = time.Now()

// Nanotime is the engine's monotonic clock: nanoseconds since the package
// was initialised, one read of the monotonic clock (time.Now reads the wall
// clock too). Give it to anything timed per packet, such as the deny cache.
func Nanotime() int64 { return int64(time.Since(clockBase)) }

// CheckDeadlines runs one watchdog pass (exported for tests).
func (e *Engine) CheckDeadlines() {
	now := e.nanos()
	e.wmu.Lock()
	ws := e.workers
	e.wmu.Unlock()
	for _, w := range ws {
		w.checkDeadline(now)
	}
}

// failVerdict is the failure-mode answer: closed drops, open hands the
// packet to the host's own rules as if nfgate were absent.
func (e *Engine) failVerdict(mark uint32) (Action, uint32) {
	if e.rt.FailureMode == config.FailOpen {
		return NfRepeat, mark | e.marks.Pass
	}
	return NfDrop, mark
}

// decideSafe decides p; a panic in evaluation costs this packet (the
// failure-mode verdict, counted), not the daemon and every queue.
func (w *worker) decideSafe(p *Packet) (a Action, mark uint32) {
	w.tsnap = nil
	defer func() {
		if r := recover(); r != nil {
			w.tsnap = nil
			a, mark = w.recovered(r, p)
		}
	}()
	return w.decide(p)
}

// recovered logs and counts a panic and returns the failure-mode verdict.
func (w *worker) recovered(r any, p *Packet) (Action, uint32) {
	e := w.e
	if n := e.stats.Panics.Add(1); n <= 10 {
		e.log.Error("internal error while deciding a packet; failure-mode verdict given", "panic", r,
			"stage", w.stage.String(), "queue", w.q.Num(), "stack", string(debug.Stack()))
	}
	return e.failVerdict(p.Mark)
}

// decide returns the kernel verdict and new mark for p. It allocates nothing.
func (w *worker) decide(p *Packet) (Action, uint32) {
	e := w.e
	st := w.stage
	m := e.marks

	pkt := &w.pkt
	pkt.CT = classify.CTNew
	if st == policy.StageUntracked {
		pkt.CT = classify.CTUntracked
	}
	w.dec.Decode(p.Payload, pkt)
	pkt.CT = classify.CTNew
	if st == policy.StageUntracked {
		pkt.CT = classify.CTUntracked
	}

	s := e.cur.Load()
	d, policed, cached := w.evaluate(s, p, pkt)
	if ns := e.cur.Load(); ns != s {
		// A reload went live while this packet was being decided. Its
		// re-check pass cannot see this flow (the conntrack entry of a
		// queued first packet is not confirmed yet), so decide again
		// with the new policy (Swap waits for this answer).
		s = ns
		d, policed, cached = w.evaluate(s, p, pkt)
	}
	if policed && !cached && st != policy.StageUntracked && p.Mark&m.Recheck == 0 && d.Verdict != policy.Drop &&
		e.cutmem.remembers() && e.cutmem.has(pkt, e.nanos()) {
		// A new packet of a flow a re-check cut (either orientation):
		// it stays cut (cutmem.go).
		d = policy.Decision{Verdict: policy.Drop, Reason: policy.ReasonCutFlow, Endpoint: d.Endpoint,
			Tier: policy.NoIndex, Policy: policy.NoIndex, Rule: policy.NoIndex}
	}
	if cached {
		e.stats.DenyHits.Add(1)
		e.stats.Dropped[st].Add(1)
		e.stats.verdict(st, policy.Drop, d.Reason)
		w.tsnap, w.td, w.tnote = s, d, "deny-cache"
		// As the first packet was answered: REJECT under a REJECT deny action.
		return verdictFor(m, st, p.Hook, policy.Drop, s.reject, p.Mark)
	}
	note := ""
	switch {
	case d.Reason == policy.ReasonMalformed && p.Truncated && truncation(pkt.Reason):
		// The headers did not fit in the queue's copy range: nfgate cannot
		// match the packet, and the sender chose its header chain, so it
		// is dropped (both failure modes), as a malformed one would be.
		e.stats.Truncated.Add(1)
		note = "truncated-copy"
	case d.Reason == policy.ReasonMalformed:
		e.stats.Malformed.Add(1)
		if pkt.Reason == classify.ReasonRoutingHeader0 {
			e.stats.RoutingHeader0.Add(1)
		}
		note = pkt.Reason.String()
	case !policed:
	case d.Reason == policy.ReasonCutFlow:
		e.stats.CutFlowDrops.Add(1)
		note = "cut-flow"
	default:
		// A denial the kernel can take over (regionmgr.go) is not cached
		// here: the flow's later packets die in the kernel, and an empty
		// deny cache is not looked up at all. The installer caches what it
		// cannot install.
		offered := d.Verdict == policy.Drop && e.rg != nil && p.Mark&m.Recheck == 0 && w.offerRegion(s, p, pkt, &d)
		if d.Verdict == policy.Drop && e.opt.Deny != nil && !offered {
			e.opt.Deny.Add(w.scope, pkt, DenyEntry{Gen: s.gen, Stage: st, Reason: d.Reason, Tier: d.Tier, Policy: d.Policy, Rule: d.Rule})
		}
		if d.Verdict == policy.Drop && p.Mark&m.Recheck != 0 {
			// A flow the new policy denies: cut it.
			e.stats.Cut.Add(1)
			note = "recheck-cut"
			select {
			case e.cuts <- w.tuple():
			default:
				e.stats.CutErr.Add(1)
			}
		}
	}
	a, mark := verdictFor(m, st, p.Hook, d.Verdict, s.reject, p.Mark)
	if d.Verdict == policy.Accept && st == policy.StageOutput && p.Hook == HookPostrouting {
		// DNAT'd local output, judged in mangle POSTROUTING: Calico's
		// Allow there only returns (the host's filter OUTPUT rules have
		// decided), so the verdict is NONE, as explain says; the kernel
		// remembers the decision (OutDone) and its chain returns.
		d.Verdict, d.AcceptMark = policy.None, false
	}
	e.stats.verdict(st, d.Verdict, d.Reason)
	s.hits.add(d)
	switch d.Verdict {
	case policy.Accept:
		e.stats.Accepted[st].Add(1)
	case policy.Drop:
		e.stats.Dropped[st].Add(1)
	default:
		e.stats.None[st].Add(1)
	}
	if pkt.Class == classify.Fragment {
		e.stats.Fragments.Add(1)
		if note == "" {
			note = "fragment"
		}
	}
	w.tsnap, w.td, w.tnote = s, d, note
	return a, mark
}

// evaluate decides the decoded packet with snapshot s, without side
// effects. policed: an endpoint governs the packet at this stage; cached:
// the deny cache answered (d is its drop).
func (w *worker) evaluate(s *snapshot, p *Packet, pkt *classify.Packet) (d policy.Decision, policed, cached bool) {
	e := w.e
	st := w.stage
	m := e.marks
	// Bindings of the interface pair: a queue's packets mostly come from
	// the same pair, so the last lookup is kept (per snapshot).
	if s != w.bs || p.InIf != w.bIn || p.OutIf != w.bOut {
		w.bs, w.bIn, w.bOut = s, p.InIf, p.OutIf
		w.inB, w.outB = s.bind(p.InIf), s.bind(p.OutIf)
	}
	inB, outB := &w.inB, &w.outB
	d = policy.Decision{Verdict: policy.None, Reason: policy.ReasonNotPoliced, Endpoint: policy.NoEndpoint,
		Tier: policy.NoIndex, Policy: policy.NoIndex, Rule: policy.NoIndex}
	// sc is everything besides the packet the decision depends on.
	sc := DenyScope{Stage: st, In: policy.NoEndpoint, Out: policy.NoEndpoint}
	ep := policy.NoEndpoint
	switch st {
	case policy.StageUntracked:
		sc.Dir = policy.Ingress
		ep = inB.Untracked
		if p.Hook == HookOutput {
			sc.Dir, ep = policy.Egress, outB.Untracked
		}
		sc.In = ep
	case policy.StagePreDNAT:
		ep = inB.PreDNAT
		sc.In = ep
	case policy.StageInput:
		ep = inB.Filter
		sc.Dir, sc.In = policy.Ingress, ep
	case policy.StageOutput:
		ep = outB.Filter
		sc.Dir, sc.In = policy.Egress, ep
	case policy.StageForward:
		ep = inB.ForwardIn
		if ep == policy.NoEndpoint {
			ep = outB.Filter
		}
		sc.In, sc.Out, sc.Accepted = inB.ForwardIn, outB.Filter, p.Mark&m.Accepted != 0
	}
	w.scope = sc
	switch {
	case ep == policy.NoEndpoint:
		// Not policed (the hooks and the interface map disagree for a
		// moment): hand the packet to the host's rules.
		return d, false, false
	case pkt.Class == classify.Malformed:
		// A policed interface never lets through what it cannot match.
		return policy.Decision{Verdict: policy.Drop, Reason: policy.ReasonMalformed, Endpoint: ep,
			Tier: policy.NoIndex, Policy: policy.NoIndex, Rule: policy.NoIndex}, true, false
	}
	if e.opt.Deny != nil && p.Mark&m.Recheck == 0 {
		if de, ok := e.opt.Deny.Lookup(sc, pkt, s.gen); ok && de.Gen == s.gen {
			return policy.Decision{Verdict: policy.Drop, Reason: de.Reason, Endpoint: ep, Tier: de.Tier, Policy: de.Policy, Rule: de.Rule}, true, true
		}
	}
	switch st {
	case policy.StageUntracked:
		d = s.pol.Untracked(ep, sc.Dir, pkt)
	case policy.StagePreDNAT:
		d = s.pol.PreDNAT(ep, pkt)
	case policy.StageInput, policy.StageOutput:
		d = s.pol.Local(ep, sc.Dir, pkt)
	case policy.StageForward:
		d = s.pol.Forward(sc.In, sc.Out, sc.Accepted, pkt)
	}
	return d, true, false
}

// truncation reports whether a decoder reason means "ran out of bytes".
func truncation(r classify.Reason) bool {
	return r == classify.ReasonTruncatedIP || r == classify.ReasonTruncatedExtHeader || r == classify.ReasonTruncatedL4
}

// verdictFor maps a stage decision to the kernel verdict and mark (see Marks).
func verdictFor(m Marks, st policy.Stage, hook uint8, v policy.Verdict, reject bool, mark uint32) (Action, uint32) {
	switch st {
	case policy.StageUntracked:
		switch v {
		case policy.Accept:
			return NfRepeat, mark | m.Accepted
		case policy.Drop:
			return NfDrop, mark
		}
		return NfRepeat, mark | m.Pass
	case policy.StagePreDNAT:
		switch v {
		case policy.Accept:
			return NfRepeat, mark | m.PreDone | m.Accepted
		case policy.Drop:
			return NfDrop, mark
		}
		return NfRepeat, mark | m.PreDone
	case policy.StageInput, policy.StageOutput:
		done := m.InDone
		if st == policy.StageOutput {
			done = m.OutDone
		}
		switch v {
		case policy.Accept:
			return NfRepeat, mark | done
		case policy.Drop:
			if reject && hook != HookPostrouting {
				return NfRepeat, mark | done | m.Reject
			}
			return NfDrop, mark
		}
		return NfRepeat, mark | m.Pass
	case policy.StageForward:
		switch v {
		case policy.Accept:
			return NfRepeat, mark | m.FwdDone() | m.FwdAccept()
		case policy.Drop:
			if reject {
				return NfRepeat, mark | m.FwdDone() | m.Reject
			}
			return NfDrop, mark
		}
		return NfRepeat, mark | m.FwdDone()
	}
	return NfDrop, mark
}

func (s *snapshot) bind(ifindex uint32) policy.Binding {
	if ifindex == 0 {
		return policy.NoBinding()
	}
	if b, ok := s.binds[ifindex]; ok {
		return b
	}
	return policy.NoBinding()
}

func (w *worker) tuple() FlowTuple {
	p := &w.pkt
	return FlowTuple{Family: uint8(p.Family), Proto: p.Proto, Src: p.Src, Dst: p.Dst,
		SrcPort: p.SrcPort, DstPort: p.DstPort, ICMPType: p.ICMPType, Code: p.ICMPCode}
}

var ctNames = [...]string{"new", "established", "related", "invalid", "untracked"}

// trace fills the worker's record and hands it to the tracer. late: the
// watchdog gave the failure-mode verdict before d was ready; the line
// records that verdict with d's reasons.
func (w *worker) trace(s *snapshot, p *Packet, d policy.Decision, note string, late bool, now time.Time) {
	t := w.e.opt.Tracer
	if t == nil {
		return
	}
	r := &w.rec
	r.Time = now
	r.Gen, r.Hash = s.gen, s.hash
	r.In, r.Out = s.names[p.InIf], s.names[p.OutIf]
	r.Endpoint = ""
	if s.eper != nil {
		if d.Endpoint != policy.NoEndpoint {
			r.Endpoint = s.eper.EndpointName(d.Endpoint)
		}
	} else if d.Endpoint >= 0 && int(d.Endpoint) < len(s.epName) {
		r.Endpoint = s.epName[d.Endpoint]
	}
	r.Pkt = w.pkt
	r.CT = "new"
	if int(w.pkt.CT) < len(ctNames) {
		r.CT = ctNames[w.pkt.CT]
	}
	if p.Mark&w.e.marks.Recheck != 0 {
		r.CT = "established-recheck"
	}
	r.Verdict = d.Verdict.String()
	if d.Verdict == policy.Drop && s.reject && p.Hook != HookPostrouting && w.stage >= policy.StageInput {
		r.Verdict = "REJECT"
	}
	r.Tier, r.Policy = "", ""
	if d.Tier != policy.NoIndex && s.tierer != nil {
		r.Tier = s.tierer.TierName(d.Tier)
	}
	if d.Policy != policy.NoIndex && s.cfg != nil {
		if d.Reason == policy.ReasonProfile {
			if int(d.Policy) < len(s.cfg.Profiles) {
				r.Policy = s.cfg.Profiles[d.Policy].Name
			}
		} else if int(d.Policy) < len(s.cfg.Policies) {
			r.Policy = s.cfg.Policies[d.Policy].Name
		}
	}
	if late {
		r.Verdict = "DROP"
		if w.e.rt.FailureMode == config.FailOpen {
			r.Verdict = "NONE"
		}
	}
	r.Rule = d.Rule
	r.Reason = d.Reason.String()
	r.Logged = d.Logged
	r.Note = note
	if !t.Decision(r) {
		w.e.stats.TraceDrops.Add(1)
	}
}
