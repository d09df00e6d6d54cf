package engine

import (
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/nfgate/nfgate/policy"
)

// Counters beyond the per-stage totals, read at scrape time by
// engine/metrics. Every update is one atomic add on a fixed array slot: the
// packet path stays allocation-free.

// NumReasons bounds Stats.Verdicts' reason index (policy.Reason values;
// larger values share the last slot).
const NumReasons = 16

// NumVerdicts bounds Stats.Verdicts' verdict index (policy.Verdict values).
const NumVerdicts = 4

// LatencyBuckets is the number of decision-latency buckets: bucket i
// counts decisions that took less than 2^i ns and at least 2^(i-1) ns
// (bucket 0: 0 ns); the last bucket takes everything slower.
const LatencyBuckets = 36

func (s *Stats) verdict(st policy.Stage, v policy.Verdict, r policy.Reason) {
	ri := int(r)
	if ri >= NumReasons {
		ri = NumReasons - 1
	}
	s.Verdicts[int(st)%numStages][int(v)%NumVerdicts][ri].Add(1)
}

func (s *Stats) observe(ns int64) {
	if ns < 0 {
		ns = 0
	}
	i := bits.Len64(uint64(ns))
	if i >= LatencyBuckets {
		i = LatencyBuckets - 1
	}
	s.Latency[i].Add(1)
	s.LatencySum.Add(uint64(ns))
}

// span is where one rule list's counters start in ruleHits.n, and how many.
type span struct{ off, n int32 }

// ruleHits counts, for one policy generation, the evaluations that ended
// at each policy and profile rule. A new generation starts from zero;
// an interface refresh keeps the generation's table.
type ruleHits struct {
	cfg  *policy.Config
	pol  []span // [2*i] ingress, [2*i+1] egress of Config.Policies[i]
	prof []span // the same for Config.Profiles
	n    []atomic.Uint64
}

func newRuleHits(cfg *policy.Config) *ruleHits {
	h := &ruleHits{cfg: cfg}
	if cfg == nil {
		return h
	}
	var off int32
	add := func(in, eg []policy.Rule) []span {
		s := []span{{off, int32(len(in))}, {off + int32(len(in)), int32(len(eg))}}
		off += int32(len(in) + len(eg))
		return s
	}
	for i := range cfg.Policies {
		h.pol = append(h.pol, add(cfg.Policies[i].Ingress, cfg.Policies[i].Egress)...)
	}
	for i := range cfg.Profiles {
		h.prof = append(h.prof, add(cfg.Profiles[i].Ingress, cfg.Profiles[i].Egress)...)
	}
	h.n = make([]atomic.Uint64, off)
	return h
}

// add counts d if a policy or profile rule made it.
func (h *ruleHits) add(d policy.Decision) {
	if h == nil {
		return
	}
	var tab []span
	switch d.Reason {
	case policy.ReasonRule:
		tab = h.pol
	case policy.ReasonProfile:
		tab = h.prof
	default:
		return
	}
	var di int32
	switch d.Dir {
	case policy.Ingress:
	case policy.Egress:
		di = 1
	default:
		return
	}
	i := 2*d.Policy + di
	if d.Policy < 0 || int(i) >= len(tab) {
		return
	}
	sp := tab[i]
	if d.Rule < 0 || d.Rule >= sp.n {
		return
	}
	h.n[sp.off+d.Rule].Add(1)
}

// RuleHit is one rule's counter in the live generation.
type RuleHit struct {
	Kind   string // "policy" or "profile"
	Tier   string // the policy's tier ("default" when unset); "" for profiles
	Name   string // policy or profile name
	Dir    string // "ingress" or "egress"
	Rule   int    // index in the policy's rule list for Dir
	Action string // Allow, Deny, Log, Pass
	Hits   uint64 // evaluations that ended at this rule (deny-cache answers not included)
}

// RuleHits returns the live generation's per-rule counters, one entry per
// rule of every policy and profile. They restart from zero with each new
// generation.
func (e *Engine) RuleHits() []RuleHit {
	s := e.cur.Load()
	if s == nil || s.hits == nil || s.hits.cfg == nil {
		return nil
	}
	h := s.hits
	out := make([]RuleHit, 0, len(h.n))
	emit := func(kind, tier, name string, sp []span, i int, in, eg []policy.Rule) {
		for d, rules := range [2][]policy.Rule{in, eg} {
			dir := "ingress"
			if d == 1 {
				dir = "egress"
			}
			base := sp[2*i+d].off
			for r := range rules {
				out = append(out, RuleHit{Kind: kind, Tier: tier, Name: name, Dir: dir, Rule: r,
					Action: rules[r].Action.String(), Hits: h.n[base+int32(r)].Load()})
			}
		}
	}
	for i := range h.cfg.Policies {
		p := &h.cfg.Policies[i]
		tier := p.Tier
		if tier == "" {
			tier = "default"
		}
		emit("policy", tier, p.Name, h.pol, i, p.Ingress, p.Egress)
	}
	for i := range h.cfg.Profiles {
		p := &h.cfg.Profiles[i]
		emit("profile", "", p.Name, h.prof, i, p.Ingress, p.Egress)
	}
	return out
}

// ReaderStatus is one queue reader's liveness.
type ReaderStatus struct {
	Queue   uint16
	Stage   policy.Stage
	Handled uint64    // packets answered (or abandoned to the deadline watchdog)
	Busy    time.Time // when the packet being handled arrived; zero when idle
}

// Readers returns the state of every queue reader Run started.
func (e *Engine) Readers() []ReaderStatus {
	e.wmu.Lock()
	ws := e.workers
	e.wmu.Unlock()
	out := make([]ReaderStatus, len(ws))
	for i, w := range ws {
		out[i] = ReaderStatus{Queue: w.q.Num(), Stage: w.stage, Handled: w.handled.Load()}
		if b := w.busy.Load(); b != 0 {
			out[i].Busy = time.Unix(0, b)
		}
	}
	return out
}
