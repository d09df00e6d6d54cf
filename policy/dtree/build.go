package dtree

import (
	"cmp"
	"math"
	"slices"
	"sync"
)

// bnode is a node of the binary tree the builder grows before packing it
// into super-nodes. An inner node sends keys below thr in field f to kid,
// others to kid+1; a leaf (f == fLeaf) holds ids.
type bnode struct {
	thr U128
	f   uint8
	kid uint32
	min int32 // lowest rank below
	ids []int32
}

// compile builds the partition trees of rules rs (sorted by priority, with
// global ranks ranks) whose addresses lie within [0, addrMax].
func compile(rs []Rule, ranks []int32, addrMax U128) *wtree {
	sp := newSpace(rs, addrMax)
	var groups [maxParts][]int32
	for i := range rs {
		g := group(&rs[i])
		groups[g] = append(groups[g], int32(i))
	}
	// One tree per group, then merge groups whose rules mix well: every
	// partition costs a lookup a walk, so fewer is faster unless merging
	// makes rules copy into many leaves or leaves long. Trees are grown in
	// parallel.
	type tree struct {
		ids  []int32
		b    *builder
		st   shape
		over bool // a trial that exceeded its limits: rejected
	}
	// grow builds a tree per id list. limits, for a trial merge, are the
	// entries and longest leaf it may have to be kept: a build that exceeds
	// either stops there (b.over) and is rejected, as it would be complete.
	grow := func(idss [][]int32, budgets []int, limits []shape) []tree {
		out := make([]tree, len(idss))
		var wg sync.WaitGroup
		for i, ids := range idss {
			wg.Go(func() {
				budget := replication * len(ids)
				lim := shape{math.MaxInt, math.MaxInt}
				if budgets != nil {
					budget, lim = budgets[i], limits[i]
				}
				b := sp.grow(ids, budget, lim)
				t := tree{ids: ids, b: b, over: b.over}
				if !b.over {
					t.st = b.shape(0)
				}
				out[i] = t
			})
		}
		wg.Wait()
		return out
	}
	var idss [][]int32
	for _, ids := range groups {
		if len(ids) > 0 {
			idss = append(idss, ids)
		}
	}
	trees := grow(idss, nil, nil)
	for g := len(trees) - 1; g > 0; g-- {
		// A merge is kept only if it copies rules little and keeps leaves
		// short, so the trial builds get no more budget than that, and a
		// trial stops as soon as it has more entries or a longer leaf than
		// a kept merge may have (the outcome is the same as building it
		// whole and comparing).
		var cand [][]int32
		var budgets []int
		var limits []shape
		for h := range g {
			a, c := trees[g].st, trees[h].st
			cand = append(cand, mergeSorted(trees[g].ids, trees[h].ids))
			budgets = append(budgets, 5*(a.entries+c.entries)/4)
			limits = append(limits, shape{entries: 5 * (a.entries + c.entries) / 4, maxLeaf: max(2*sp.leafSize, a.maxLeaf, c.maxLeaf)})
		}
		merged := grow(cand, budgets, limits)
		bestH := -1
		for h, m := range merged {
			a, c := trees[g].st, trees[h].st
			if debugMerge {
				println("merge", g, len(trees[g].ids), a.entries, a.maxLeaf, "into", h, len(trees[h].ids), c.entries, c.maxLeaf, "->", m.st.entries, m.st.maxLeaf, m.over)
			}
			if !m.over && 4*m.st.entries <= 5*(a.entries+c.entries) && m.st.maxLeaf <= max(2*sp.leafSize, a.maxLeaf, c.maxLeaf) &&
				(bestH < 0 || m.st.entries < merged[bestH].st.entries) {
				bestH = h
			}
		}
		if bestH >= 0 {
			trees[bestH] = merged[bestH]
			trees = slices.Delete(trees, g, g+1)
		}
	}

	// leaf[0] is a sentinel: kid code leafBit is an empty leaf. The
	// arrays are sized first (entries, one sentinel per leaf, super-nodes)
	// so packing appends without copying.
	nleaf, nsnode := 1, 0
	for _, tr := range trees {
		nleaf += tr.b.entries + tr.b.leaves
		nsnode += snodes(tr.b.nodes, 0)
	}
	t := &wtree{leaf: make([]entry, 1, nleaf), nodes: make([]snode, 0, nsnode)}
	t.leaf[0] = entry{rank: noRank}
	for _, tr := range trees {
		p := packer{nodes: tr.b.nodes, rs: rs, ranks: ranks, t: t, leafCode: make(map[uint32]uint32, tr.b.leaves)}
		t.parts = append(t.parts, part{root: p.pack(0), first: ranks[tr.ids[0]]})
	}
	slices.SortFunc(t.parts, func(a, c part) int { return cmp.Compare(a.first, c.first) })
	t.nodes = slices.Clip(t.nodes)
	t.leaf = slices.Clip(t.leaf)
	return t
}

var debugMerge = false

// mergeSorted returns the union of two ascending, disjoint lists.
func mergeSorted(a, b []int32) []int32 {
	out := make([]int32, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if a[0] < b[0] {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// grow builds a binary tree for ids with at most budget leaf entries,
// rooted at node 0 of the returned builder.
func (sp *space) grow(ids []int32, budget int, lim shape) *builder {
	b := &builder{space: sp, nodes: []bnode{{}}, lim: lim}
	b.build(0, ids, sp.full, 0, budget)
	return b
}

// shape is what merging decisions look at.
type shape struct{ entries, maxLeaf int }

func (b *builder) shape(i uint32) shape {
	n := &b.nodes[i]
	if n.f == fLeaf {
		return shape{len(n.ids), len(n.ids)}
	}
	l, r := b.shape(n.kid), b.shape(n.kid+1)
	return shape{l.entries + r.entries, max(l.maxLeaf, r.maxLeaf)}
}

// snodes counts the super-nodes pack makes for binary node bi.
func snodes(nodes []bnode, bi uint32) int {
	if nodes[bi].f == fLeaf {
		return 0
	}
	var at [15]uint32
	at[0] = bi
	for q := range 7 {
		m := &nodes[at[q]]
		if m.f == fLeaf {
			at[2*q+1], at[2*q+2] = at[q], at[q]
			continue
		}
		at[2*q+1], at[2*q+2] = m.kid, m.kid+1
	}
	n := 1
	for j := range 8 {
		n += snodes(nodes, at[7+j])
	}
	return n
}

// packer turns the builder's binary tree into super-nodes and leaf entries.
type packer struct {
	nodes    []bnode
	rs       []Rule
	ranks    []int32
	t        *wtree
	leafCode map[uint32]uint32 // binary leaf -> kid code, so a leaf is stored once
}

func (p *packer) rank(id int32) int32 {
	if id == noRank {
		return noRank
	}
	return p.ranks[id]
}

// pack returns the kid code of binary node bi.
func (p *packer) pack(bi uint32) uint32 {
	n := &p.nodes[bi]
	if n.f == fLeaf {
		if c, ok := p.leafCode[bi]; ok {
			return c
		}
		c := leafBit | uint32(len(p.t.leaf))
		for _, id := range n.ids {
			r := &p.rs[id]
			p.t.leaf = append(p.t.leaf, entry{rank: p.ranks[id], dport: r.DPort, sport: r.SPort, proto: r.Proto,
				dst: r.Dst, src: r.Src, itype: r.ICMPType, icode: r.ICMPCode})
		}
		p.t.leaf = append(p.t.leaf, entry{rank: noRank})
		p.leafCode[bi] = c
		return c
	}
	si := len(p.t.nodes)
	p.t.nodes = append(p.t.nodes, snode{})
	var at [15]uint32 // binary node at each heap position, then outcomes
	at[0] = bi
	var sn snode
	for q := range 7 {
		m := &p.nodes[at[q]]
		if m.f == fLeaf {
			at[2*q+1], at[2*q+2] = at[q], at[q] // thr 0: always right
			continue
		}
		sn.f[q], sn.thr[q] = m.f, m.thr
		at[2*q+1], at[2*q+2] = m.kid, m.kid+1
	}
	for j := range 8 {
		sn.kid[j] = p.pack(at[7+j])
	}
	sn.min = p.rank(n.min)
	p.t.nodes[si] = sn
	return uint32(si)
}

// region is a box in rank space: per field, an inclusive range of
// elementary-interval indices.
type region [numFields][2]uint32

// space is a rule set in rank space: each field's values are cut into
// elementary intervals at every rule endpoint, so splitting and counting work
// on small integers, and only the chosen thresholds go back to values. It is
// read-only once made, shared by builders running in parallel.
type space struct {
	bounds   [numFields][]U128      // bounds[f][j] is where interval j starts
	rng      [][numFields][2]uint32 // per rule, per field: interval range
	full     region
	addrMax  U128 // largest address: the narrow tree's rules are clipped to 32 bits
	leafSize int
}

// builder grows one binary tree.
type builder struct {
	*space
	nodes    []bnode
	los, his [numFields][]uint32 // scratch: sampled range starts and ends per field
	// lim bounds the leaf entries and the longest leaf; a build that
	// exceeds either stops (over).
	lim     shape
	entries int // leaf entries so far
	leaves  int
	over    bool
}

func fieldRange(r *Rule, f int) (lo, hi U128) {
	switch f {
	case fSrc:
		return r.Src[0], r.Src[1]
	case fDst:
		return r.Dst[0], r.Dst[1]
	case fProto:
		return U128{0, uint64(r.Proto[0])}, U128{0, uint64(r.Proto[1])}
	case fSPort:
		return U128{0, uint64(r.SPort[0])}, U128{0, uint64(r.SPort[1])}
	case fDPort:
		return U128{0, uint64(r.DPort[0])}, U128{0, uint64(r.DPort[1])}
	case fICMPType:
		return U128{0, uint64(r.ICMPType[0])}, U128{0, uint64(r.ICMPType[1])}
	default:
		return U128{0, uint64(r.ICMPCode[0])}, U128{0, uint64(r.ICMPCode[1])}
	}
}

func (b *space) fieldMax(f int) U128 {
	if f == fSrc || f == fDst {
		return b.addrMax
	}
	return U128{0, 0xffffffff}
}

func inc(v U128) U128 {
	v.Lo++
	if v.Lo == 0 {
		v.Hi++
	}
	return v
}

func cmp128(a, b U128) int {
	if c := cmp.Compare(a.Hi, b.Hi); c != 0 {
		return c
	}
	return cmp.Compare(a.Lo, b.Lo)
}

func newSpace(rs []Rule, addrMax U128) *space {
	b := &space{rng: make([][numFields][2]uint32, len(rs)), addrMax: addrMax, leafSize: leafSmall}
	if len(rs) > bigSet {
		b.leafSize = leafBig
	}
	vals := make([]U128, 0, 2*len(rs)+1)
	small := make([]uint64, 0, 2*len(rs)+1)
	for f := range numFields {
		mx := b.fieldMax(f)
		vals = append(vals[:0], U128{})
		wide := false
		for i := range rs {
			lo, hi := fieldRange(&rs[i], f)
			vals = append(vals, lo)
			if hi != mx {
				vals = append(vals, inc(hi))
			}
			wide = wide || lo.Hi != 0 || hi.Hi != 0 || (hi != mx && hi.Lo == ^uint64(0))
		}
		if !wide {
			// Every value fits 64 bits (ports, protocols, IPv4): sort
			// and search plain integers.
			small = small[:0]
			for _, v := range vals {
				small = append(small, v.Lo)
			}
			slices.Sort(small)
			small = slices.Compact(small)
			bs := make([]U128, len(small))
			for j, v := range small {
				bs[j] = U128{0, v}
			}
			b.bounds[f] = bs
			last := uint32(len(bs) - 1)
			b.full[f] = [2]uint32{0, last}
			for i := range rs {
				lo, hi := fieldRange(&rs[i], f)
				l, _ := slices.BinarySearch(small, lo.Lo)
				h := last
				if hi != mx {
					j, _ := slices.BinarySearch(small, hi.Lo+1)
					h = uint32(j - 1)
				}
				b.rng[i][f] = [2]uint32{uint32(l), h}
			}
			continue
		}
		slices.SortFunc(vals, cmp128)
		bs := slices.Clone(slices.Compact(vals))
		b.bounds[f] = bs
		last := uint32(len(bs) - 1)
		b.full[f] = [2]uint32{0, last}
		for i := range rs {
			lo, hi := fieldRange(&rs[i], f)
			l, _ := slices.BinarySearchFunc(bs, lo, cmp128)
			h := last
			if hi != mx {
				j, _ := slices.BinarySearchFunc(bs, inc(hi), cmp128)
				h = uint32(j - 1)
			}
			b.rng[i][f] = [2]uint32{uint32(l), h}
		}
	}
	return b
}

// build fills node ni with a tree for rules ids (ascending) within reg.
// budget caps the leaf entries of the subtree: children share it in
// proportion to their sizes, so a partition of n rules never holds more than
// replication*n entries however much its rules overlap.
func (b *builder) build(ni uint32, ids []int32, reg region, depth, budget int) {
	if b.over {
		return
	}
	bestF, bestP, bestMax, bestSum := -1, uint32(0), len(ids), 2*len(ids)
	if len(ids) > b.leafSize && depth < maxDepth {
		var cs [numFields]cut
		b.cuts(ids, &reg, &cs)
		for f := range numFields {
			c := &cs[f]
			if !c.ok {
				continue
			}
			m := max(c.nl, c.nr)
			if c.nl+c.nr > budget {
				continue
			}
			if m < bestMax || (m == bestMax && c.nl+c.nr < bestSum) {
				bestF, bestP, bestMax, bestSum = f, c.p, m, c.nl+c.nr
			}
		}
	}
	if bestF < 0 {
		mn := int32(noRank)
		if len(ids) > 0 {
			mn = ids[0]
		}
		b.nodes[ni] = bnode{f: fLeaf, ids: ids, min: mn}
		b.leaves++
		if b.entries += len(ids); b.entries > b.lim.entries || len(ids) > b.lim.maxLeaf {
			b.over = true
		}
		return
	}
	f, p := bestF, bestP
	// bestSum is len(left)+len(right): one allocation for both.
	both := make([]int32, 0, bestSum)
	for _, id := range ids {
		if b.rng[id][f][0] <= p {
			both = append(both, id)
		}
	}
	nl := len(both)
	for _, id := range ids {
		if b.rng[id][f][1] > p {
			both = append(both, id)
		}
	}
	left, right := both[:nl:nl], both[nl:]
	c := uint32(len(b.nodes))
	b.nodes = append(b.nodes, bnode{}, bnode{})
	b.nodes[ni] = bnode{thr: b.bounds[f][p+1], f: uint8(f), kid: c, min: ids[0]}
	lr, rr := reg, reg
	lr[f][1] = p
	rr[f][0] = p + 1
	lb := budget * len(left) / (len(left) + len(right))
	b.build(c, left, lr, depth+1, lb)
	b.build(c+1, right, rr, depth+1, budget-lb)
}

// cut is the best split of a node in one field: rules whose range starts at
// or below p go left (nl of them), those ending above p right (nr). ok is
// false for a field the region does not let the node split.
type cut struct {
	p      uint32
	nl, nr int
	ok     bool
}

// cuts finds, for every field f the region still spans, the cut p in
// [reg[f][0], reg[f][1]) that best balances the rules going left and
// right. It searches for the balance point on a sample of a big node's
// rules, then counts exactly around it: near-optimal cuts at a fraction of
// the cost. All fields are done in two passes over the rules (samples, then
// exact counts at the two candidate cuts), since a rule's ranges sit
// together in memory.
func (b *builder) cuts(ids []int32, reg *region, out *[numFields]cut) {
	step := max(1, len(ids)/splitSample)
	for f := range numFields {
		b.los[f], b.his[f] = b.los[f][:0], b.his[f][:0]
	}
	var maxLo, minHi [numFields]uint32
	for f := range numFields {
		minHi[f] = ^uint32(0)
	}
	next := 0 // the next sampled index: every step-th rule
	for i, id := range ids {
		r := &b.rng[id]
		for f := range numFields {
			lo, hi := r[f][0], r[f][1]
			maxLo[f], minHi[f] = max(maxLo[f], lo), min(minHi[f], hi)
		}
		if i == next {
			next += step
			for f := range numFields {
				b.los[f] = append(b.los[f], r[f][0])
				b.his[f] = append(b.his[f], r[f][1])
			}
		}
	}
	// Candidate cuts per field: p and p-1 (the latter when p > rl).
	var ps [numFields][2]uint32
	var two [numFields]bool
	var count [numFields]bool
	active := false
	for f := range numFields {
		rl, rh := reg[f][0], reg[f][1]
		out[f] = cut{}
		if rl == rh {
			continue
		}
		if maxLo[f] <= rl && minHi[f] >= rh {
			out[f] = cut{p: rl, nl: len(ids), nr: len(ids), ok: true} // every rule spans the region
			continue
		}
		los, his := b.los[f], b.his[f]
		slices.Sort(los)
		slices.Sort(his)
		lo, hi := rl, rh-1
		for lo < hi {
			mid := lo + (hi-lo)/2
			nl, _ := slices.BinarySearch(los, mid+1) // los <= mid
			i, _ := slices.BinarySearch(his, mid+1)  // his <= mid
			if nl >= len(his)-i {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		ps[f] = [2]uint32{lo, lo - 1}
		two[f] = lo > rl
		out[f] = cut{p: lo, ok: true}
		count[f] = true
		active = true
	}
	if !active {
		return
	}
	var cnt [numFields][4]int // nl(p), nr(p), nl(p-1), nr(p-1)
	for _, id := range ids {
		r := &b.rng[id]
		for f := range numFields {
			if !count[f] {
				continue
			}
			lo, hi := r[f][0], r[f][1]
			c := &cnt[f]
			if lo <= ps[f][0] {
				c[0]++
			}
			if hi > ps[f][0] {
				c[1]++
			}
			if lo <= ps[f][1] {
				c[2]++
			}
			if hi > ps[f][1] {
				c[3]++
			}
		}
	}
	for f := range numFields {
		if !count[f] {
			continue
		}
		c := &cnt[f]
		nl, nr := c[0], c[1]
		out[f].nl, out[f].nr = nl, nr
		if two[f] {
			l, r := c[2], c[3]
			if max(l, r) < max(nl, nr) || (max(l, r) == max(nl, nr) && l+r < nl+nr) {
				out[f] = cut{p: ps[f][1], nl: l, nr: r, ok: true}
			}
		}
	}
}
