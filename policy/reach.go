package policy

import (
	"math"

	"github.com/nfgate/nfgate/policy/dtree"
)

// Reach: does any packet meet a rule? A chain evaluates a packet as a
// sequence of lookups (a Pass continues from a later priority), so a rule
// is met exactly when some key of its rectangles has it in that sequence.
// A search over the rule's rectangles, region by region (the regions on
// which the sequence is constant), either finds such a key or shows that
// earlier rules decide, or Pass over, every key the rule matches: then the
// rule can never match and those earlier rules shadow it.

// maxTrail bounds the lookups one evaluation records (one per Pass taken, plus one).
const maxTrail = 64

// regionTrail is chain.region, recording the terminal matcher's answers
// (priorities) in trail.
func (c *chain) regionTrail(k *dtree.Key, b *dtree.Box, trail []int32) []int32 {
	if c == nil {
		return trail
	}
	from := int32(0)
	for {
		hit := c.term.region(k, from, math.MaxInt32, b)
		if hit < 0 {
			return trail
		}
		if len(trail) < maxTrail {
			trail = append(trail, hit)
		}
		ei := c.prioEntry[hit]
		if e := &c.entries[ei]; e.kind == ePass {
			from = e.next
			continue
		}
		return trail
	}
}

// RuleReach is what a reach search found about one rule of a chain.
type RuleReach struct {
	// Met: some packet meets the rule (it decides, or Passes, for it).
	Met bool
	// Complete: the search covered every key of the rule (when Met is
	// false, the rule can never match); false when it ran out of budget.
	Complete bool
	// Shadows are the indexes (in the chain's rules) of the rules that
	// decide, or Pass over it, for the rule's keys, in the order found.
	Shadows []int
	// Witness is a key that meets the rule (when Met).
	Witness dtree.Key
}

// Reach searches, for each rule of endpoint ep's chain in slot for family
// fam (ChainRules order), whether any packet meets it, examining at most
// budget regions per rule.
func (p *Program) Reach(ep EndpointID, slot ChainSlot, fam uint8, budget int) ([]ChainRule, []RuleReach) {
	if !p.valid(ep) || int(slot) >= numChains {
		return nil, nil
	}
	src := newRuleSource(p)
	c := p.chainOf(ep, int(slot), famIdx(fam))
	rules := src.rules(c, fam)
	return rules, reach(c, rules, fam, budget)
}

// ReachAll is Reach for every distinct chain of the program: the chains
// of every endpoint, slot and family, each computed once (endpoints often
// share chains). visit gets each chain's rules and findings with the
// endpoints and slots that use it.
func (p *Program) ReachAll(budget int, visit func(uses []ChainUse, fam uint8, rules []ChainRule, reach []RuleReach)) {
	src := newRuleSource(p)
	type key struct {
		c   *chain
		fam uint8
	}
	uses := map[key][]ChainUse{}
	var order []key
	for ep := range p.eps {
		for slot := range numChains {
			for fi, fam := range [2]uint8{4, 6} {
				c := p.eps[ep].c[slot][fi]
				if c == nil {
					continue
				}
				k := key{c, fam}
				if _, ok := uses[k]; !ok {
					order = append(order, k)
				}
				uses[k] = append(uses[k], ChainUse{Endpoint: EndpointID(ep), Slot: ChainSlot(slot)})
			}
		}
	}
	for _, k := range order {
		rules := src.rules(k.c, k.fam)
		visit(uses[k], k.fam, rules, reach(k.c, rules, k.fam, budget))
	}
}

// ChainUse is an endpoint and slot a chain serves.
type ChainUse struct {
	Endpoint EndpointID
	Slot     ChainSlot
}

func reach(c *chain, rules []ChainRule, fam uint8, budget int) []RuleReach {
	out := make([]RuleReach, len(rules))
	byPrio := func(prio int32) int {
		return sortSearch(len(rules), func(j int) bool { return rules[j].Last >= prio })
	}
	var stack []dtree.Box
	trail := make([]int32, 0, maxTrail)
	space := PacketSpace(fam)
	for i := range rules {
		r := &rules[i]
		if r.EndOfTier {
			// A catch-all: met unless everything is decided earlier; not
			// a rule anyone wrote, so not searched.
			out[i] = RuleReach{Met: true, Complete: true}
			continue
		}
		// Only real packets: the rule's boxes within packet space.
		stack = stack[:0]
		for _, b := range r.Boxes {
			for _, sp := range space {
				if x := b; x.Intersect(&sp.Box) {
					stack = append(stack, x)
				}
			}
		}
		n := 0
		res := RuleReach{Complete: true}
		for len(stack) > 0 {
			if n >= budget {
				res.Complete = false
				break
			}
			w := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			k := w.Low()
			b := w
			trail = c.regionTrail(&k, &b, trail[:0])
			n++
			met := false
			shadow := -1
			for _, h := range trail {
				if h >= r.First && h <= r.Last {
					met = true
					break
				}
				j := byPrio(h)
				if h > r.Last {
					break // decided (or passed to) after it: not met here, and nothing earlier decided
				}
				shadow = j
				if rules[j].Action == Pass && rules[j].Next <= i {
					continue // a Pass that lands before it: the search goes on
				}
			}
			if met {
				res.Met, res.Witness = true, k
				break
			}
			if shadow >= 0 && !containsInt(res.Shadows, shadow) {
				res.Shadows = append(res.Shadows, shadow)
			}
			stack = dtree.Subtract(w, b, stack)
		}
		out[i] = res
	}
	return out
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
