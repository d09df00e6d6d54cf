// Package dtree is a first-match multi-field packet classifier: a set of
// prioritised hyper-rectangles compiled into a decision tree. It knows nothing
// about Calico; policy compiles rules into Rules and asks for the first match.
//
// Lookup allocates nothing and returns no error. A Tree is immutable and safe
// for concurrent use.
package dtree

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

// Tree is a compiled classifier. STUB: replaced by the decision tree.
type Tree struct{ rules []Rule }

// Build compiles rules (any order) into a Tree.
func Build(rules []Rule) *Tree {
	return &Tree{rules: rules}
}

// Lookup returns the priority of the first (lowest-priority) rule matching k
// whose Priority >= from, or -1 when none matches.
func (t *Tree) Lookup(k *Key, from int32) int32 { return -1 }
