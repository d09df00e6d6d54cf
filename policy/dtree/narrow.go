package dtree

// ntree is wtree for keys and rules whose addresses fit in 32 bits: every
// threshold then fits in 32 bits too (field values are uint32 and a
// threshold is one past a rule's upper bound, which is below the field's
// maximum), so nodes and leaf entries are about half the size.
type ntree struct {
	nodes []snode32
	mins  []int32 // mins[i] is the lowest rule rank below nodes[i]
	leaf  []entry32
	// icmp[i] is the ICMP ranges of leaf[i], checked only once the other
	// fields match; nil when every rule has the same ones, icmpAll.
	icmp    []icmpSpan
	icmpAll icmpSpan
	parts   []part
}

// snode32 is snode with 32-bit thresholds, in one 64-byte cache line: the
// field of position p is bits 3p..3p+2 of f, and min lives in ntree.mins.
type snode32 struct {
	thr [7]uint32
	f   uint32
	kid [8]uint32
}

// entry32 is entry with 32-bit addresses, each range stored as its low end
// and width so that a key is checked without branches: 44 bytes. The ICMP
// ranges, which few rules constrain, live apart (ntree.icmp).
type entry32 struct {
	rank int32
	lo   [5]uint32 // fields in order fDst, fSrc, fDPort, fSPort, fProto
	w    [5]uint32 // hi - lo
}

// icmpSpan is the ICMP type and code ranges of an entry, as low ends and
// widths.
type icmpSpan struct{ lo, w [2]uint32 }

func span(r [2]uint32) (lo, w uint32) { return r[0], r[1] - r[0] }

// narrow converts a tree compiled with 32-bit addresses.
func (w *wtree) narrow() ntree {
	t := ntree{nodes: make([]snode32, len(w.nodes)), mins: make([]int32, len(w.nodes)),
		leaf: make([]entry32, len(w.leaf)), icmp: make([]icmpSpan, len(w.leaf)), parts: w.parts}
	for i := range w.nodes {
		s, d := &w.nodes[i], &t.nodes[i]
		for p := range 7 {
			d.thr[p] = uint32(s.thr[p].Lo)
			d.f |= uint32(s.f[p]&7) << (3 * p)
		}
		d.kid = s.kid
		t.mins[i] = s.min
	}
	for i := range w.leaf {
		s := &w.leaf[i]
		e := &t.leaf[i]
		e.rank = s.rank
		e.lo[0], e.w[0] = span([2]uint32{uint32(s.dst[0].Lo), uint32(s.dst[1].Lo)})
		e.lo[1], e.w[1] = span([2]uint32{uint32(s.src[0].Lo), uint32(s.src[1].Lo)})
		e.lo[2], e.w[2] = span(s.dport)
		e.lo[3], e.w[3] = span(s.sport)
		e.lo[4], e.w[4] = span(s.proto)
		t.icmp[i].lo[0], t.icmp[i].w[0] = span(s.itype)
		t.icmp[i].lo[1], t.icmp[i].w[1] = span(s.icode)
	}
	same := true
	first := -1
	for i := range w.leaf {
		if w.leaf[i].rank == noRank {
			continue
		}
		if first < 0 {
			first = i
		}
		same = same && t.icmp[i] == t.icmp[first]
	}
	if same && first >= 0 {
		t.icmpAll, t.icmp = t.icmp[first], nil
	}
	return t
}

// lookup is wtree.lookup for a key whose addresses fit in 32 bits.
func (t *ntree) lookup(k *Key, start int32) int32 {
	kv := [8]uint32{uint32(k.Src.Lo), uint32(k.Dst.Lo), k.Proto, k.SPort, k.DPort, k.ICMPType, k.ICMPCode}
	parts := t.parts
	if len(parts) == 0 || t.icmp == nil && !t.icmpAll.has(k) {
		return noRank
	}
	best := int32(noRank)
	for _, p := range parts {
		if p.first >= best {
			break
		}
		c := t.descend(p.root, &kv, best)
		best = t.scan(c&^leafBit, k, start, best)
	}
	return best
}

// has reports whether k's ICMP type and code are in the ranges.
func (s *icmpSpan) has(k *Key) bool {
	return k.ICMPType-s.lo[0] <= s.w[0] && k.ICMPCode-s.lo[1] <= s.w[1]
}

// descend walks from kid code c to a leaf, stopping (at the empty leaf)
// where nothing below can beat best.
func (t *ntree) descend(c uint32, kv *[8]uint32, best int32) uint32 {
	for c&leafBit == 0 {
		if t.mins[c] >= best {
			return leafBit
		}
		// path, by hand: the inliner will not.
		n := &t.nodes[c]
		f := n.f
		m := uint32((uint64(kv[f&7])-uint64(n.thr[0]))>>63) |
			uint32((uint64(kv[f>>3&7])-uint64(n.thr[1]))>>63)<<1 |
			uint32((uint64(kv[f>>6&7])-uint64(n.thr[2]))>>63)<<2 |
			uint32((uint64(kv[f>>9&7])-uint64(n.thr[3]))>>63)<<3 |
			uint32((uint64(kv[f>>12&7])-uint64(n.thr[4]))>>63)<<4 |
			uint32((uint64(kv[f>>15&7])-uint64(n.thr[5]))>>63)<<5 |
			uint32((uint64(kv[f>>18&7])-uint64(n.thr[6]))>>63)<<6
		q := 2 - m&1
		q = 2*q + 2 - (m>>(q&31))&1
		q = 2*q + 2 - (m>>(q&31))&1 - 7
		c = n.kid[q&7]
	}
	return c
}

// path evaluates a super-node's seven comparisons and returns which of its
// eight outcomes the key takes.
func (n *snode32) path(kv *[8]uint32) uint32 {
	// Bit p of m is set when the key goes left at position p.
	m := lt32(kv, n, 0) | lt32(kv, n, 1)<<1 | lt32(kv, n, 2)<<2 | lt32(kv, n, 3)<<3 |
		lt32(kv, n, 4)<<4 | lt32(kv, n, 5)<<5 | lt32(kv, n, 6)<<6
	q := 2 - m&1               // position at depth 1
	q = 2*q + 2 - (m>>q)&1     // depth 2
	q = 2*q + 2 - (m>>q)&1 - 7 // outcome
	return q & 7
}

func lt32(kv *[8]uint32, n *snode32, p int) uint32 {
	return uint32((uint64(kv[n.f>>(3*p)&7]) - uint64(n.thr[p])) >> 63)
}

// scan returns the rank of the first rule in the leaf starting at leaf[off]
// with a rank in [start, best) that matches k, or best.
func (t *ntree) scan(off uint32, k *Key, start, best int32) int32 {
	kv := [5]uint32{uint32(k.Dst.Lo), uint32(k.Src.Lo), k.DPort, k.SPort, k.Proto}
	es := t.leaf[off:]
	for i := range es {
		e := &es[i]
		if e.rank >= best {
			return best
		}
		// v is in [lo, lo+w] iff v-lo (wrapping) <= w: the 64-bit
		// difference w - (v-lo) is then not negative. OR the signs.
		out := (uint64(e.w[0]) - uint64(kv[0]-e.lo[0])) |
			(uint64(e.w[1]) - uint64(kv[1]-e.lo[1])) |
			(uint64(e.w[2]) - uint64(kv[2]-e.lo[2])) |
			(uint64(e.w[3]) - uint64(kv[3]-e.lo[3])) |
			(uint64(e.w[4]) - uint64(kv[4]-e.lo[4]))
		if out>>63 == 0 && e.rank >= start && (t.icmp == nil || t.icmp[int(off)+i].has(k)) {
			return e.rank
		}
	}
	return best
}
