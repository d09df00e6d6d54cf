// Package dtree is a first-match multi-field packet classifier: a set of
// prioritised hyper-rectangles compiled into a decision tree. It knows nothing
// about Calico; policy compiles rules into Rules and asks for the first match.
//
// Lookup allocates nothing and returns no error. A Tree is immutable and safe
// for concurrent use.
//
// # Algorithm
//
// Rules are split into a few partitions by how specific their addresses are
// (source small, destination small, neither), so that wildcard-heavy rules do
// not get copied into every corner of a tree built on the other field. Each
// partition is compiled into a HyperSplit-style binary tree: every inner node
// compares one field of the key against one threshold taken from the rules'
// range endpoints, chosen to balance the number of rules on both sides; a
// leaf holds a short list of rule indices sorted by priority that are checked
// in full. A lookup walks every partition (skipping those that cannot beat the
// best match so far) and returns the lowest priority found.
//
// No rule is ever pruned as shadowed, because Lookup's from argument can skip
// any rule: a rule hidden behind a higher-priority one is still the answer
// when the lookup starts after it.
package dtree

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
	"sort"
)

// U128 is a 128-bit unsigned integer: an IPv6 address, or an IPv4 address in Lo.
type U128 struct{ Hi, Lo uint64 }

// Absent values: a packet without ports or without an ICMP header uses these,
// so only rules whose range includes them (wildcards) can match it.
const (
	NoPort uint32 = 65536
	NoICMP uint32 = 256
)

// Rule is one hyper-rectangle; every range is inclusive [lo, hi].
type Rule struct {
	Priority int32 // lower wins; unique within a Tree; >= 0
	Src, Dst [2]U128
	Proto    [2]uint32 // 0..255
	SPort    [2]uint32 // 0..65535, NoPort when the packet has no ports
	DPort    [2]uint32
	ICMPType [2]uint32 // 0..255, NoICMP when the packet has no ICMP header
	ICMPCode [2]uint32
}

// Key is a packet's coordinates.
type Key struct {
	Src, Dst           U128
	Proto              uint32
	SPort, DPort       uint32
	ICMPType, ICMPCode uint32
}

// Field numbers used by tree nodes.
const (
	fSrc = iota
	fDst
	fProto
	fSPort
	fDPort
	fICMPType
	fICMPCode
	numFields
	fLeaf = 7 // node.meta field value of a leaf
)

// Tuning.
const (
	maxParts = 5  // partitions, see group
	leafSize = 6  // a node with at most this many rules becomes a leaf
	maxDepth = 48 // guard against pathological sets
	// Each partition's leaves hold at most replication times its rules.
	replication = 8
	smallIPv4   = 16 // an IPv4 address range of at most 2^16 addresses is "small"
	smallIPv6   = 80 // an IPv6 range of at most 2^80 addresses (a /48) is "small"
	smallPort   = 8  // a port range of at most 2^8 ports is "small"
)

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

const leafBit = 1 << 31

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

const noRank = math.MaxInt32

// part is one partition: a tree root and the lowest rule rank it holds.
type part struct {
	root  uint32 // a kid code
	first int32
}

// Tree is a compiled classifier.
type Tree struct {
	prios []int32 // priorities in ascending order; a rule's rank is its index
	nodes []snode // all partitions' trees
	leaf  []entry // leaf rule lists, each sorted by rank and terminated
	parts []part  // sorted by first
}

// Build compiles rules (any order) into a Tree. Rules with an empty range
// (lo > hi) in any field can match nothing and are dropped.
func Build(rules []Rule) *Tree {
	rs := make([]Rule, 0, len(rules))
	for i := range rules {
		if !empty(&rules[i]) {
			rs = append(rs, rules[i])
		}
	}
	slices.SortStableFunc(rs, func(a, b Rule) int { return cmp.Compare(a.Priority, b.Priority) })

	t := &Tree{prios: make([]int32, len(rs))}
	for i := range rs {
		t.prios[i] = rs[i].Priority
	}
	if len(rs) == 0 {
		return t
	}

	b := newBuilder(rs)
	var groups [maxParts][]int32
	for i := range rs {
		g := group(&rs[i])
		groups[g] = append(groups[g], int32(i))
	}
	var roots []uint32
	for _, ids := range groups {
		if len(ids) == 0 {
			continue
		}
		root := uint32(len(b.nodes))
		b.nodes = append(b.nodes, bnode{})
		b.build(root, ids, b.full, 0, replication*len(ids))
		roots = append(roots, root)
	}
	p := packer{b: b, rs: rs, t: t, leafCode: map[uint32]uint32{}}
	for _, r := range roots {
		t.parts = append(t.parts, part{root: p.pack(r), first: b.nodes[r].min})
	}
	slices.SortFunc(t.parts, func(a, c part) int { return cmp.Compare(a.first, c.first) })
	t.nodes = slices.Clip(t.nodes)
	t.leaf = slices.Clip(t.leaf)
	return t
}

// Lookup returns the priority of the first (lowest-priority) rule matching k
// whose Priority >= from, or -1 when none matches.
func (t *Tree) Lookup(k *Key, from int32) int32 {
	if t == nil || len(t.prios) == 0 {
		return -1
	}
	start := int32(0)
	if from > t.prios[0] {
		start = int32(sort.Search(len(t.prios), func(i int) bool { return t.prios[i] >= from }))
	}
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
	if best == noRank {
		return -1
	}
	return t.prios[best]
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

func in(v U128, r *[2]U128) bool {
	return !less(v, r[0]) && !less(r[1], v)
}

func less(a, b U128) bool { return a.Hi < b.Hi || (a.Hi == b.Hi && a.Lo < b.Lo) }

func empty(r *Rule) bool {
	return less(r.Src[1], r.Src[0]) || less(r.Dst[1], r.Dst[0]) ||
		r.Proto[0] > r.Proto[1] || r.SPort[0] > r.SPort[1] || r.DPort[0] > r.DPort[1] ||
		r.ICMPType[0] > r.ICMPType[1] || r.ICMPCode[0] > r.ICMPCode[1]
}

// group picks a rule's partition: the field in which it is most specific
// (source or destination address, then destination or source port), or 4
// when it is wide in all of them. Every rule of a partition is narrow in that
// partition's field, so its tree can split on it without copying rules that
// are wide there.
func group(r *Rule) int {
	s, d := addrBits(r.Src), addrBits(r.Dst)
	switch {
	case s <= d && s >= 0:
		return 0
	case d >= 0:
		return 1
	case r.DPort[1]-r.DPort[0] < 1<<smallPort:
		return 2
	case r.SPort[1]-r.SPort[0] < 1<<smallPort:
		return 3
	}
	return 4
}

// addrBits is how far an address range is from a single address, in bits
// relative to its family's size (scaled to IPv4's 32 bits), or -1 when the
// range is too wide to partition on.
func addrBits(r [2]U128) int {
	hi, lo := r[1].Hi-r[0].Hi, r[1].Lo-r[0].Lo
	if r[1].Lo < r[0].Lo {
		hi--
	}
	if r[0].Hi == 0 && r[1].Hi == 0 {
		n := bits.Len64(lo)
		if n > smallIPv4 {
			return -1
		}
		return n
	}
	n := bits.Len64(lo)
	if hi != 0 {
		n = 64 + bits.Len64(hi)
	}
	if n > smallIPv6 {
		return -1
	}
	return n / 4
}
