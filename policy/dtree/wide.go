package dtree

import "math/bits"

// wtree is a set of partition trees over full 128-bit addresses.
type wtree struct {
	nodes []snode // all partitions' trees
	leaf  []entry // leaf rule lists, each sorted by rank and terminated
	parts []part  // sorted by first
}

// snode is a super-node: a complete binary subtree of depth 3 packed into
// one struct. A lookup evaluates its seven comparisons at once (they depend
// only on the key) and then follows the path through them in registers, so
// three tree levels cost about one dependent memory load instead of three.
// Position p (heap order: children of p are 2p+1, 2p+2) sends a key whose
// field f[p] is below thr[p] left, otherwise right; the eight outcomes are
// kid[0..7]. A position below a leaf compares against 0 (always right) and
// carries the leaf down.
type snode struct {
	thr [7]U128
	f   [7]uint8
	min int32     // lowest rule rank below; a lookup with a better match stops
	kid [8]uint32 // snode index, or leafBit | index of the leaf's first entry
}

// entry is a rule as stored, by value, in a leaf: leaves are scanned
// sequentially and rules are rarely copied, so this costs little memory and
// saves a cache miss per rule checked. Fields checked first come first. Each
// leaf ends with a sentinel entry whose rank is noRank.
type entry struct {
	rank  int32 // index in priority order
	dport [2]uint32
	sport [2]uint32
	proto [2]uint32
	dst   [2]U128
	src   [2]U128
	itype [2]uint32
	icode [2]uint32
}

// lookup returns the lowest rank >= start whose rule matches k, or noRank.
func (t *wtree) lookup(k *Key, start int32) int32 {
	var kv [8]U128
	kv[fSrc] = k.Src
	kv[fDst] = k.Dst
	kv[fProto].Lo = uint64(k.Proto)
	kv[fSPort].Lo = uint64(k.SPort)
	kv[fDPort].Lo = uint64(k.DPort)
	kv[fICMPType].Lo = uint64(k.ICMPType)
	kv[fICMPCode].Lo = uint64(k.ICMPCode)

	best := int32(noRank)
	nodes := t.nodes
	for _, p := range t.parts {
		if p.first >= best {
			break
		}
		c := p.root
		for c&leafBit == 0 {
			n := &nodes[c]
			if n.min >= best {
				break
			}
			// Bit p of m is set when the key goes left at position p.
			m := lt(&kv, n, 0) | lt(&kv, n, 1)<<1 | lt(&kv, n, 2)<<2 | lt(&kv, n, 3)<<3 |
				lt(&kv, n, 4)<<4 | lt(&kv, n, 5)<<5 | lt(&kv, n, 6)<<6
			q := 2 - m&1               // position at depth 1
			q = 2*q + 2 - (m>>q)&1     // depth 2
			q = 2*q + 2 - (m>>q)&1 - 7 // outcome
			c = n.kid[q&7]
		}
		if c&leafBit != 0 {
			best = scan(t.leaf[c&^leafBit:], k, start, best)
		}
	}
	return best
}

// lt is 1 when the key's value in position p's field is below its
// threshold: the borrow out of a branch-free 128-bit subtraction.
func lt(kv *[8]U128, n *snode, p int) uint32 {
	v := &kv[n.f[p]&7]
	_, br := bits.Sub64(v.Lo, n.thr[p].Lo, 0)
	_, br = bits.Sub64(v.Hi, n.thr[p].Hi, br)
	return uint32(br)
}

// scan returns the rank of the first rule in the leaf starting at es[0] with a
// rank in [start, best) that matches k, or best.
func scan(es []entry, k *Key, start, best int32) int32 {
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
			in(k.Dst, &e.dst) && in(k.Src, &e.src) &&
			k.ICMPType >= e.itype[0] && k.ICMPType <= e.itype[1] &&
			k.ICMPCode >= e.icode[0] && k.ICMPCode <= e.icode[1] {
			return e.rank
		}
	}
	return best
}
