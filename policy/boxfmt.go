package policy

import (
	"math/bits"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nfgate/nfgate/policy/dtree"
)

// Formatting boxes for people: addresses as CIDR prefixes (or a range when
// that would take more than a few prefixes), protocols by name, port and
// ICMP ranges, leaving out what a box does not constrain.

// maxPrefixes is the most prefixes an address range is shown as; a range
// needing more is shown as first-last.
const maxPrefixes = 3

// RangePrefixes returns the shortest list of prefixes covering exactly the
// addresses [lo, hi] of family fam, stopping after max+1 prefixes (max <=
// 0: no limit).
func RangePrefixes(fam uint8, lo, hi dtree.U128, max int) []netip.Prefix {
	width := 32
	if fam == 6 {
		width = 128
	}
	var out []netip.Prefix
	for !less128(hi, lo) {
		// The largest aligned block starting at lo that ends by hi.
		n := trailingZeros128(lo, width)
		for n > 0 && less128(hi, orMask(lo, n)) {
			n--
		}
		out = append(out, netip.PrefixFrom(AddrOf(fam, lo), width-n))
		last := orMask(lo, n)
		if (max > 0 && len(out) > max) || last == hi {
			break
		}
		lo = inc128(last)
	}
	return out
}

// orMask sets the n lowest bits of v.
func orMask(v u128, n int) u128 {
	switch {
	case n >= 128:
		return u128{Hi: ^uint64(0), Lo: ^uint64(0)}
	case n >= 64:
		return u128{Hi: v.Hi | (1<<(n-64) - 1), Lo: ^uint64(0)}
	}
	return u128{Hi: v.Hi, Lo: v.Lo | (1<<n - 1)}
}

// trailingZeros128 is the number of trailing zero bits of v, at most width.
func trailingZeros128(v u128, width int) int {
	n := 128
	if v.Lo != 0 {
		n = bits.TrailingZeros64(v.Lo)
	} else if v.Hi != 0 {
		n = 64 + bits.TrailingZeros64(v.Hi)
	}
	return min(n, width)
}

// AddrRange formats the addresses [lo, hi] of family fam.
func AddrRange(fam uint8, lo, hi dtree.U128) string {
	ps := RangePrefixes(fam, lo, hi, maxPrefixes)
	if len(ps) > maxPrefixes {
		return AddrOf(fam, lo).String() + "-" + AddrOf(fam, hi).String()
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		if p.Bits() == p.Addr().BitLen() {
			s[i] = p.Addr().String()
		} else {
			s[i] = p.String()
		}
	}
	return strings.Join(s, ",")
}

// ProtoName is a protocol's name (tcp, udp, icmp, icmpv6, sctp, udplite) or number.
func ProtoName(p uint32) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "icmpv6"
	case 132:
		return "sctp"
	case 136:
		return "udplite"
	}
	return strconv.FormatUint(uint64(p), 10)
}

// fmtRange formats [lo, hi] of small values with absent (NoPort, NoICMP)
// shown as "none".
func fmtRange(r [2]uint32, absent uint32, name func(uint32) string) string {
	num := func(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
	if name == nil {
		name = num
	}
	switch {
	case r[0] == absent:
		return "none"
	case r[1] == absent && r[0] == absent-1:
		return name(r[0]) + " or none"
	case r[1] == absent:
		return num(r[0]) + "-" + num(absent-1) + " or none"
	case r[0] == r[1]:
		return name(r[0])
	}
	return num(r[0]) + "-" + num(r[1])
}

// Fields returns the box's constraints for people, in field order, as
// name/value pairs; fields the box does not constrain are left out: full
// ranges, and port and ICMP ranges that are all a protocol's packets have
// (ports 0-65535 for TCP, UDP, SCTP and UDPLite, none for others).
func (b Box) Fields() [][2]string {
	var out [][2]string
	max := famMax(b.Fam)
	if b.Src != [2]u128{{}, max} {
		out = append(out, [2]string{"src", AddrRange(b.Fam, b.Src[0], b.Src[1])})
	}
	if b.Dst != [2]u128{{}, max} {
		out = append(out, [2]string{"dst", AddrRange(b.Fam, b.Dst[0], b.Dst[1])})
	}
	if b.Proto != [2]uint32{0, 255} {
		out = append(out, [2]string{"proto", fmtRange(b.Proto, 256, ProtoName)})
	}
	ported, icmp, other := false, false, false
	for p := b.Proto[0]; p <= b.Proto[1]; p++ {
		switch {
		case p == icmpProto(b.Fam):
			icmp = true
		case p == 6 || p == 17 || p == 132 || p == 136:
			ported = true
		default:
			other = true
		}
	}
	onlyPorted := ported && !icmp && !other
	for _, pf := range []struct {
		name string
		r    [2]uint32
	}{{"sport", b.SPort}, {"dport", b.DPort}} {
		switch {
		case pf.r == [2]uint32{0, dtree.NoPort}:
		case pf.r == [2]uint32{0, 65535} && onlyPorted:
		case pf.r == [2]uint32{dtree.NoPort, dtree.NoPort} && !ported:
		default:
			out = append(out, [2]string{pf.name, fmtRange(pf.r, dtree.NoPort, nil)})
		}
	}
	onlyICMP := icmp && !ported && !other
	for _, f := range []struct {
		name string
		r    [2]uint32
	}{{"icmp-type", b.ICMPType}, {"icmp-code", b.ICMPCode}} {
		switch {
		case f.r == [2]uint32{0, dtree.NoICMP}:
		case f.r == [2]uint32{0, 255} && onlyICMP:
		case f.r == [2]uint32{dtree.NoICMP, dtree.NoICMP} && !icmp:
		default:
			out = append(out, [2]string{f.name, fmtRange(f.r, dtree.NoICMP, nil)})
		}
	}
	return out
}

// String formats the box as "src A dst B proto P sport S dport D
// icmp-type T icmp-code C", leaving out what it does not constrain ("any"
// when nothing is left). A port-carrying protocol with ports "none" means
// its non-first fragments.
func (b Box) String() string {
	fs := b.Fields()
	if len(fs) == 0 {
		return "any"
	}
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f[0] + " " + f[1]
	}
	return strings.Join(parts, " ")
}
