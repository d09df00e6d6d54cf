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
	leafSize = 6  // a node with at most this many rules becomes a leaf
	maxDepth = 48 // guard against pathological sets
	// Each partition's leaves hold at most replication times its rules.
	replication = 8
	smallIPv4   = 16 // an IPv4 address range of at most 2^16 addresses is "small"
	smallIPv6   = 80 // an IPv6 range of at most 2^80 addresses (a /48) is "small"
	smallPort   = 8  // a port range of at most 2^8 ports is "small"
)

// node is one tree node, 24 bytes. An inner node sends a key whose value in
// field meta&7 is below thr to child meta>>3, otherwise to child (meta>>3)+1.
// A leaf (meta&7 == fLeaf) holds n rule indices starting at leaf[meta>>3].
type node struct {
	thr  U128
	meta uint32
	n    uint32
}

// crule is the form of a Rule checked in leaves.
type crule struct {
	src, dst [2]U128
	dport    [2]uint32
	sport    [2]uint32
	proto    [2]uint32
	itype    [2]uint32
	icode    [2]uint32
}

// part is one partition: a tree root and the lowest rule index it holds.
type part struct {
	root  uint32
	first int32
}

// Tree is a compiled classifier.
type Tree struct {
	rules []crule // sorted by priority; a rule's index is its rank
	prios []int32 // prios[i] is the priority of rules[i]
	nodes []node  // all partitions' trees
	leaf  []int32 // leaf rule lists, each sorted ascending
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

	t := &Tree{
		rules: make([]crule, len(rs)),
		prios: make([]int32, len(rs)),
	}
	for i := range rs {
		r := &rs[i]
		t.rules[i] = crule{
			src: r.Src, dst: r.Dst,
			dport: r.DPort, sport: r.SPort, proto: r.Proto,
			itype: r.ICMPType, icode: r.ICMPCode,
		}
		t.prios[i] = r.Priority
	}
	if len(rs) == 0 {
		return t
	}

	b := newBuilder(rs)
	var groups [5][]int32
	for i := range rs {
		g := group(&rs[i])
		groups[g] = append(groups[g], int32(i))
	}
	for _, ids := range groups {
		if len(ids) == 0 {
			continue
		}
		root := uint32(len(b.nodes))
		b.nodes = append(b.nodes, node{})
		b.build(root, ids, b.full, 0, replication*len(ids))
		t.parts = append(t.parts, part{root: root, first: ids[0]})
	}
	slices.SortFunc(t.parts, func(a, c part) int { return cmp.Compare(a.first, c.first) })
	t.nodes = slices.Clip(b.nodes)
	t.leaf = slices.Clip(b.leaf)
	return t
}

// Lookup returns the priority of the first (lowest-priority) rule matching k
// whose Priority >= from, or -1 when none matches.
func (t *Tree) Lookup(k *Key, from int32) int32 {
	if t == nil || len(t.rules) == 0 {
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

	best := int32(len(t.rules))
	nodes := t.nodes
	for _, p := range t.parts {
		if p.first >= best {
			break
		}
		i := p.root
		for {
			nd := &nodes[i]
			f := nd.meta & 7
			if f == fLeaf {
				best = t.scan(t.leaf[nd.meta>>3:][:nd.n], k, start, best)
				break
			}
			v := &kv[f]
			c := nd.meta >> 3
			if v.Hi < nd.thr.Hi || (v.Hi == nd.thr.Hi && v.Lo < nd.thr.Lo) {
				i = c
			} else {
				i = c + 1
			}
		}
	}
	if best == int32(len(t.rules)) {
		return -1
	}
	return t.prios[best]
}

// scan returns the first rule index in ids within [start, best) whose rule
// matches k, or best.
func (t *Tree) scan(ids []int32, k *Key, start, best int32) int32 {
	for _, id := range ids {
		if id < start {
			continue
		}
		if id >= best {
			return best
		}
		r := &t.rules[id]
		if k.DPort >= r.dport[0] && k.DPort <= r.dport[1] &&
			in(k.Dst, &r.dst) && in(k.Src, &r.src) &&
			k.SPort >= r.sport[0] && k.SPort <= r.sport[1] &&
			k.Proto >= r.proto[0] && k.Proto <= r.proto[1] &&
			k.ICMPType >= r.itype[0] && k.ICMPType <= r.itype[1] &&
			k.ICMPCode >= r.icode[0] && k.ICMPCode <= r.icode[1] {
			return id
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
