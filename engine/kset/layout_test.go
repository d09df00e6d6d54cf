package kset

import (
	"math/rand/v2"
	"testing"

	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/policy/dtree"
)

// An element's kernel key decodes back to the element, for every set.
func TestKeyRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, l := range allLayoutsPortable() {
		for range 50 {
			el := engine.RegionElem{Stage: l.st, Fam: l.fam, Kind: l.kind, InIf: r.Uint32()}
			if l.hasOut() {
				el.OutIf = r.Uint32()
			}
			for c := range 2 {
				if l.fam == 4 {
					el.Src[c], el.Dst[c] = dtree.U128{Lo: uint64(r.Uint32())}, dtree.U128{Lo: uint64(r.Uint32())}
				} else {
					el.Src[c], el.Dst[c] = dtree.U128{Hi: r.Uint64(), Lo: r.Uint64()}, dtree.U128{Hi: r.Uint64(), Lo: r.Uint64()}
				}
				el.Proto[c] = uint8(r.Uint32())
				switch l.kind {
				case engine.RegionPorts:
					el.A[c], el.B[c] = uint16(r.Uint32()), uint16(r.Uint32())
				case engine.RegionICMP:
					el.A[c], el.B[c] = uint16(r.IntN(256)), uint16(r.IntN(256))
				}
			}
			lo, hi := l.key(&el, 0), l.key(&el, 1)
			if len(lo) != l.keyLen() || len(lo) > 64 {
				t.Fatalf("%s: key of %d bytes, layout says %d (the kernel takes at most 64)", setName(l.st, l.fam, l.kind), len(lo), l.keyLen())
			}
			got, err := l.decode(lo, hi)
			if err != nil || got != el {
				t.Fatalf("%s: %+v decoded as %+v (%v)", setName(l.st, l.fam, l.kind), el, got, err)
			}
		}
	}
}

func allLayoutsPortable() []layout {
	var ls []layout
	for _, st := range stages {
		for _, fam := range []uint8{4, 6} {
			for k := engine.RegionKind(0); k < 3; k++ {
				ls = append(ls, layout{st: st, fam: fam, kind: k})
			}
		}
	}
	return ls
}
