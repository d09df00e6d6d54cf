package engine

import (
	"runtime/debug"
	"sync/atomic"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

// worker serves one queue. Its scratch space (decoder, packet, trace
// record) is reused for every packet.
type worker struct {
	e     *Engine
	q     Queue
	stage policy.Stage
	dec   Decoder
	pkt   classify.Packet
	rec   TraceRecord
	// inflight is 1<<32|id while a packet is being decided, else 0; the
	// watchdog and the worker race to clear it, the winner answers.
	inflight atomic.Uint64
	start    atomic.Int64
	mark     atomic.Uint32
	// busy is the arrival time (ns) of the packet being handled, 0 when
	// idle; handled counts packets handled. Both feed Readers (liveness).
	busy    atomic.Int64
	handled atomic.Uint64
	phase   atomic.Uint64 // odd while handle runs: Swap waits for the answer
	// The decision to trace once the verdict is settled (tsnap nil: none).
	tsnap *snapshot
	td    policy.Decision
	tnote string
}

// handle decides one packet and answers it exactly once: with the
// decision, or, when the watchdog answered first (deadline) or evaluation
// panicked, with the failure-mode verdict. The trace line says what the
// kernel got.
func (w *worker) handle(p *Packet) {
	e := w.e
	tag := 1<<32 | uint64(p.ID)
	w.mark.Store(p.Mark)
	start := e.now().UnixNano()
	w.busy.Store(start)
	defer func() { w.handled.Add(1); w.busy.Store(0) }()
	w.start.Store(start)
	w.inflight.Store(tag)
	w.tsnap = nil
	w.phase.Add(1) // odd while handling: Swap waits for the answer
	defer func() {
		if r := recover(); r != nil {
			w.recovered(p, tag, r)
		}
		w.phase.Add(1)
	}()
	a, mark := w.decide(p)
	e.stats.observe(e.now().UnixNano() - start)
	if !w.inflight.CompareAndSwap(tag, 0) {
		// The watchdog answered already: trace what the kernel got.
		if w.tsnap != nil {
			w.trace(w.tsnap, p, w.td, "deadline", true)
		}
		w.tsnap = nil
		return
	}
	if w.tsnap != nil {
		w.trace(w.tsnap, p, w.td, w.tnote, false)
	}
	w.tsnap = nil // an idle reader must not keep an old generation alive
	if err := w.q.SetVerdict(p.ID, a, mark); err != nil {
		e.stats.VerdictErr.Add(1)
	}
}

// recovered answers a packet whose evaluation panicked with the
// failure-mode verdict (unless the watchdog did already) and counts it: a
// bug in evaluation costs one packet, not the daemon and every queue.
func (w *worker) recovered(p *Packet, tag uint64, r any) {
	e := w.e
	if n := e.stats.Panics.Add(1); n <= 10 {
		e.log.Error("internal error while deciding a packet; failure-mode verdict given", "panic", r,
			"stage", w.stage.String(), "queue", w.q.Num(), "stack", string(debug.Stack()))
	}
	if !w.inflight.CompareAndSwap(tag, 0) {
		return
	}
	a, mark := e.failVerdict(p.Mark)
	if err := w.q.SetVerdict(p.ID, a, mark); err != nil {
		e.stats.VerdictErr.Add(1)
	}
}

// decide returns the kernel verdict and new mark for p. It allocates nothing.
func (w *worker) decide(p *Packet) (Action, uint32) {
	e := w.e
	st := w.stage
	m := e.marks
	e.stats.Queued[st].Add(1)

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
	if cached {
		e.stats.DenyHits.Add(1)
		e.stats.Dropped[st].Add(1)
		e.stats.verdict(st, policy.Drop, d.Reason)
		w.tsnap, w.td, w.tnote = s, d, "deny-cache"
		return NfDrop, p.Mark
	}
	note := ""
	switch {
	case d.Reason == policy.ReasonMalformed:
		e.stats.Malformed.Add(1)
		if pkt.Reason == classify.ReasonRoutingHeader0 {
			e.stats.RoutingHeader0.Add(1)
		}
		note = pkt.Reason.String()
	case !policed:
	default:
		if d.Verdict == policy.Drop && e.opt.Deny != nil {
			e.opt.Deny.Add(st, pkt, DenyEntry{Gen: s.gen, Stage: st, Reason: d.Reason, Tier: d.Tier, Policy: d.Policy, Rule: d.Rule})
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
	inB, outB := s.bind(p.InIf), s.bind(p.OutIf)
	d = policy.Decision{Verdict: policy.None, Reason: policy.ReasonNotPoliced, Endpoint: policy.NoEndpoint,
		Tier: policy.NoIndex, Policy: policy.NoIndex, Rule: policy.NoIndex}
	ep := policy.NoEndpoint
	switch st {
	case policy.StageUntracked:
		if p.Hook == HookOutput {
			ep = outB.Untracked
		} else {
			ep = inB.Untracked
		}
	case policy.StagePreDNAT:
		ep = inB.PreDNAT
	case policy.StageInput:
		ep = inB.Filter
	case policy.StageOutput:
		ep = outB.Filter
	case policy.StageForward:
		ep = inB.ForwardIn
		if ep == policy.NoEndpoint {
			ep = outB.Filter
		}
	}
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
		if de, ok := e.opt.Deny.Lookup(st, pkt); ok && de.Gen == s.gen {
			return policy.Decision{Verdict: policy.Drop, Reason: de.Reason, Endpoint: ep, Tier: de.Tier, Policy: de.Policy, Rule: de.Rule}, true, true
		}
	}
	switch st {
	case policy.StageUntracked:
		dir := policy.Ingress
		if p.Hook == HookOutput {
			dir = policy.Egress
		}
		d = s.pol.Untracked(ep, dir, pkt)
	case policy.StagePreDNAT:
		d = s.pol.PreDNAT(ep, pkt)
	case policy.StageInput:
		d = s.pol.Local(ep, policy.Ingress, pkt)
	case policy.StageOutput:
		d = s.pol.Local(ep, policy.Egress, pkt)
	case policy.StageForward:
		d = s.pol.Forward(inB.ForwardIn, outB.Filter, p.Mark&m.Accepted != 0, pkt)
	}
	return d, true, false
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
func (w *worker) trace(s *snapshot, p *Packet, d policy.Decision, note string, late bool) {
	t := w.e.opt.Tracer
	if t == nil {
		return
	}
	r := &w.rec
	r.Time = w.e.now()
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
