package policy

import (
	"cmp"
	"hash/maphash"
	"slices"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy/dtree"
)

// Where can two programs disagree? A stage's verdict is a function of a
// few parts: the failsafe check and one or two chains, each a first-match
// list of rules with Pass jumps. When the two programs' stages are built
// of the same parts, their chains can be aligned rule by rule (a longest
// common subsequence of rules with the same action and the same
// rectangles, Pass jumps landing at corresponding places), and a packet
// that matches no unaligned rule meets corresponding rules in both: same
// verdict. So the rectangles of the unaligned rules (and of both failsafe
// lists, when they differ) cover every packet whose verdict can change,
// and a diff only needs to search them.

// ChainRule is one rule of a compiled chain, as an analysis sees it.
type ChainRule struct {
	Action Action // Allow, Deny or Pass; an end-of-tier drop is a Deny
	// EndOfTier: the tier's default drop (Tier says which); no policy.
	EndOfTier bool
	Profile   bool  // Policy indexes Config.Profiles
	Tier      int32 // Program tier index, NoIndex for profiles
	Policy    int32 // index into Config.Policies (or Profiles), NoIndex for end of tier
	Rule      int32 // index in the policy's rules of the chain's direction
	Dir       Dir
	// Boxes are the rule's rectangles for the chain's family: exactly its
	// match set, unless Exact is false (a rule matched by the slow
	// matcher), when Boxes is one box holding it.
	Boxes []dtree.Box
	Exact bool
	// Next is, for a Pass, the index in the chain's rules where
	// evaluation continues (len(rules) at the end).
	Next int
	// First and Last are the rule's priorities in its chain (one per
	// rectangle of a rule the tree holds, one for a slow rule).
	First, Last int32
	prio        int32
}

// ChainSlot names an endpoint's chains.
type ChainSlot uint8

const (
	SlotUntrackedIn ChainSlot = iota
	SlotUntrackedOut
	SlotPreDNAT
	SlotNormalIn
	SlotNormalOut
	SlotForwardIn
	SlotForwardOut
)

// ChainRules returns the terminal rules (Allow, Deny, Pass and end-of-tier
// drops; not Log) of endpoint ep's chain in slot for family fam (4 or 6),
// in evaluation order; nil when the chain is empty.
func (p *Program) ChainRules(ep EndpointID, slot ChainSlot, fam uint8) []ChainRule {
	if !p.valid(ep) || int(slot) >= numChains {
		return nil
	}
	return newRuleSource(p).rules(p.chainOf(ep, int(slot), famIdx(fam)), fam)
}

// ruleSource turns chain entries back into rectangles, with the
// program's selector environment.
type ruleSource struct {
	p       *Program
	entries []addrEntry
	x       expander
	memo    map[memoKey][]ChainRule
}

type memoKey struct {
	c   *chain
	fam uint8
}

func newRuleSource(p *Program) *ruleSource {
	return &ruleSource{p: p, entries: addrEntries(p.cfg, p.r), memo: map[memoKey][]ChainRule{}}
}

func (s *ruleSource) rules(c *chain, fam uint8) []ChainRule {
	if c == nil {
		return nil
	}
	if out, ok := s.memo[memoKey{c, fam}]; ok {
		return out
	}
	full := dtree.FullBox(famMax(fam))
	var out []ChainRule
	firstPrio := make([]int32, len(c.entries))
	lastPrio := make([]int32, len(c.entries))
	for i := range firstPrio {
		firstPrio[i] = -1
	}
	for prio, ei := range c.prioEntry {
		if firstPrio[ei] < 0 {
			firstPrio[ei] = int32(prio)
		}
		lastPrio[ei] = int32(prio)
	}
	var rects []dtree.Rule
	for ei := range c.entries {
		e := &c.entries[ei]
		if e.kind == eLog || firstPrio[ei] < 0 {
			continue
		}
		cr := ChainRule{Profile: e.profile, Tier: e.tier, Policy: e.policy, Rule: e.rule, Dir: c.dir, prio: firstPrio[ei], Exact: true,
			First: firstPrio[ei], Last: lastPrio[ei]}
		switch e.kind {
		case eAllow:
			cr.Action = Allow
		case eDeny:
			cr.Action = Deny
		case ePass:
			cr.Action = Pass
		case eEndOfTier:
			cr.Action, cr.EndOfTier = Deny, true
			cr.Boxes = []dtree.Box{full}
			out = append(out, cr)
			continue
		}
		r := s.rule(e, c.dir)
		f, ok := factor(r, fam, s.entries, s.p.r.sels)
		if !ok {
			continue // Compile left no entry for it either
		}
		var fit bool
		rects, fit = s.x.expand(&f, rects[:0], maxRectsPerRule)
		if fit {
			for i := range rects {
				cr.Boxes = append(cr.Boxes, dtree.RuleBox(&rects[i]))
			}
			slices.SortFunc(cr.Boxes, cmpBox)
		} else {
			cr.Exact = false
			cr.Boxes = []dtree.Box{f.bound(fam)}
		}
		out = append(out, cr)
	}
	// Pass targets, as rule indexes.
	for i := range out {
		if out[i].Action != Pass {
			continue
		}
		next := c.entries[c.prioEntry[out[i].prio]].next
		out[i].Next = sortSearch(len(out), func(j int) bool { return out[j].prio >= next })
	}
	s.memo[memoKey{c, fam}] = out
	return out
}

func sortSearch(n int, f func(int) bool) int {
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !f(m) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// rule returns the policy or profile rule an entry was compiled from.
func (s *ruleSource) rule(e *entry, dir Dir) *Rule {
	cfg := s.p.cfg
	var in, eg []Rule
	if e.profile {
		in, eg = cfg.Profiles[e.policy].Ingress, cfg.Profiles[e.policy].Egress
	} else {
		in, eg = cfg.Policies[e.policy].Ingress, cfg.Policies[e.policy].Egress
	}
	if dir == Egress {
		return &eg[e.rule]
	}
	return &in[e.rule]
}

// bound is a box holding every key the factored rule matches.
func (f *frule) bound(fam uint8) dtree.Box {
	b := dtree.FullBox(famMax(fam))
	b.Proto = [2]uint32{f.protos[0][0], f.protos[len(f.protos)-1][1]}
	if len(f.icmp) > 0 {
		lo, hi := f.icmp[0], f.icmp[0]
		for _, ic := range f.icmp {
			lo[0][0], lo[1][0] = min(lo[0][0], ic[0][0]), min(lo[1][0], ic[1][0])
			hi[0][1], hi[1][1] = max(hi[0][1], ic[0][1]), max(hi[1][1], ic[1][1])
		}
		b.ICMPType, b.ICMPCode = [2]uint32{lo[0][0], hi[0][1]}, [2]uint32{lo[1][0], hi[1][1]}
	}
	for i, sd := range []*side{&f.src, &f.dst} {
		addrF, portF := bSrc, bSPort
		if i == 1 {
			addrF, portF = bDst, bDPort
		}
		if len(sd.addrs) > 0 {
			b.SetField(addrF, sd.addrs[0].lo, sd.addrs[len(sd.addrs)-1].hi)
		}
		if sd.hasPorts && len(sd.named) == 0 && len(sd.ports) > 0 {
			b.SetField(portF, small(sd.ports[0][0]), small(sd.ports[len(sd.ports)-1][1]))
		}
	}
	return b
}

func cmpBox(a, b dtree.Box) int {
	for f := range dtree.NumFields {
		alo, ahi := a.Field(f)
		blo, bhi := b.Field(f)
		if c := cmpU128(alo, blo); c != 0 {
			return c
		}
		if c := cmpU128(ahi, bhi); c != 0 {
			return c
		}
	}
	return 0
}

func cmpU128(a, b u128) int {
	if c := cmp.Compare(a.Hi, b.Hi); c != 0 {
		return c
	}
	return cmp.Compare(a.Lo, b.Lo)
}

// part is one component of a stage's evaluation, for DiffCover.
type stagePart struct {
	kind  uint8 // partConst, partFailsafe, partChain
	v     Verdict
	mark  bool
	boxes []dtree.Box // failsafe rectangles
	chain []ChainRule
}

const (
	partConst = iota
	partFailsafe
	partChain
)

// shape lists the parts a stage call evaluates, in order: constants end
// it (a not-policed stage, a conntrack verdict, a forward default allow
// counts as a chain that accepts everything).
func (s *ruleSource) shape(c StageCall, fam uint8) []stagePart {
	p := s.p
	fi := famIdx(fam)
	konst := func(v Verdict, mark bool) []stagePart { return []stagePart{{kind: partConst, v: v, mark: mark}} }
	chain := func(ep EndpointID, slot int) stagePart {
		return stagePart{kind: partChain, chain: s.rules(p.chainOf(ep, slot, fi), fam)}
	}
	fs := func(dir Dir, raw bool) stagePart {
		return stagePart{kind: partFailsafe, boxes: p.failsafeBoxes(dir, raw, fam)}
	}
	established := c.CT == classify.CTEstablished || c.CT == classify.CTRelated
	switch c.Stage {
	case StageUntracked:
		if !p.valid(c.Endpoint) || p.r.endpoints[c.Endpoint].Plans[PlanUntracked].Empty() {
			return konst(None, false)
		}
		slot := chUntrackedIn
		if c.Dir == Egress {
			slot = chUntrackedOut
		}
		return []stagePart{fs(c.Dir, true), chain(c.Endpoint, slot)}
	case StagePreDNAT:
		switch {
		case !p.valid(c.Endpoint) || p.r.endpoints[c.Endpoint].Plans[PlanPreDNAT].Empty():
			return konst(None, false)
		case established:
			return konst(None, false)
		case p.invalid(c.CT):
			return konst(Drop, false)
		}
		return []stagePart{fs(Ingress, false), chain(c.Endpoint, chPreDNAT)}
	case StageInput, StageOutput:
		dir, slot := Ingress, chNormalIn
		if c.Stage == StageOutput {
			dir, slot = Egress, chNormalOut
		}
		switch {
		case !p.valid(c.Endpoint):
			return konst(None, false)
		case established:
			return konst(Accept, false)
		case p.invalid(c.CT):
			return konst(Drop, false)
		}
		return []stagePart{fs(dir, false), chain(c.Endpoint, slot)}
	case StageForward:
		var out []stagePart
		one := func(ep EndpointID, slot int) bool {
			switch {
			case established:
				out = append(out, konst(Accept, false)...)
				return false
			case p.invalid(c.CT):
				out = append(out, konst(Drop, false)...)
				return false
			case p.r.endpoints[ep].Plans[PlanForward].Empty():
				out = append(out, stagePart{kind: partConst, v: Accept, mark: true})
				return true
			}
			out = append(out, chain(ep, slot))
			return true
		}
		if c.Accepted {
			out = append(out, stagePart{kind: partConst, v: Accept, mark: true})
		} else if p.valid(c.In) {
			if !one(c.In, chForwardIn) {
				return out
			}
		} else {
			out = append(out, stagePart{kind: partConst, v: None})
		}
		if p.valid(c.Out) {
			one(c.Out, chForwardOut)
		} else {
			out = append(out, stagePart{kind: partConst, v: None})
		}
		return out
	}
	return konst(None, false)
}

// failsafeBoxes are the rectangles of the failsafe check failsafeRegion makes.
func (p *Program) failsafeBoxes(dir Dir, raw bool, fam uint8) []dtree.Box {
	s := &p.cfg.Settings
	type list struct {
		l         []ProtoPort
		bySrcPort bool
	}
	lists := []list{{s.FailsafeInbound, false}, {s.FailsafeOutbound, true}}
	addrF := bSrc
	if dir == Egress {
		lists = []list{{s.FailsafeOutbound, false}, {s.FailsafeInbound, true}}
		addrF = bDst
	}
	if !raw {
		lists = lists[:1]
	}
	var out []dtree.Box
	for _, li := range lists {
		for _, fs := range li.l {
			r := dtree.FullBox(famMax(fam))
			if fs.Net.IsValid() {
				if prefixFamily(fs.Net) != fam {
					continue
				}
				sp := prefixSpan(fs.Net)
				r.SetField(addrF, sp.lo, sp.hi)
			}
			r.Proto = [2]uint32{uint32(fs.Protocol), uint32(fs.Protocol)}
			if li.bySrcPort {
				r.SPort = [2]uint32{uint32(fs.Port), uint32(fs.Port)}
			} else {
				r.DPort = [2]uint32{uint32(fs.Port), uint32(fs.Port)}
			}
			out = append(out, r)
		}
	}
	slices.SortFunc(out, cmpBox)
	return slices.CompactFunc(out, func(a, b dtree.Box) bool { return a == b })
}

// Differ compares stage calls of two programs. It remembers the rules of
// the chains it has seen, so one Differ serves many calls.
type Differ struct {
	old, new *ruleSource
	seed     maphash.Seed
}

// NewDiffer returns a Differ for old and new.
func NewDiffer(old, new *Program) *Differ {
	return &Differ{old: newRuleSource(old), new: newRuleSource(new), seed: maphash.MakeSeed()}
}

// maxAlignEdits bounds the edit distance Cover aligns chains up to.
const maxAlignEdits = 2000

// RuleChange is a rule of one side's chain that has no counterpart in the
// other's (added, removed or changed, or moved across a Pass target).
type RuleChange struct {
	Old  bool // the rule is old's (else new's)
	Rule ChainRule
}

// Cover returns boxes covering every key of family fam whose decisions
// under the calls (co in old, cn in new) may differ in verdict or
// accept-mark, and the rules that account for it; ok is false when the
// calls' stages are not built of the same parts (a stage policed in one
// program only, say), or the chains differ too much to align: then only
// the whole space is a cover.
func (d *Differ) Cover(co, cn StageCall, fam uint8) (cover []dtree.Box, changed []RuleChange, ok bool) {
	so, sn := d.old.shape(co, fam), d.new.shape(cn, fam)
	if len(so) != len(sn) {
		return nil, nil, false
	}
	for i := range so {
		a, b := &so[i], &sn[i]
		if a.kind != b.kind {
			return nil, nil, false
		}
		switch a.kind {
		case partConst:
			if a.v != b.v || a.mark != b.mark {
				return nil, nil, false
			}
		case partFailsafe:
			if !slices.Equal(a.boxes, b.boxes) {
				cover = append(cover, a.boxes...)
				cover = append(cover, b.boxes...)
			}
		case partChain:
			uo, un, ok := d.alignChains(a.chain, b.chain)
			if !ok {
				return nil, nil, false
			}
			for _, i := range uo {
				cover = append(cover, a.chain[i].Boxes...)
				changed = append(changed, RuleChange{Old: true, Rule: a.chain[i]})
			}
			for _, i := range un {
				cover = append(cover, b.chain[i].Boxes...)
				changed = append(changed, RuleChange{Rule: b.chain[i]})
			}
		}
	}
	slices.SortFunc(cover, cmpBox)
	return slices.CompactFunc(cover, func(a, b dtree.Box) bool { return a == b }), changed, true
}

func (d *Differ) hash(r *ChainRule) uint64 {
	var h maphash.Hash
	h.SetSeed(d.seed)
	h.WriteByte(byte(r.Action))
	for i := range r.Boxes {
		b := &r.Boxes[i]
		for f := range dtree.NumFields {
			lo, hi := b.Field(f)
			for _, v := range []uint64{lo.Hi, lo.Lo, hi.Hi, hi.Lo} {
				var x [8]byte
				for j := range 8 {
					x[j] = byte(v >> (8 * j))
				}
				h.Write(x[:])
			}
		}
	}
	return h.Sum64()
}

// sameRule: same action and exactly the same rectangles (inexact rules
// never count as the same).
func sameRule(a, b *ChainRule) bool {
	return a.Action == b.Action && a.Exact && b.Exact && slices.Equal(a.Boxes, b.Boxes)
}

// alignChains aligns two chains and returns the indexes of their
// unaligned rules; ok is false past maxAlignEdits.
func (d *Differ) alignChains(a, b []ChainRule) (ua, ub []int, ok bool) {
	ha, hb := make([]uint64, len(a)), make([]uint64, len(b))
	for i := range a {
		ha[i] = d.hash(&a[i])
	}
	for i := range b {
		hb[i] = d.hash(&b[i])
	}
	pairs, ok := align(len(a), len(b), func(i, j int) bool { return ha[i] == hb[j] && sameRule(&a[i], &b[j]) }, maxAlignEdits)
	if !ok {
		return nil, nil, false
	}
	// A Pass pair must land at corresponding places: as many aligned
	// pairs before its target on both sides. Unalign the ones that do
	// not, until all do.
	for {
		inA, inB := make([]int, len(a)+1), make([]int, len(b)+1) // aligned pairs before index
		alA, alB := make([]bool, len(a)), make([]bool, len(b))
		for _, p := range pairs {
			alA[p[0]], alB[p[1]] = true, true
		}
		for i := range a {
			inA[i+1] = inA[i]
			if alA[i] {
				inA[i+1]++
			}
		}
		for j := range b {
			inB[j+1] = inB[j]
			if alB[j] {
				inB[j+1]++
			}
		}
		kept := pairs[:0:0]
		for _, p := range pairs {
			if a[p[0]].Action == Pass && inA[a[p[0]].Next] != inB[b[p[1]].Next] {
				continue
			}
			kept = append(kept, p)
		}
		if len(kept) == len(pairs) {
			for i := range a {
				if !alA[i] {
					ua = append(ua, i)
				}
			}
			for j := range b {
				if !alB[j] {
					ub = append(ub, j)
				}
			}
			return ua, ub, true
		}
		pairs = kept
	}
}

// align returns the index pairs of a longest common subsequence of
// sequences of lengths n and m under eq (Myers' O((n+m)D) algorithm, after
// trimming the common ends); ok is false when more than maxD edits
// separate them.
func align(n, m int, eq func(i, j int) bool, maxD int) ([][2]int, bool) {
	var pairs [][2]int
	pre := 0
	for pre < n && pre < m && eq(pre, pre) {
		pairs = append(pairs, [2]int{pre, pre})
		pre++
	}
	suf := 0
	for suf < n-pre && suf < m-pre && eq(n-1-suf, m-1-suf) {
		suf++
	}
	N, M := n-pre-suf, m-pre-suf
	mid, ok := myers(N, M, func(i, j int) bool { return eq(pre+i, pre+j) }, maxD)
	if !ok {
		return nil, false
	}
	for _, p := range mid {
		pairs = append(pairs, [2]int{pre + p[0], pre + p[1]})
	}
	for s := suf; s > 0; s-- {
		pairs = append(pairs, [2]int{n - s, m - s})
	}
	return pairs, true
}

func myers(n, m int, eq func(i, j int) bool, maxD int) ([][2]int, bool) {
	if n == 0 || m == 0 {
		return nil, true
	}
	off := n + m
	v := make([]int, 2*off+2)
	var trace [][]int // trace[d][k+d] = v[k] after step d
	for d := 0; d <= min(maxD, n+m); d++ {
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1]
			} else {
				x = v[off+k-1] + 1
			}
			y := x - k
			for x < n && y < m && eq(x, y) {
				x, y = x+1, y+1
			}
			v[off+k] = x
			if x >= n && y >= m {
				trace = append(trace, slices.Clone(v[off-d:off+d+1]))
				return backtrack(trace, n, m), true
			}
		}
		trace = append(trace, slices.Clone(v[off-d:off+d+1]))
	}
	return nil, false
}

func backtrack(trace [][]int, n, m int) [][2]int {
	var rev [][2]int
	x, y := n, m
	for d := len(trace) - 1; d > 0; d-- {
		prev := trace[d-1] // prev[k+d-1] is v[k] after step d-1
		k := x - y
		pk := k - 1
		if k == -d || (k != d && prev[k-1+d-1] < prev[k+1+d-1]) {
			pk = k + 1
		}
		px := prev[pk+d-1]
		py := px - pk
		sx := px + 1 // after the edit: a step right (delete) ...
		if pk == k+1 {
			sx = px // ... or down (insert)
		}
		for x > sx {
			rev = append(rev, [2]int{x - 1, y - 1})
			x, y = x-1, y-1
		}
		x, y = px, py
	}
	for x > 0 && y > 0 {
		rev = append(rev, [2]int{x - 1, y - 1})
		x, y = x-1, y-1
	}
	slices.Reverse(rev)
	return rev
}
