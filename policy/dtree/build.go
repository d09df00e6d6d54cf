package dtree

import (
	"cmp"
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
		ids []int32
		b   *builder
		st  shape
	}
	grow := func(idss [][]int32, budgets []int) []tree {
		out := make([]tree, len(idss))
		var wg sync.WaitGroup
		for i, ids := range idss {
			wg.Go(func() {
				budget := replication * len(ids)
				if budgets != nil {
					budget = budgets[i]
				}
				b := sp.grow(ids, budget)
				out[i] = tree{ids, b, b.shape(0)}
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
	trees := grow(idss, nil)
	for g := len(trees) - 1; g > 0; g-- {
		// A merge is kept only if it copies rules little, so the trial
		// builds get no more budget than that: bad ones stop early.
		var cand [][]int32
		var budgets []int
		for h := range g {
			cand = append(cand, mergeSorted(trees[g].ids, trees[h].ids))
			budgets = append(budgets, 5*(trees[g].st.entries+trees[h].st.entries)/4)
		}
		merged := grow(cand, budgets)
		bestH := -1
		for h, m := range merged {
			a, c := trees[g].st, trees[h].st
			if debugMerge {
				println("merge", g, len(trees[g].ids), a.entries, a.maxLeaf, "into", h, len(trees[h].ids), c.entries, c.maxLeaf, "->", m.st.entries, m.st.maxLeaf)
			}
			if 4*m.st.entries <= 5*(a.entries+c.entries) && m.st.maxLeaf <= max(2*sp.leafSize, a.maxLeaf, c.maxLeaf) &&
				(bestH < 0 || m.st.entries < merged[bestH].st.entries) {
				bestH = h
			}
		}
		if bestH >= 0 {
			trees[bestH] = merged[bestH]
			trees = slices.Delete(trees, g, g+1)
		}
	}

	// leaf[0] is a sentinel: kid code leafBit is an empty leaf.
	t := &wtree{leaf: []entry{{rank: noRank}}}
	for _, tr := range trees {
		p := packer{nodes: tr.b.nodes, rs: rs, ranks: ranks, t: t, leafCode: map[uint32]uint32{}}
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
func (sp *space) grow(ids []int32, budget int) *builder {
	b := &builder{space: sp, nodes: []bnode{{}}}
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
	los, his []uint32 // scratch
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
	for f := range numFields {
		mx := b.fieldMax(f)
		vals = append(vals[:0], U128{})
		for i := range rs {
			lo, hi := fieldRange(&rs[i], f)
			vals = append(vals, lo)
			if hi != mx {
				vals = append(vals, inc(hi))
			}
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
	bestF, bestP, bestMax, bestSum := -1, uint32(0), len(ids), 2*len(ids)
	if len(ids) > b.leafSize && depth < maxDepth {
		for f := range numFields {
			if reg[f][0] == reg[f][1] {
				continue
			}
			p, nl, nr := b.split(ids, f, reg[f][0], reg[f][1])
			m := max(nl, nr)
			if nl+nr > budget {
				continue
			}
			if m < bestMax || (m == bestMax && nl+nr < bestSum) {
				bestF, bestP, bestMax, bestSum = f, p, m, nl+nr
			}
		}
	}
	if bestF < 0 {
		mn := int32(noRank)
		if len(ids) > 0 {
			mn = ids[0]
		}
		b.nodes[ni] = bnode{f: fLeaf, ids: ids, min: mn}
		return
	}
	f, p := bestF, bestP
	var left, right []int32
	for _, id := range ids {
		r := &b.rng[id][f]
		if r[0] <= p {
			left = append(left, id)
		}
		if r[1] > p {
			right = append(right, id)
		}
	}
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

// split finds the cut p in [rl, rh) for field f that best balances the rules
// going left (range starts at or below p) and right (ends above p).
func (b *builder) split(ids []int32, f int, rl, rh uint32) (p uint32, nl, nr int) {
	// Search for the balance point on a sample of a big node's rules, then
	// count exactly around it: near-optimal cuts at a fraction of the cost.
	step := max(1, len(ids)/splitSample)
	b.los, b.his = b.los[:0], b.his[:0]
	maxLo, minHi := uint32(0), ^uint32(0)
	for i, id := range ids {
		r := &b.rng[id][f]
		maxLo, minHi = max(maxLo, r[0]), min(minHi, r[1])
		if i%step == 0 {
			b.los = append(b.los, r[0])
			b.his = append(b.his, r[1])
		}
	}
	if maxLo <= rl && minHi >= rh {
		return rl, len(ids), len(ids) // every rule spans the region
	}
	slices.Sort(b.los)
	slices.Sort(b.his)
	sampled := func(p uint32) (nl, nr int) {
		nl, _ = slices.BinarySearch(b.los, p+1) // los <= p
		i, _ := slices.BinarySearch(b.his, p+1) // his <= p
		return nl, len(b.his) - i
	}
	exact := func(p uint32) (nl, nr int) {
		for _, id := range ids {
			r := &b.rng[id][f]
			if r[0] <= p {
				nl++
			}
			if r[1] > p {
				nr++
			}
		}
		return
	}
	lo, hi := rl, rh-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if l, r := sampled(mid); l >= r {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	p = lo
	nl, nr = exact(p)
	if p > rl {
		l, r := exact(p - 1)
		if max(l, r) < max(nl, nr) || (max(l, r) == max(nl, nr) && l+r < nl+nr) {
			p, nl, nr = p-1, l, r
		}
	}
	return p, nl, nr
}
