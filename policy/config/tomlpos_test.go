package config

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestPosIndexIsPathStrings: the position index's trie names a path exactly
// as its string `a.b[2].c` does, even for quoted keys holding '.', '[' or
// ']', or empty: two key paths share a node if and only if their strings
// are equal.
func TestPosIndexIsPathStrings(t *testing.T) {
	x := newPosIndex(1)
	nodeOf := map[string]int32{"": 0}
	pathOf := map[int32]string{0: ""}
	r := rand.New(rand.NewPCG(1, 2))
	atoms := []string{"a", "b", ".", "[", "]", "0", "1", "07", "00", "", "[0]", "a.b", "]x"}
	for range 20000 {
		id, path := int32(0), ""
		for d := r.IntN(5); d >= 0; d-- {
			if r.IntN(3) == 0 {
				i := r.IntN(3)
				id, path = x.index(id, i, true), fmt.Sprintf("%s[%d]", path, i)
				continue
			}
			seg := ""
			for n := r.IntN(3); n >= 0; n-- {
				seg += atoms[r.IntN(len(atoms))]
			}
			id, path = x.key(id, seg, true), joinPath(path, seg)
		}
		if n, ok := nodeOf[path]; ok && n != id {
			t.Fatalf("path %q: node %d, earlier %d", path, id, n)
		}
		if p, ok := pathOf[id]; ok && p != path {
			t.Fatalf("node %d: path %q, earlier %q", id, path, p)
		}
		nodeOf[path], pathOf[id] = id, path
	}
	if len(nodeOf) < 1000 {
		t.Fatalf("only %d distinct paths tried", len(nodeOf))
	}
}
