package dtree

import (
	"math"
	"slices"
)

// Regions: every lookup's answer holds on a box of keys around the key
// looked up. Region computes such a box from the tree itself: the key's
// path in each partition bounds a cell that only the rules of its leaf
// intersect, so excluding those leaf rules (the ones with a better rank
// than the answer) and keeping inside the answer's own rectangle is exact.
// It allocates nothing and costs a few lookups' work; diffs and linting
// use it, never the packet path.

// Box is a hyper-rectangle of keys: per field an inclusive range, like a
// Rule's. Ports run to NoPort and ICMP fields to NoICMP, so keys without
// ports or ICMP header are points of the box space too.
type Box struct {
	Src, Dst [2]U128
	Proto    [2]uint32
	SPort    [2]uint32
	DPort    [2]uint32
	ICMPType [2]uint32
	ICMPCode [2]uint32
}

// NumFields is the number of fields of a Key and a Box, in the order
// Src, Dst, Proto, SPort, DPort, ICMPType, ICMPCode.
const NumFields = numFields

// FullBox is every key whose addresses are at most addrMax.
func FullBox(addrMax U128) Box {
	return Box{Src: [2]U128{{}, addrMax}, Dst: [2]U128{{}, addrMax}, Proto: [2]uint32{0, 255},
		SPort: [2]uint32{0, NoPort}, DPort: [2]uint32{0, NoPort}, ICMPType: [2]uint32{0, NoICMP}, ICMPCode: [2]uint32{0, NoICMP}}
}

// RuleBox is the rectangle of r.
func RuleBox(r *Rule) Box {
	return Box{Src: r.Src, Dst: r.Dst, Proto: r.Proto, SPort: r.SPort, DPort: r.DPort, ICMPType: r.ICMPType, ICMPCode: r.ICMPCode}
}

// PointBox is the box holding only k.
func PointBox(k *Key) Box {
	return Box{Src: [2]U128{k.Src, k.Src}, Dst: [2]U128{k.Dst, k.Dst}, Proto: [2]uint32{k.Proto, k.Proto},
		SPort: [2]uint32{k.SPort, k.SPort}, DPort: [2]uint32{k.DPort, k.DPort},
		ICMPType: [2]uint32{k.ICMPType, k.ICMPType}, ICMPCode: [2]uint32{k.ICMPCode, k.ICMPCode}}
}

// Field returns field f's range.
func (b *Box) Field(f int) (lo, hi U128) {
	switch f {
	case fSrc:
		return b.Src[0], b.Src[1]
	case fDst:
		return b.Dst[0], b.Dst[1]
	}
	r := b.small(f)
	return U128{0, uint64(r[0])}, U128{0, uint64(r[1])}
}

// SetField sets field f's range (port, protocol and ICMP values are truncated to 32 bits).
func (b *Box) SetField(f int, lo, hi U128) {
	switch f {
	case fSrc:
		b.Src = [2]U128{lo, hi}
	case fDst:
		b.Dst = [2]U128{lo, hi}
	default:
		*b.small(f) = [2]uint32{uint32(lo.Lo), uint32(hi.Lo)}
	}
}

func (b *Box) small(f int) *[2]uint32 {
	switch f {
	case fProto:
		return &b.Proto
	case fSPort:
		return &b.SPort
	case fDPort:
		return &b.DPort
	case fICMPType:
		return &b.ICMPType
	default:
		return &b.ICMPCode
	}
}

// KeyField returns field f of k.
func KeyField(k *Key, f int) U128 {
	switch f {
	case fSrc:
		return k.Src
	case fDst:
		return k.Dst
	case fProto:
		return U128{0, uint64(k.Proto)}
	case fSPort:
		return U128{0, uint64(k.SPort)}
	case fDPort:
		return U128{0, uint64(k.DPort)}
	case fICMPType:
		return U128{0, uint64(k.ICMPType)}
	default:
		return U128{0, uint64(k.ICMPCode)}
	}
}

// Low returns the box's lowest corner.
func (b *Box) Low() Key {
	return Key{Src: b.Src[0], Dst: b.Dst[0], Proto: b.Proto[0], SPort: b.SPort[0], DPort: b.DPort[0],
		ICMPType: b.ICMPType[0], ICMPCode: b.ICMPCode[0]}
}

// Empty reports whether some field's range is empty.
func (b *Box) Empty() bool {
	return less(b.Src[1], b.Src[0]) || less(b.Dst[1], b.Dst[0]) || b.Proto[0] > b.Proto[1] ||
		b.SPort[0] > b.SPort[1] || b.DPort[0] > b.DPort[1] || b.ICMPType[0] > b.ICMPType[1] || b.ICMPCode[0] > b.ICMPCode[1]
}

// Contains reports whether k lies in b.
func (b *Box) Contains(k *Key) bool {
	return in(k.Src, &b.Src) && in(k.Dst, &b.Dst) && in32(k.Proto, b.Proto) && in32(k.SPort, b.SPort) &&
		in32(k.DPort, b.DPort) && in32(k.ICMPType, b.ICMPType) && in32(k.ICMPCode, b.ICMPCode)
}

// Covers reports whether o lies entirely in b (an empty o lies in anything).
func (b *Box) Covers(o *Box) bool {
	if o.Empty() {
		return true
	}
	for f := range numFields {
		blo, bhi := b.Field(f)
		olo, ohi := o.Field(f)
		if less(olo, blo) || less(bhi, ohi) {
			return false
		}
	}
	return true
}

func in32(v uint32, r [2]uint32) bool { return v >= r[0] && v <= r[1] }

// Overlaps reports whether b and o share a key.
func (b *Box) Overlaps(o *Box) bool {
	return !less(b.Src[1], o.Src[0]) && !less(o.Src[1], b.Src[0]) &&
		!less(b.Dst[1], o.Dst[0]) && !less(o.Dst[1], b.Dst[0]) &&
		ov32(b.Proto, o.Proto) && ov32(b.SPort, o.SPort) && ov32(b.DPort, o.DPort) &&
		ov32(b.ICMPType, o.ICMPType) && ov32(b.ICMPCode, o.ICMPCode)
}

func ov32(a, b [2]uint32) bool { return a[0] <= b[1] && b[0] <= a[1] }

// Intersect sets b to b ∩ o and reports whether that is not empty.
func (b *Box) Intersect(o *Box) bool {
	for f := range numFields {
		blo, bhi := b.Field(f)
		olo, ohi := o.Field(f)
		if less(blo, olo) {
			blo = olo
		}
		if less(ohi, bhi) {
			bhi = ohi
		}
		b.SetField(f, blo, bhi)
	}
	return !b.Empty()
}

// Subtract appends a \ o to out as disjoint boxes (at most 2*NumFields).
func Subtract(a, o Box, out []Box) []Box {
	if !a.Overlaps(&o) {
		return append(out, a)
	}
	for f := range numFields {
		alo, ahi := a.Field(f)
		olo, ohi := o.Field(f)
		if less(alo, olo) {
			p := a
			p.SetField(f, alo, dec(olo))
			out = append(out, p)
			alo = olo
		}
		if less(ohi, ahi) {
			p := a
			p.SetField(f, inc(ohi), ahi)
			out = append(out, p)
			ahi = ohi
		}
		a.SetField(f, alo, ahi)
	}
	return out
}

func dec(v U128) U128 {
	if v.Lo == 0 {
		v.Hi--
	}
	v.Lo--
	return v
}

// width is hi-lo+1 as a float.
func width(lo, hi U128) float64 {
	d := U128{hi.Hi - lo.Hi, hi.Lo - lo.Lo}
	if hi.Lo < lo.Lo {
		d.Hi--
	}
	return float64(d.Hi)*0x1p64 + float64(d.Lo) + 1
}

// Size is the number of keys in b (a float: it can reach 2^300).
func (b *Box) Size() float64 {
	if b.Empty() {
		return 0
	}
	s := 1.0
	for f := range numFields {
		s *= width(b.Field(f))
	}
	return s
}

// Exclude narrows b, which holds k, so that it no longer meets o, which
// does not hold k: on the field where k lies outside o that keeps most of
// b. It reports false (and leaves b alone) when k lies in o.
func (b *Box) Exclude(k *Key, o *Box) bool {
	if !b.Overlaps(o) {
		return true
	}
	best, bestF, bestLow := -1.0, -1, false
	var bestV U128
	for f := range numFields {
		v := KeyField(k, f)
		blo, bhi := b.Field(f)
		olo, ohi := o.Field(f)
		w := width(blo, bhi)
		if less(v, olo) { // keep [blo, olo-1]
			if r := width(blo, dec(olo)) / w; r > best {
				best, bestF, bestLow, bestV = r, f, true, dec(olo)
			}
		} else if less(ohi, v) { // keep [ohi+1, bhi]
			if r := width(inc(ohi), bhi) / w; r > best {
				best, bestF, bestLow, bestV = r, f, false, inc(ohi)
			}
		}
	}
	if bestF < 0 {
		return false
	}
	lo, hi := b.Field(bestF)
	if bestLow {
		hi = bestV
	} else {
		lo = bestV
	}
	b.SetField(bestF, lo, hi)
	return true
}

// cellBox narrows b to one side of a tree node's threshold: the side k is on.
func cellBox(b *Box, k *Key, f int, thr U128) {
	v := KeyField(k, f)
	lo, hi := b.Field(f)
	if less(v, thr) {
		if t := dec(thr); less(t, hi) {
			hi = t
		}
	} else if less(lo, thr) {
		lo = thr
	}
	b.SetField(f, lo, hi)
}

// regionLeaves bounds the leaves one Region call collects; a subtree the
// budget does not reach is cut away from the box instead.
const regionLeaves = 48

// walk is one Region call's range search.
type walk struct {
	k      *Key
	b      *Box
	bound  int32 // rules ranked at or past bound do not matter
	n      int
	leaves [regionLeaves + maxParts]uint32
}

func (w *walk) add(c uint32) {
	off := c &^ leafBit
	for _, l := range w.leaves[:w.n] {
		if l == off {
			return
		}
	}
	w.leaves[w.n] = off
	w.n++
}

// Region returns the priority of the first rule with priority in [from,
// to) whose rectangle holds k (-1 when none), and narrows b, which must
// hold k, to a box where that is the answer for every key: inside the
// answer's rectangle, outside every rectangle with a priority in [from,
// answer) (or in [from, to) when there is no answer). to = math.MaxInt32
// means no upper bound. Region allocates nothing.
//
// The rules that could be better than the answer somewhere in b are found
// by a range search of the trees: every leaf whose cell meets b, k's own
// first, up to a budget; a subtree past the budget is cut away from b on
// the field that keeps most of it.
func (t *Tree) Region(k *Key, from, to int32, b *Box) int32 {
	if t == nil || len(t.prios) == 0 {
		return -1
	}
	rank := func(p int32) int32 {
		i, _ := slices.BinarySearch(t.prios, p)
		return int32(i)
	}
	start, end := rank(from), int32(len(t.prios))
	if to != math.MaxInt32 {
		end = rank(to)
	}
	if start >= end {
		return -1
	}
	narrow := k.Src.Hi|k.Dst.Hi == 0 && (k.Src.Lo|k.Dst.Lo) <= max32
	var hit int32
	if narrow {
		// The narrow tree holds rules clipped to 32-bit addresses.
		b.Src[1], b.Dst[1] = minU(b.Src[1], U128{0, max32}), minU(b.Dst[1], U128{0, max32})
		hit = t.narrow.lookup(k, start)
	} else {
		// The wide tree holds only rules reaching beyond 32 bits: stay
		// where that is all there is.
		if k.Src.Hi != 0 || k.Src.Lo > max32 {
			b.Src[0] = maxU(b.Src[0], U128{0, max32 + 1})
		} else {
			b.Dst[0] = maxU(b.Dst[0], U128{0, max32 + 1})
		}
		hit = t.wide.lookup(k, start)
	}
	if hit >= end {
		hit = noRank
	}
	w := walk{k: k, b: b, bound: end}
	if hit != noRank {
		// Inside the answer's rectangle first: it bounds the search.
		w.bound = hit + 1
		var hb Box
		if narrow {
			t.narrow.points(&w)
			hb = t.narrow.entryBox(t.narrow.find(w.leaves[:w.n], hit))
		} else {
			t.wide.points(&w)
			hb = t.wide.leaf[t.wide.find(w.leaves[:w.n], hit)].box()
		}
		b.Intersect(&hb)
		w.bound = hit
	}
	full := FullBox(U128{^uint64(0), ^uint64(0)})
	if narrow {
		for _, p := range t.narrow.parts {
			if p.first < w.bound {
				cell := full
				t.narrow.search(&w, p.root, &cell, true)
			}
		}
	} else {
		for _, p := range t.wide.parts {
			if p.first < w.bound {
				cell := full
				t.wide.search(&w, p.root, &cell, true)
			}
		}
	}
	for _, off := range w.leaves[:w.n] {
		if narrow {
			for i := off; t.narrow.leaf[i].rank < w.bound; i++ {
				if t.narrow.leaf[i].rank >= start {
					eb := t.narrow.entryBox(i)
					b.Exclude(k, &eb)
				}
			}
		} else {
			for i := off; t.wide.leaf[i].rank < w.bound; i++ {
				if t.wide.leaf[i].rank >= start {
					eb := t.wide.leaf[i].box()
					b.Exclude(k, &eb)
				}
			}
		}
	}
	if hit == noRank {
		return -1
	}
	return t.prios[hit]
}

func minU(a, b U128) U128 {
	if less(b, a) {
		return b
	}
	return a
}

func maxU(a, b U128) U128 {
	if less(a, b) {
		return b
	}
	return a
}

// points records k's leaf in every partition holding a rule ranked below
// w.bound.
func (t *wtree) points(w *walk) {
	for _, p := range t.parts {
		if p.first >= w.bound {
			break
		}
		c := p.root
		for c&leafBit == 0 {
			nd := &t.nodes[c]
			if nd.min >= w.bound {
				break
			}
			q := 0
			for range 3 {
				if less(KeyField(w.k, int(nd.f[q]&7)), nd.thr[q]) {
					q = 2*q + 1
				} else {
					q = 2*q + 2
				}
			}
			c = nd.kid[q-7]
		}
		if c&leafBit != 0 {
			w.add(c)
		}
	}
}

func (t *ntree) points(w *walk) {
	for _, p := range t.parts {
		if p.first >= w.bound {
			break
		}
		c := p.root
		for c&leafBit == 0 {
			if t.mins[c] >= w.bound {
				break
			}
			nd := &t.nodes[c]
			q := 0
			for range 3 {
				if less(KeyField(w.k, int(nd.f>>(3*q)&7)), U128{0, uint64(nd.thr[q])}) {
					q = 2*q + 1
				} else {
					q = 2*q + 2
				}
			}
			c = nd.kid[q-7]
		}
		if c&leafBit != 0 {
			w.add(c)
		}
	}
}

// search collects the leaves below kid code c (whose cell is cell; kIn:
// k lies in it) that may hold rules ranked below w.bound, or cuts them
// away from w.b: k's own leaf always, others while the budget lasts. cell
// is changed and restored on the way (no copies: this is the hot loop).
func (t *wtree) search(w *walk, c uint32, cell *Box, kIn bool) {
	if c&leafBit != 0 {
		w.add(c)
		return
	}
	if nd := &t.nodes[c]; nd.min < w.bound {
		t.searchPos(w, nd, 0, cell, kIn)
	}
}

func (t *wtree) searchPos(w *walk, nd *snode, q int, cell *Box, kIn bool) {
	if q >= 7 {
		t.search(w, nd.kid[q-7], cell, kIn)
		return
	}
	f, thr := int(nd.f[q]&7), nd.thr[q]
	lo, hi := cell.Field(f)
	kLeft := less(KeyField(w.k, f), thr)
	for side := range 2 {
		left := kLeft == (side == 0)
		slo, shi, ok := sideRange(lo, hi, thr, left)
		if !ok {
			continue
		}
		cell.SetField(f, slo, shi)
		in := kIn && side == 0
		if w.enter(cell, in) {
			if left {
				t.searchPos(w, nd, 2*q+1, cell, in)
			} else {
				t.searchPos(w, nd, 2*q+2, cell, in)
			}
		}
		cell.SetField(f, lo, hi)
	}
}

func (t *ntree) search(w *walk, c uint32, cell *Box, kIn bool) {
	if c&leafBit != 0 {
		w.add(c)
		return
	}
	if t.mins[c] < w.bound {
		t.searchPos(w, &t.nodes[c], 0, cell, kIn)
	}
}

func (t *ntree) searchPos(w *walk, nd *snode32, q int, cell *Box, kIn bool) {
	if q >= 7 {
		t.search(w, nd.kid[q-7], cell, kIn)
		return
	}
	f, thr := int(nd.f>>(3*q)&7), U128{0, uint64(nd.thr[q])}
	lo, hi := cell.Field(f)
	kLeft := less(KeyField(w.k, f), thr)
	for side := range 2 {
		left := kLeft == (side == 0)
		slo, shi, ok := sideRange(lo, hi, thr, left)
		if !ok {
			continue
		}
		cell.SetField(f, slo, shi)
		in := kIn && side == 0
		if w.enter(cell, in) {
			if left {
				t.searchPos(w, nd, 2*q+1, cell, in)
			} else {
				t.searchPos(w, nd, 2*q+2, cell, in)
			}
		}
		cell.SetField(f, lo, hi)
	}
}

// sideRange is the part of [lo, hi] below thr (left) or at and above it.
func sideRange(lo, hi, thr U128, left bool) (U128, U128, bool) {
	if left {
		if thr == (U128{}) || !less(lo, thr) {
			return lo, hi, false
		}
		return lo, minU(hi, dec(thr)), true
	}
	if less(hi, thr) {
		return lo, hi, false
	}
	return maxU(lo, thr), hi, true
}

// enter reports whether the search goes into a side whose cell is c: one
// that meets the box, k's own, or within the budget; a side past the
// budget is cut away from the box (k is not in it).
func (w *walk) enter(c *Box, kIn bool) bool {
	if !c.Overlaps(w.b) {
		return false
	}
	if !kIn && w.n >= regionLeaves {
		w.b.Exclude(w.k, c)
		return false
	}
	return true
}

// find returns the index of the entry ranked r in one of the leaves.
func (t *wtree) find(leaves []uint32, r int32) uint32 {
	for _, off := range leaves {
		for i := off; t.leaf[i].rank <= r; i++ {
			if t.leaf[i].rank == r {
				return i
			}
		}
	}
	panic("dtree: answer not in its leaf")
}

func (t *ntree) find(leaves []uint32, r int32) uint32 {
	for _, off := range leaves {
		for i := off; t.leaf[i].rank <= r; i++ {
			if t.leaf[i].rank == r {
				return i
			}
		}
	}
	panic("dtree: answer not in its leaf")
}

func (e *entry) box() Box {
	return Box{Src: e.src, Dst: e.dst, Proto: e.proto, SPort: e.sport, DPort: e.dport, ICMPType: e.itype, ICMPCode: e.icode}
}

func (t *ntree) entryBox(i uint32) Box {
	e := &t.leaf[i]
	ic := &t.icmpAll
	if t.icmp != nil {
		ic = &t.icmp[i]
	}
	r32 := func(lo, w uint32) [2]uint32 { return [2]uint32{lo, lo + w} }
	a := func(lo, w uint32) [2]U128 { return [2]U128{{0, uint64(lo)}, {0, uint64(lo) + uint64(w)}} }
	return Box{Src: a(e.lo[1], e.w[1]), Dst: a(e.lo[0], e.w[0]), DPort: r32(e.lo[2], e.w[2]), SPort: r32(e.lo[3], e.w[3]),
		Proto: r32(e.lo[4], e.w[4]), ICMPType: r32(ic.lo[0], ic.w[0]), ICMPCode: r32(ic.lo[1], ic.w[1])}
}
