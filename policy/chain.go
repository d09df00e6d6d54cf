package policy

import (
	"github.com/nfgate/nfgate/policy/dtree"
	"github.com/nfgate/nfgate/policy/selector"
)

// A chain is one endpoint's policy for one stage, direction and family: every
// rule of every tier (and, for normal chains, every profile) in Calico order,
// compiled into one decision tree whose priorities are global positions.
// Each rule owns a run of consecutive priorities, one per rectangle. Pass
// rules are jumps: a Pass hit continues the lookup from the first priority
// after its tier (or profile). End-of-tier drops are catch-all pseudo-rules.
// Log rules live in a second tree, consulted only to set Decision.Logged.

type entryKind uint8

const (
	eAllow entryKind = iota + 1
	eDeny
	ePass
	eLog
	eEndOfTier
)

// entry is what one rule (or pseudo-rule) of a chain is.
type entry struct {
	kind    entryKind
	profile bool  // a profile rule: policy is a profile index
	tier    int32 // Program tier index, NoIndex for profiles
	policy  int32
	rule    int32
	next    int32 // for Pass: where evaluation continues
}

// slowRule is a rule too large to expand, matched exactly in order.
type slowRule struct {
	prio int32
	f    *frule
}

// matcher finds the first matching rule at or after a priority.
type matcher struct {
	tree *dtree.Tree
	slow []slowRule // sorted by prio
}

func (m *matcher) first(k *dtree.Key, from int32) int32 {
	best := int32(-1)
	if m.tree != nil {
		best = m.tree.Lookup(k, from)
	}
	for i := range m.slow {
		s := &m.slow[i]
		if s.prio < from {
			continue
		}
		if best >= 0 && s.prio >= best {
			break
		}
		if s.f.match(k) {
			return s.prio
		}
	}
	return best
}

type chain struct {
	dir       Dir
	term      matcher
	logs      matcher
	hasLogs   bool
	prioEntry []int32 // priority -> index into entries
	entries   []entry
}

// eval returns the index of the deciding entry (Allow, Deny, end-of-tier or
// a profile rule), or -1 when evaluation falls off the end; and whether a Log
// rule matched on the way.
func (c *chain) eval(k *dtree.Key) (int32, bool) {
	if c == nil {
		return -1, false
	}
	from := int32(0)
	logged := false
	for {
		hit := c.term.first(k, from)
		if c.hasLogs && !logged {
			if l := c.logs.first(k, from); l >= 0 && (hit < 0 || l < hit) {
				logged = true
			}
		}
		if hit < 0 {
			return -1, logged
		}
		ei := c.prioEntry[hit]
		if e := &c.entries[ei]; e.kind == ePass {
			from = e.next
			continue
		}
		return ei, logged
	}
}

// chainBuilder builds the chains of one Compile, one after the other,
// reusing its buffers (dtree.Build copies the rectangles it is given).
type chainBuilder struct {
	c         *chain
	x         expander
	prio      int32
	termRects []dtree.Rule
	logRects  []dtree.Rule
	fam       uint8
	entries   []addrEntry
	sels      map[*EntityRule]*selector.Selector
}

func (b *chainBuilder) add(r *Rule, e entry) {
	f, ok := factor(r, b.fam, b.entries, b.sels)
	if !ok {
		return
	}
	switch r.Action {
	case Allow:
		e.kind = eAllow
	case Deny:
		e.kind = eDeny
	case Pass:
		e.kind = ePass
	case Log:
		e.kind = eLog
	default:
		return
	}
	idx := int32(len(b.c.entries))
	b.c.entries = append(b.c.entries, e)
	dst := &b.termRects
	if e.kind == eLog {
		dst = &b.logRects
	}
	start := len(*dst)
	rects, ok := b.x.expand(&f, *dst, maxRectsPerRule)
	if !ok {
		fp := new(frule)
		*fp = f
		s := slowRule{prio: b.prio, f: fp}
		if e.kind == eLog {
			b.c.logs.slow = append(b.c.logs.slow, s)
			b.c.hasLogs = true
		} else {
			b.c.term.slow = append(b.c.term.slow, s)
		}
		b.c.prioEntry = append(b.c.prioEntry, idx)
		b.prio++
		return
	}
	*dst = rects
	for i := start; i < len(rects); i++ {
		rects[i].Priority = b.prio
		b.c.prioEntry = append(b.c.prioEntry, idx)
		b.prio++
	}
	if e.kind == eLog {
		b.c.hasLogs = b.c.hasLogs || len(rects) > start
	}
}

func (b *chainBuilder) addCatchAll(e entry) {
	max := famMax(b.fam)
	all := rng{0, dtree.NoPort}
	icmp := rng{0, dtree.NoICMP}
	b.termRects = append(b.termRects, dtree.Rule{
		Priority: b.prio,
		Src:      [2]u128{{}, max}, Dst: [2]u128{{}, max},
		Proto: rng{0, 255}, SPort: all, DPort: all, ICMPType: icmp, ICMPCode: icmp,
	})
	b.c.prioEntry = append(b.c.prioEntry, int32(len(b.c.entries)))
	b.c.entries = append(b.c.entries, e)
	b.prio++
}

// setNext points the Pass entries from index start on at the current priority.
func (b *chainBuilder) setNext(start int) {
	for i := start; i < len(b.c.entries); i++ {
		if b.c.entries[i].kind == ePass {
			b.c.entries[i].next = b.prio
		}
	}
}

// build compiles a plan for one direction and family. endOfTier arms the
// end-of-tier drop (normal and forward chains) of each tier with a policy
// that is not staged in this direction; staged policies contribute no rules.
// profiles (normal chains only) are appended after the tiers. It returns nil when nothing can match.
func (b *chainBuilder) build(cfg *Config, pl *Plan, dir Dir, fam uint8, endOfTier bool, profiles []int32) *chain {
	b.c, b.prio, b.fam = &chain{dir: dir}, 0, fam
	b.termRects, b.logRects = b.termRects[:0], b.logRects[:0]
	for _, t := range pl.Tiers {
		pols := t.Policies(dir)
		if len(pols) == 0 {
			continue
		}
		start := len(b.c.entries)
		enforced := false // Felix's endOfTierDrop: a non-staged policy in this direction
		for _, pi := range pols {
			p := &cfg.Policies[pi]
			if p.Staged {
				continue // never rendered
			}
			enforced = true
			rules := p.Ingress
			if dir == Egress {
				rules = p.Egress
			}
			for ri := range rules {
				b.add(&rules[ri], entry{tier: t.Tier, policy: pi, rule: int32(ri)})
			}
		}
		if endOfTier && enforced && t.DefaultAction != TierPass {
			b.addCatchAll(entry{kind: eEndOfTier, tier: t.Tier, policy: NoIndex, rule: NoIndex})
		}
		b.setNext(start) // a Pass skips the end-of-tier drop too
	}
	for _, pi := range profiles {
		pr := &cfg.Profiles[pi]
		rules := pr.Ingress
		if dir == Egress {
			rules = pr.Egress
		}
		start := len(b.c.entries)
		for ri := range rules {
			b.add(&rules[ri], entry{profile: true, tier: NoIndex, policy: pi, rule: int32(ri)})
		}
		b.setNext(start)
	}
	if len(b.c.entries) == 0 {
		return nil
	}
	if len(b.termRects) > 0 {
		b.c.term.tree = dtree.Build(b.termRects)
	}
	if len(b.logRects) > 0 {
		b.c.logs.tree = dtree.Build(b.logRects)
	}
	return b.c
}
