package dtree

import (
	"fmt"
	"unsafe"
)

// entries is the number of leaf entries, sentinels included.
func (t *Tree) entries() int { return len(t.narrow.leaf) + len(t.wide.leaf) }

// Stats describes the shape of a tree, for tuning.
func (t *Tree) Stats() string {
	s := fmt.Sprintf("rules %d; narrow: %d snodes, %d entries, %d bytes; wide: %d snodes, %d entries, %d bytes\n", len(t.prios),
		len(t.narrow.nodes), len(t.narrow.leaf), len(t.narrow.nodes)*int(unsafe.Sizeof(snode32{}))+len(t.narrow.leaf)*int(unsafe.Sizeof(entry32{})),
		len(t.wide.nodes), len(t.wide.leaf), len(t.wide.nodes)*int(unsafe.Sizeof(snode{}))+len(t.wide.leaf)*int(unsafe.Sizeof(entry{})))
	for _, p := range t.narrow.parts {
		var leaves, maxLeaf, maxD, sumD int
		seen := map[uint32]bool{}
		var walk func(c uint32, d int)
		walk = func(c uint32, d int) {
			if c&leafBit != 0 {
				if seen[c] {
					return
				}
				seen[c] = true
				n := 0
				for t.narrow.leaf[c&^leafBit+uint32(n)].rank != noRank {
					n++
				}
				leaves++
				maxLeaf = max(maxLeaf, n)
				maxD = max(maxD, d)
				sumD += d
				return
			}
			for _, k := range t.narrow.nodes[c].kid {
				walk(k, d+1)
			}
		}
		walk(p.root, 0)
		s += fmt.Sprintf("  narrow part first %d: leaves %d maxLeaf %d snode depth max %d avg %.1f\n", p.first, leaves, maxLeaf, maxD, float64(sumD)/float64(max(leaves, 1)))
	}
	return s
}

// Counts mirrors ntree.lookup and counts its work, for tuning.
func (t *Tree) Counts(k *Key) (parts, snodes, entries int) {
	nt := &t.narrow
	kv := [8]uint32{uint32(k.Src.Lo), uint32(k.Dst.Lo), k.Proto, k.SPort, k.DPort, k.ICMPType, k.ICMPCode}
	best := int32(noRank)
	for _, p := range nt.parts {
		if p.first >= best {
			continue
		}
		parts++
		c := p.root
		for c&leafBit == 0 {
			n := &nt.nodes[c]
			if nt.mins[c] >= best {
				c = leafBit
				break
			}
			snodes++
			c = n.kid[n.path(&kv)]
		}
		for i, e := range nt.leaf[c&^leafBit:] {
			if e.rank >= best {
				break
			}
			entries++
			if r := nt.scan(c&^leafBit+uint32(i), k, 0, e.rank+1); r == e.rank {
				best = r
				break
			}
		}
	}
	return
}
