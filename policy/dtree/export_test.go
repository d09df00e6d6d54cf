package dtree

import (
	"fmt"
	"unsafe"
)

// Stats describes the shape of a tree, for tuning.
func (t *Tree) Stats() string {
	s := fmt.Sprintf("rules %d snodes %d leafEntries %d (%.2f/rule) bytes~%d\n", len(t.prios), len(t.nodes), len(t.leaf),
		float64(len(t.leaf))/float64(max(1, len(t.prios))), len(t.prios)*4+len(t.nodes)*int(unsafe.Sizeof(snode{}))+len(t.leaf)*int(unsafe.Sizeof(entry{})))
	for _, p := range t.parts {
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
				for t.leaf[c&^leafBit+uint32(n)].rank != noRank {
					n++
				}
				leaves++
				maxLeaf = max(maxLeaf, n)
				maxD = max(maxD, d)
				sumD += d
				return
			}
			for _, k := range t.nodes[c].kid {
				walk(k, d+1)
			}
		}
		walk(p.root, 0)
		s += fmt.Sprintf("  part first %d: leaves %d maxLeaf %d snode depth max %d avg %.1f\n", p.first, leaves, maxLeaf, maxD, float64(sumD)/float64(max(leaves, 1)))
	}
	return s
}
