package dtree

// ntree is wtree for keys and rules whose addresses fit in 32 bits: every
// threshold then fits in 32 bits too (field values are uint32 and a
// threshold is one past a rule's upper bound, which is below the field's
// maximum), so nodes and leaf entries are about half the size.
type ntree struct {
	nodes []snode32
	leaf  []entry32
	parts []part
}

// snode32 is snode with 32-bit thresholds: 72 bytes.
type snode32 struct {
	thr [7]uint32
	f   [8]uint8
	min int32
	kid [8]uint32
}

// entry32 is entry with 32-bit addresses: 60 bytes.
type entry32 struct {
	rank  int32
	dport [2]uint32
	sport [2]uint32
	proto [2]uint32
	dst   [2]uint32
	src   [2]uint32
	itype [2]uint32
	icode [2]uint32
}

// narrow converts a tree compiled with 32-bit addresses.
func (w *wtree) narrow() ntree {
	t := ntree{nodes: make([]snode32, len(w.nodes)), leaf: make([]entry32, len(w.leaf)), parts: w.parts}
	for i := range w.nodes {
		s, d := &w.nodes[i], &t.nodes[i]
		for p := range 7 {
			d.thr[p] = uint32(s.thr[p].Lo)
			d.f[p] = s.f[p]
		}
		d.min, d.kid = s.min, s.kid
	}
	for i := range w.leaf {
		s := &w.leaf[i]
		t.leaf[i] = entry32{rank: s.rank, dport: s.dport, sport: s.sport, proto: s.proto,
			dst:   [2]uint32{uint32(s.dst[0].Lo), uint32(s.dst[1].Lo)},
			src:   [2]uint32{uint32(s.src[0].Lo), uint32(s.src[1].Lo)},
			itype: s.itype, icode: s.icode}
	}
	return t
}

// lookup is wtree.lookup for a key whose addresses fit in 32 bits.
func (t *ntree) lookup(k *Key, start int32) int32 {
	kv := [8]uint32{uint32(k.Src.Lo), uint32(k.Dst.Lo), k.Proto, k.SPort, k.DPort, k.ICMPType, k.ICMPCode}
	nodes, leaf, parts := t.nodes, t.leaf, t.parts
	if len(parts) == 0 {
		return noRank
	}
	// The first partition holds the highest-priority rules: its answer
	// often settles the lookup, and it prunes the others.
	c := t.descend(parts[0].root, &kv, noRank)
	best := scan32(leaf[c&^leafBit:], k, start, noRank)

	// Descend the rest in lockstep, one super-node level at a time, so that
	// their cache misses overlap; a partition stops where nothing below can
	// beat best. Then touch the leaves' first entries, for the same reason,
	// before scanning them.
	var cur [maxParts]uint32
	np := 0
	for _, p := range parts[1:] {
		if p.first < best {
			cur[np] = p.root
			np++
		}
	}
	for more := np > 0; more; {
		more = false
		for j := range np {
			c := cur[j]
			if c&leafBit != 0 {
				continue
			}
			n := &nodes[c]
			if n.min >= best {
				cur[j] = leafBit // the empty leaf
				continue
			}
			cur[j] = n.kid[n.path(&kv)]
			more = true
		}
	}
	var touch int32
	for j := range np {
		touch |= leaf[cur[j]&^leafBit].rank
	}
	if touch < 0 { // never (ranks are not negative); keeps the loads
		return noRank
	}
	for j := range np {
		best = scan32(leaf[cur[j]&^leafBit:], k, start, best)
	}
	return best
}

// descend walks from kid code c to a leaf, stopping (at the empty leaf)
// where nothing below can beat best.
func (t *ntree) descend(c uint32, kv *[8]uint32, best int32) uint32 {
	for c&leafBit == 0 {
		n := &t.nodes[c]
		if n.min >= best {
			return leafBit
		}
		c = n.kid[n.path(kv)]
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
	return uint32((uint64(kv[n.f[p]&7]) - uint64(n.thr[p])) >> 63)
}

func scan32(es []entry32, k *Key, start, best int32) int32 {
	src, dst := uint32(k.Src.Lo), uint32(k.Dst.Lo)
	for i := range es {
		e := &es[i]
		if e.rank >= best {
			return best
		}
		if e.rank < start {
			continue
		}
		if k.DPort >= e.dport[0] && k.DPort <= e.dport[1] &&
			k.SPort >= e.sport[0] && k.SPort <= e.sport[1] &&
			k.Proto >= e.proto[0] && k.Proto <= e.proto[1] &&
			dst >= e.dst[0] && dst <= e.dst[1] && src >= e.src[0] && src <= e.src[1] &&
			k.ICMPType >= e.itype[0] && k.ICMPType <= e.itype[1] &&
			k.ICMPCode >= e.icode[0] && k.ICMPCode <= e.icode[1] {
			return e.rank
		}
	}
	return best
}
