package analysis

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
)

// Flow is a connection through (or to, or from) the gateway as its first
// original-direction packet shows it.
type Flow struct {
	Path policy.Path     // interfaces, local ends, the DNAT applied
	Pkt  classify.Packet // before DNAT
	// Live: the flow is in the conntrack table with nfgate's decided bits,
	// so a reload marks it for re-check.
	Live bool
	// Count is how many records (conntrack entries, trace lines, packets)
	// were merged into this flow.
	Count int
	// Guessed says what about the path had to be assumed ("" when nothing).
	Guessed string
}

// FlowChange is a flow whose outcome differs under the new policy.
type FlowChange struct {
	Flow
	Old, New policy.Trace
	// Cut: the new policy drops the flow at a stage a reload's re-check
	// evaluates (preDNAT, input, output, forward) and the flow is live:
	// the re-check will cut it (delete its conntrack entry) when its next
	// packet arrives.
	Cut bool
	// Blocked: the new policy's untracked (doNotTrack) stage drops the
	// flow's packets. That needs no re-check: every packet is evaluated
	// there, so it is not among the reload's cut flows.
	Blocked bool
}

// Decider is the stage decision that gives a trace its outcome: the
// stage that dropped, else the last filter stage, else the last stage.
func Decider(t policy.Trace) (policy.StageTrace, bool) {
	if len(t.Stages) == 0 {
		return policy.StageTrace{}, false
	}
	for _, s := range t.Stages {
		if s.Decision.Verdict == policy.Drop {
			return s, true
		}
	}
	return t.Stages[len(t.Stages)-1], true
}

// RuleCount counts changed flows by the rule (or reason) that decides
// them under one of the policies.
type RuleCount struct {
	Stage  string `json:"stage"`
	Tier   string `json:"tier,omitempty"`
	Policy string `json:"policy,omitempty"`
	Rule   int32  `json:"rule"`
	Reason string `json:"reason"`
	// Verdict is the outcome the rule gives.
	Verdict string `json:"verdict"`
	Flows   int    `json:"flows"`
}

// ImpactReport is what a policy change does to a set of flows.
type ImpactReport struct {
	Flows   int // flows examined (after merging)
	Records int // records read
	Live    int // of the flows, live ones (re-checked by a reload)
	Changed []FlowChange
	Cut     int // live flows the reload's re-check will cut
	Blocked int // flows the untracked stage will drop
	// ByNewRule and ByOldRule count the changed flows by the rule that
	// decides them under the new and the old policy, most first.
	ByNewRule, ByOldRule []RuleCount
}

// Impact walks every flow through both programs (the same evaluation the
// engine does, NEW packets: a reload's re-check evaluates an established
// flow's next packet as new) and reports the flows whose outcome changes.
func Impact(old, new *policy.Program, flows []Flow) *ImpactReport {
	r := &ImpactReport{Flows: len(flows)}
	type key struct {
		stage, tier, policy, reason, verdict string
		rule                                 int32
	}
	byNew, byOld := map[key]int{}, map[key]int{}
	count := func(m map[key]int, p *policy.Program, t policy.Trace) {
		s, ok := Decider(t)
		if !ok {
			m[key{stage: "-", verdict: t.Final.String(), rule: policy.NoIndex, reason: "not-policed"}]++
			return
		}
		d := p.Describe(s.Decision)
		m[key{s.Stage.String(), d.Tier, d.Policy, d.Reason, t.Final.String(), d.Rule}]++
	}
	for _, f := range flows {
		r.Records += max(f.Count, 1)
		if f.Live {
			r.Live++
		}
		pkt := f.Pkt
		pkt.CT = classify.CTNew
		to, tn := old.Walk(f.Path, pkt), new.Walk(f.Path, pkt)
		c := FlowChange{Flow: f, Old: to, New: tn}
		if s, ok := Decider(tn); ok && s.Decision.Verdict == policy.Drop {
			if s.Stage == policy.StageUntracked {
				c.Blocked = true
			} else if f.Live {
				c.Cut = true
			}
		}
		if to.Final == tn.Final && !c.Cut && !c.Blocked {
			continue
		}
		if c.Cut {
			r.Cut++
		}
		if c.Blocked {
			r.Blocked++
		}
		r.Changed = append(r.Changed, c)
		count(byNew, new, tn)
		count(byOld, old, to)
	}
	list := func(m map[key]int) []RuleCount {
		var out []RuleCount
		for k, n := range m {
			out = append(out, RuleCount{Stage: k.stage, Tier: k.tier, Policy: k.policy, Rule: k.rule, Reason: k.reason, Verdict: k.verdict, Flows: n})
		}
		slices.SortFunc(out, func(a, b RuleCount) int {
			if c := cmp.Compare(b.Flows, a.Flows); c != 0 {
				return c
			}
			return cmp.Compare(fmt.Sprint(a), fmt.Sprint(b))
		})
		return out
	}
	r.ByNewRule, r.ByOldRule = list(byNew), list(byOld)
	return r
}
