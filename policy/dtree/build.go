package dtree

import (
	"cmp"
	"slices"
)

// region is a box in rank space: per field, an inclusive range of
// elementary-interval indices.
type region [numFields][2]uint32

// builder compiles rules in rank space: each field's values are cut into
// elementary intervals at every rule endpoint, so splitting and counting work
// on small integers, and only the chosen thresholds go back to values.
type builder struct {
	bounds [numFields][]U128      // bounds[f][j] is where interval j starts
	rng    [][numFields][2]uint32 // per rule, per field: interval range
	full   region
	nodes  []node
	leaf   []int32
	los    []uint32 // scratch
	his    []uint32
	cnt    []int32 // scratch: split's histograms
	small  []uint64
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

func fieldMax(f int) U128 {
	if f == fSrc || f == fDst {
		return U128{^uint64(0), ^uint64(0)}
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

func newBuilder(rs []Rule) *builder {
	b := &builder{rng: make([][numFields][2]uint32, len(rs))}
	vals := make([]U128, 0, 2*len(rs)+1)
	for f := range numFields {
		mx := fieldMax(f)
		vals = append(vals[:0], U128{})
		for i := range rs {
			lo, hi := fieldRange(&rs[i], f)
			vals = append(vals, lo)
			if hi != mx {
				vals = append(vals, inc(hi))
			}
		}
		if b.rankSmall(rs, f, vals) {
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

// rankSmall does newBuilder's work for field f when every value in vals
// fits in 64 bits (ports, protocols, ICMP, IPv4 addresses), sorting and
// searching plain integers; it reports false, doing nothing, otherwise.
func (b *builder) rankSmall(rs []Rule, f int, vals []U128) bool {
	small := b.small[:0]
	for _, v := range vals {
		if v.Hi != 0 {
			return false
		}
		small = append(small, v.Lo)
	}
	b.small = small
	slices.Sort(small)
	small = slices.Compact(small)
	bs := make([]U128, len(small))
	for i, v := range small {
		bs[i] = U128{0, v}
	}
	b.bounds[f] = bs
	last := uint32(len(bs) - 1)
	b.full[f] = [2]uint32{0, last}
	mx := fieldMax(f)
	for i := range rs {
		lo, hi := fieldRange(&rs[i], f)
		l, _ := slices.BinarySearch(small, lo.Lo)
		h := last
		if hi != mx {
			j, _ := slices.BinarySearch(small, inc(hi).Lo)
			h = uint32(j - 1)
		}
		b.rng[i][f] = [2]uint32{uint32(l), h}
	}
	return true
}

// build fills node ni with a tree for rules ids (ascending) within reg.
// budget caps the leaf entries of the subtree: children share it in
// proportion to their sizes, so a partition of n rules never holds more than
// replication*n entries however much its rules overlap.
func (b *builder) build(ni uint32, ids []int32, reg region, depth, budget int) {
	bestF, bestP, bestMax, bestSum := -1, uint32(0), len(ids), 2*len(ids)
	bestL, bestR := 0, 0
	if len(ids) > leafSize && depth < maxDepth {
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
				bestL, bestR = nl, nr
			}
		}
	}
	if bestF < 0 {
		b.nodes[ni] = node{meta: uint32(len(b.leaf))<<3 | fLeaf, n: uint32(len(ids))}
		b.leaf = append(b.leaf, ids...)
		return
	}
	f, p := bestF, bestP
	left := make([]int32, 0, bestL)
	right := make([]int32, 0, bestR)
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
	b.nodes = append(b.nodes, node{}, node{})
	b.nodes[ni] = node{thr: b.bounds[f][p+1], meta: c<<3 | uint32(f)}
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
	c := b.counter(ids, f, rl, rh)
	lo, hi := rl, rh-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if l, r := c.count(mid); l >= r {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	p = lo
	nl, nr = c.count(p)
	if p > rl {
		l, r := c.count(p - 1)
		if max(l, r) < max(nl, nr) || (max(l, r) == max(nl, nr) && l+r < nl+nr) {
			p, nl, nr = p-1, l, r
		}
	}
	return p, nl, nr
}

// cutCounter answers split's probes: how many rules go left and right of a
// cut p in [rl, rh).
type cutCounter struct {
	// dense: cumulative histograms over [rl, rh] of the rules' starts and
	// ends, used when the region has few intervals compared to the rules;
	// each probe is then answered at once.
	dense  bool
	lo, hi []int32
	rl     uint32
	n      int
	// otherwise each probe is a pass over the rules' starts and ends.
	los, his []uint32
}

func (c *cutCounter) count(p uint32) (nl, nr int) {
	if c.dense {
		return int(c.lo[p-c.rl]), c.n - int(c.hi[p-c.rl])
	}
	for _, v := range c.los {
		if v <= p {
			nl++
		}
	}
	for _, v := range c.his {
		if v > p {
			nr++
		}
	}
	return
}

func (b *builder) counter(ids []int32, f int, rl, rh uint32) cutCounter {
	if w := int(rh-rl) + 1; w <= 4*len(ids) {
		if cap(b.cnt) < 2*w {
			b.cnt = make([]int32, 2*w)
		}
		lo, hi := b.cnt[:w], b.cnt[w:2*w]
		clear(lo)
		clear(hi)
		// A rule's range may reach past the region; clamping it to the
		// region leaves every count for a cut in [rl, rh) unchanged.
		for _, id := range ids {
			r := &b.rng[id][f]
			lo[min(max(r[0], rl), rh)-rl]++
			hi[min(max(r[1], rl), rh)-rl]++
		}
		for i := 1; i < w; i++ {
			lo[i] += lo[i-1] // rules starting at or below rl+i
			hi[i] += hi[i-1] // rules ending at or below rl+i
		}
		return cutCounter{dense: true, lo: lo, hi: hi, rl: rl, n: len(ids)}
	}
	b.los, b.his = b.los[:0], b.his[:0]
	for _, id := range ids {
		r := &b.rng[id][f]
		b.los = append(b.los, r[0])
		b.his = append(b.his, r[1])
	}
	return cutCounter{los: b.los, his: b.his}
}
