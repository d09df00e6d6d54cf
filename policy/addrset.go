package policy

import (
	"net/netip"
	"sort"

	"github.com/nfgate/nfgate/policy/dtree"
)

// Interval arithmetic over addresses and ports, used to turn a rule's set-valued
// fields into hyper-rectangles. Addresses are dtree.U128: an IPv4 address in Lo,
// an IPv6 address in Hi:Lo. The two families never share a tree.

type u128 = dtree.U128

func less128(a, b u128) bool { return a.Hi < b.Hi || (a.Hi == b.Hi && a.Lo < b.Lo) }
func le128(a, b u128) bool   { return !less128(b, a) }

func inc128(a u128) u128 {
	a.Lo++
	if a.Lo == 0 {
		a.Hi++
	}
	return a
}

func dec128(a u128) u128 {
	if a.Lo == 0 {
		a.Hi--
	}
	a.Lo--
	return a
}

// famMax is the largest address of family fam (4 or 6).
func famMax(fam uint8) u128 {
	if fam == 4 {
		return u128{Lo: 0xffffffff}
	}
	return u128{Hi: ^uint64(0), Lo: ^uint64(0)}
}

// addrU128 converts an address of the packet's family. ok is false when the
// address is not of that family.
func addrU128(a netip.Addr, fam uint8) (u128, bool) {
	if fam == 4 {
		if !a.Is4() && !a.Is4In6() {
			return u128{}, false
		}
		b := a.As4()
		return u128{Lo: uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}, true
	}
	if !a.Is6() {
		return u128{}, false
	}
	b := a.As16()
	var hi, lo uint64
	for i := 0; i < 8; i++ {
		hi = hi<<8 | uint64(b[i])
		lo = lo<<8 | uint64(b[8+i])
	}
	return u128{Hi: hi, Lo: lo}, true
}

// prefixFamily is the family of a prefix (4 or 6).
func prefixFamily(p netip.Prefix) uint8 {
	if p.Addr().Is4() {
		return 4
	}
	return 6
}

// span is an inclusive address range.
type span struct{ lo, hi u128 }

// spans is a sorted list of disjoint, non-adjacent spans.
type spans []span

// fullSpans returns the family's whole address space. The result is shared:
// callers must not modify it.
func fullSpans(fam uint8) spans {
	if fam == 6 {
		return full6
	}
	return full4
}

var full4, full6 = spans{{hi: famMax(4)}}, spans{{hi: famMax(6)}}

func prefixSpan(p netip.Prefix) span {
	p = p.Masked()
	fam := prefixFamily(p)
	lo, _ := addrU128(p.Addr(), fam)
	hostBits := 32 - p.Bits()
	if fam == 6 {
		hostBits = 128 - p.Bits()
	}
	hi := lo
	switch {
	case hostBits >= 128:
		hi = u128{Hi: ^uint64(0), Lo: ^uint64(0)}
	case hostBits >= 64:
		hi.Lo = ^uint64(0)
		hi.Hi |= (uint64(1) << (hostBits - 64)) - 1
		if hostBits == 128 {
			hi.Hi = ^uint64(0)
		}
	case hostBits > 0:
		hi.Lo |= (uint64(1) << hostBits) - 1
	}
	return span{lo, hi}
}

// normalize sorts and merges overlapping or adjacent spans.
func normalize(s spans) spans {
	if len(s) <= 1 {
		return s
	}
	sort.Slice(s, func(i, j int) bool { return less128(s[i].lo, s[j].lo) })
	out := s[:1]
	for _, x := range s[1:] {
		last := &out[len(out)-1]
		if last.hi == (u128{Hi: ^uint64(0), Lo: ^uint64(0)}) || le128(x.lo, inc128(last.hi)) {
			if less128(last.hi, x.hi) {
				last.hi = x.hi
			}
			continue
		}
		out = append(out, x)
	}
	return out
}

// prefixSpans returns the union of the prefixes of family fam.
func prefixSpans(ps []netip.Prefix, fam uint8) spans {
	var s spans
	for _, p := range ps {
		if p.IsValid() && prefixFamily(p) == fam {
			s = append(s, prefixSpan(p))
		}
	}
	return normalize(s)
}

// complement returns the family's address space minus s.
func (s spans) complement(fam uint8) spans {
	var out spans
	next := u128{}
	max := famMax(fam)
	done := false
	for _, x := range s {
		if less128(next, x.lo) {
			out = append(out, span{next, dec128(x.lo)})
		}
		if x.hi == max {
			done = true
			break
		}
		next = inc128(x.hi)
	}
	if !done {
		out = append(out, span{next, max})
	}
	return out
}

// intersect returns s ∩ t.
func (s spans) intersect(t spans) spans {
	var out spans
	i, j := 0, 0
	for i < len(s) && j < len(t) {
		lo, hi := s[i].lo, s[i].hi
		if less128(lo, t[j].lo) {
			lo = t[j].lo
		}
		if less128(t[j].hi, hi) {
			hi = t[j].hi
		}
		if le128(lo, hi) {
			out = append(out, span{lo, hi})
		}
		if less128(s[i].hi, t[j].hi) {
			i++
		} else {
			j++
		}
	}
	return out
}

func (s spans) contains(a u128) bool {
	i := sort.Search(len(s), func(i int) bool { return le128(a, s[i].hi) })
	return i < len(s) && le128(s[i].lo, a)
}

// rng is an inclusive range of small values (ports, protocols, ICMP fields).
type rng [2]uint32

// normRanges sorts and merges ranges.
func normRanges(r []rng) []rng {
	if len(r) <= 1 {
		return r
	}
	sort.Slice(r, func(i, j int) bool { return r[i][0] < r[j][0] })
	out := r[:1]
	for _, x := range r[1:] {
		last := &out[len(out)-1]
		if x[0] <= last[1]+1 {
			if x[1] > last[1] {
				last[1] = x[1]
			}
			continue
		}
		out = append(out, x)
	}
	return out
}

// complementRanges returns [0, max] minus r (r normalized).
func complementRanges(r []rng, max uint32) []rng {
	var out []rng
	next := uint32(0)
	for _, x := range r {
		if x[0] > max {
			break
		}
		if x[0] > next {
			out = append(out, rng{next, x[0] - 1})
		}
		next = x[1] + 1
	}
	if next <= max {
		out = append(out, rng{next, max})
	}
	return out
}

func inRanges(r []rng, v uint32) bool {
	for _, x := range r {
		if v >= x[0] && v <= x[1] {
			return true
		}
	}
	return false
}

func intersectRng(a, b rng) (rng, bool) {
	lo, hi := a[0], a[1]
	if b[0] > lo {
		lo = b[0]
	}
	if b[1] < hi {
		hi = b[1]
	}
	return rng{lo, hi}, lo <= hi
}
