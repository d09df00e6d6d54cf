// Package dtree is a first-match multi-field packet classifier: a set of
// prioritised hyper-rectangles compiled into a decision tree. It knows nothing
// about Calico; policy compiles rules into Rules and asks for the first match.
//
// Lookup allocates nothing and returns no error. A Tree is immutable and safe
// for concurrent use.
//
// # Algorithm
//
// Rules are split into partitions by the field in which they are most
// specific (source or destination address, then destination or source port,
// else none), so that rules wide in one field do not get copied into every
// corner of a tree that splits on it; partitions whose rules mix well are then
// merged again, since every partition costs a lookup a walk. Each partition is
// compiled into a HyperSplit-style binary tree: every inner node compares one
// field of the key against a threshold taken from the rules' range endpoints,
// chosen to balance the rules on both sides; a leaf holds a short list of
// rules sorted by priority, stored by value and checked in full. Copies are
// capped per partition (a budget of leaf entries), so overlapping rules make
// longer leaves, not a memory blow-up. The binary trees are packed into
// super-nodes of three levels whose seven comparisons run without branches.
//
// Keys whose addresses fit in 32 bits (IPv4) use a narrow copy of the trees,
// with every rule clipped to that space and every value in 32 bits; other keys
// use a wide copy holding only the rules that reach beyond it. A lookup walks
// the partitions in priority order, stopping wherever nothing below can beat
// the best match so far, and returns the lowest priority found.
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
	maxParts    = 5  // partitions, see group
	splitSample = 64 // rules sampled when searching a node's cut
	// A node with at most this many rules becomes a leaf. Small sets stay
	// in cache, where a tree level costs less than checking rules; in big
	// ones every level deep down is a cache miss while a leaf's rules are
	// contiguous, so their leaves are longer.
	leafSmall = 3
	leafBig   = 6
	bigSet    = 20000 // rules
	maxDepth  = 48    // guard against pathological sets
	// Each partition's leaves hold at most replication times its rules.
	replication = 8
	smallIPv4   = 16 // an IPv4 address range of at most 2^16 addresses is "small"
	smallIPv6   = 80 // an IPv6 range of at most 2^80 addresses (a /48) is "small"
	smallPort   = 8  // a port range of at most 2^8 ports is "small"
)

const (
	leafBit = 1 << 31           // a kid code with this bit is a leaf
	noRank  = math.MaxInt32     // no match yet; also the rank of leaf sentinels
	max32   = uint64(1)<<32 - 1 // the largest address of the narrow tree
)

// part is one partition: a tree root and the lowest rule rank it holds.
type part struct {
	root  uint32 // a kid code
	first int32
}

// Tree is a compiled classifier. Keys whose two addresses fit in 32 bits
// (IPv4) are looked up in a narrow tree holding every rule clipped to that
// space, in 32-bit form; all other keys in a wide tree holding the rules that
// reach beyond it. Both answers are exact for their keys.
type Tree struct {
	prios  []int32 // priorities in ascending order; a rule's rank is its index
	narrow ntree
	wide   wtree
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
	// Most rules go to one of the two trees: size both for all.
	nrs, wrs := make([]Rule, 0, len(rs)), make([]Rule, 0, len(rs))
	nranks, wranks := make([]int32, 0, len(rs)), make([]int32, 0, len(rs))
	for i := range rs {
		r := rs[i]
		t.prios[i] = r.Priority
		if r.Src[1].Hi != 0 || r.Src[1].Lo > max32 || r.Dst[1].Hi != 0 || r.Dst[1].Lo > max32 {
			wrs, wranks = append(wrs, r), append(wranks, int32(i))
		}
		if r.Src[0].Hi == 0 && r.Src[0].Lo <= max32 && r.Dst[0].Hi == 0 && r.Dst[0].Lo <= max32 {
			clip := func(a *[2]U128) {
				if a[1].Hi != 0 || a[1].Lo > max32 {
					a[1] = U128{0, max32}
				}
			}
			clip(&r.Src)
			clip(&r.Dst)
			nrs, nranks = append(nrs, r), append(nranks, int32(i))
		}
	}
	if len(nrs) > 0 {
		t.narrow = compile(nrs, nranks, U128{0, max32}).narrow()
	}
	if len(wrs) > 0 {
		t.wide = *compile(wrs, wranks, U128{^uint64(0), ^uint64(0)})
	}
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
	var r int32
	if k.Src.Hi|k.Dst.Hi == 0 && (k.Src.Lo|k.Dst.Lo) <= max32 {
		r = t.narrow.lookup(k, start)
	} else {
		r = t.wide.lookup(k, start)
	}
	if r == noRank {
		return -1
	}
	return t.prios[r]
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
