package engine

import (
	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/dtree"
)

// From a proven box to the elements a kernel set takes. A box of
// policy.RegionIn is a range per key field; the kernel's sets match one
// packet kind each (ports, ICMP, other protocols), so an element is the
// part of the box of the denied packet's own kind, with the fields that
// kind has. Every packet an element matches has a key in the box: the
// element never widens the box.

// portedProto reports whether packets of protocol p carry ports (the
// decoder's and the kernel's transport header both start with them).
func portedProto(p uint32) bool {
	switch uint8(p) {
	case classify.ProtoTCP, classify.ProtoUDP, classify.ProtoSCTP, classify.ProtoUDPLite:
		return p <= 255
	}
	return false
}

// specialProto reports whether p is ported or ICMP in either family: the
// "other" sets never hold one (an IPv4 packet of protocol 58 has no ICMP
// fields for the decoder, but it is left to the queue all the same).
func specialProto(p uint32) bool {
	return portedProto(p) || p == uint32(classify.ProtoICMP) || p == uint32(classify.ProtoICMPv6)
}

func icmpProtoOf(fam uint8) uint32 {
	if fam == 6 {
		return uint32(classify.ProtoICMPv6)
	}
	return uint32(classify.ProtoICMP)
}

// regionKindOf returns the kernel set kind of a packet's key.
func regionKindOf(fam uint8, k *dtree.Key) (RegionKind, bool) {
	switch {
	case k.SPort != dtree.NoPort && portedProto(k.Proto):
		return RegionPorts, true
	case k.ICMPType != dtree.NoICMP && k.Proto == icmpProtoOf(fam):
		return RegionICMP, true
	case k.SPort == dtree.NoPort && k.ICMPType == dtree.NoICMP && !specialProto(k.Proto):
		return RegionOther, true
	}
	return 0, false
}

// serviceShape is every packet of k's kind from any source (address and
// port) to k's destination address, protocol and port (or ICMP type and
// code).
func serviceShape(fam uint8, k *dtree.Key) policy.Box {
	b := policy.FullBox(fam)
	b.Dst = [2]dtree.U128{k.Dst, k.Dst}
	b.Proto = [2]uint32{k.Proto, k.Proto}
	b.DPort = [2]uint32{k.DPort, k.DPort}
	b.ICMPType = [2]uint32{k.ICMPType, k.ICMPType}
	b.ICMPCode = [2]uint32{k.ICMPCode, k.ICMPCode}
	if k.SPort != dtree.NoPort {
		b.SPort = [2]uint32{0, 65535}
	} else {
		b.SPort = [2]uint32{dtree.NoPort, dtree.NoPort}
	}
	return b
}

func clip(r [2]uint32, lo, hi uint32) ([2]uint16, bool) {
	r[0], r[1] = max(r[0], lo), min(r[1], hi)
	return [2]uint16{uint16(r[0]), uint16(r[1])}, r[0] <= r[1]
}

func holds(r [2]uint32, v uint32) bool { return r[0] <= v && v <= r[1] }

// elemOf is the element of box b (which holds k) of k's kind in scope sc.
func elemOf(sc regionScope, b *policy.Box, k *dtree.Key) (RegionElem, bool) {
	el := RegionElem{Stage: sc.stage, Fam: sc.fam, Kind: sc.kind, InIf: sc.in, OutIf: sc.out, Src: b.Src, Dst: b.Dst}
	if !b.Contains(k) {
		return el, false
	}
	var ok1, ok2 bool
	switch sc.kind {
	case RegionPorts:
		if !holds(b.ICMPType, dtree.NoICMP) || !holds(b.ICMPCode, dtree.NoICMP) {
			return el, false
		}
		el.Proto = [2]uint8{uint8(k.Proto), uint8(k.Proto)}
		el.A, ok1 = clip(b.SPort, 0, 65535)
		el.B, ok2 = clip(b.DPort, 0, 65535)
	case RegionICMP:
		if !holds(b.SPort, dtree.NoPort) || !holds(b.DPort, dtree.NoPort) {
			return el, false
		}
		el.Proto = [2]uint8{uint8(k.Proto), uint8(k.Proto)}
		el.A, ok1 = clip(b.ICMPType, 0, 255)
		el.B, ok2 = clip(b.ICMPCode, 0, 255)
	case RegionOther:
		if !holds(b.SPort, dtree.NoPort) || !holds(b.DPort, dtree.NoPort) ||
			!holds(b.ICMPType, dtree.NoICMP) || !holds(b.ICMPCode, dtree.NoICMP) {
			return el, false
		}
		// The run of non-special protocols around k's within the box.
		lo, hi := k.Proto, k.Proto
		for lo > b.Proto[0] && !specialProto(lo-1) {
			lo--
		}
		for hi < min(b.Proto[1], 255) && !specialProto(hi+1) {
			hi++
		}
		el.Proto = [2]uint8{uint8(lo), uint8(hi)}
		ok1, ok2 = true, true
	default:
		return el, false
	}
	return el, ok1 && ok2
}

// elemBox is the region of packet space an element matches.
func elemBox(el *RegionElem) policy.Box {
	b := policy.FullBox(el.Fam)
	b.Src, b.Dst = el.Src, el.Dst
	b.Proto = [2]uint32{uint32(el.Proto[0]), uint32(el.Proto[1])}
	switch el.Kind {
	case RegionPorts:
		b.SPort = [2]uint32{uint32(el.A[0]), uint32(el.A[1])}
		b.DPort = [2]uint32{uint32(el.B[0]), uint32(el.B[1])}
		b.ICMPType = [2]uint32{dtree.NoICMP, dtree.NoICMP}
		b.ICMPCode = b.ICMPType
	case RegionICMP:
		b.SPort = [2]uint32{dtree.NoPort, dtree.NoPort}
		b.DPort = b.SPort
		b.ICMPType = [2]uint32{uint32(el.A[0]), uint32(el.A[1])}
		b.ICMPCode = [2]uint32{uint32(el.B[0]), uint32(el.B[1])}
	default:
		b.SPort = [2]uint32{dtree.NoPort, dtree.NoPort}
		b.DPort = b.SPort
		b.ICMPType = [2]uint32{dtree.NoICMP, dtree.NoICMP}
		b.ICMPCode = b.ICMPType
	}
	return b
}

// ElemBox is the region of packet space el matches (its interfaces aside):
// for tests and tools.
func ElemBox(el RegionElem) policy.Box { return elemBox(&el) }

// elemHasKey reports whether el's sets would match a packet with key k (el's
// interfaces assumed).
func elemHasKey(el *RegionElem, k *dtree.Key) bool {
	if el.Kind == RegionOther && specialProto(k.Proto) {
		return false
	}
	b := elemBox(el)
	return b.Contains(k)
}

// The kernel key of an element is its fields in order: src, dst, proto, A,
// B (and the interfaces, equal within a scope). eranges is that as ranges.
type eranges [5][2]dtree.U128

func rangesOf(el *RegionElem) eranges {
	u := func(v uint16) dtree.U128 { return dtree.U128{Lo: uint64(v)} }
	return eranges{el.Src, el.Dst,
		{{Lo: uint64(el.Proto[0])}, {Lo: uint64(el.Proto[1])}},
		{u(el.A[0]), u(el.A[1])}, {u(el.B[0]), u(el.B[1])}}
}

func (r *eranges) set(el *RegionElem) {
	el.Src, el.Dst = r[0], r[1]
	el.Proto = [2]uint8{uint8(r[2][0].Lo), uint8(r[2][1].Lo)}
	el.A = [2]uint16{uint16(r[3][0].Lo), uint16(r[3][1].Lo)}
	el.B = [2]uint16{uint16(r[4][0].Lo), uint16(r[4][1].Lo)}
}

func u128Less(a, b dtree.U128) bool { return a.Hi < b.Hi || (a.Hi == b.Hi && a.Lo < b.Lo) }

func u128Inc(v dtree.U128) dtree.U128 {
	v.Lo++
	if v.Lo == 0 {
		v.Hi++
	}
	return v
}

func u128Dec(v dtree.U128) dtree.U128 {
	if v.Lo == 0 {
		v.Hi--
	}
	v.Lo--
	return v
}

// elemCovers reports whether o holds every key of p (same scope).
func elemCovers(o, p *RegionElem) bool {
	a, b := rangesOf(o), rangesOf(p)
	for f := range a {
		if u128Less(b[f][0], a[f][0]) || u128Less(a[f][1], b[f][1]) {
			return false
		}
	}
	return true
}

// elemHasCorner reports whether o holds p's lowest or highest corner: the
// overlap nf_tables' concatenated range sets refuse.
func elemHasCorner(o, p *RegionElem) bool {
	a, b := rangesOf(o), rangesOf(p)
	for c := range 2 {
		in := true
		for f := range a {
			v := b[f][c]
			if u128Less(v, a[f][0]) || u128Less(a[f][1], v) {
				in = false
				break
			}
		}
		if in {
			return true
		}
	}
	return false
}

// subtractElem appends the parts of p outside o as disjoint elements.
func subtractElem(p RegionElem, o *RegionElem, out []RegionElem) []RegionElem {
	a, b := rangesOf(&p), rangesOf(o)
	for f := range a {
		if u128Less(a[f][1], b[f][0]) || u128Less(b[f][1], a[f][0]) {
			return append(out, p) // disjoint
		}
	}
	for f := range a {
		if u128Less(a[f][0], b[f][0]) {
			q := a
			q[f] = [2]dtree.U128{a[f][0], u128Dec(b[f][0])}
			e := p
			q.set(&e)
			out = append(out, e)
			a[f][0] = b[f][0]
		}
		if u128Less(b[f][1], a[f][1]) {
			q := a
			q[f] = [2]dtree.U128{u128Inc(b[f][1]), a[f][1]}
			e := p
			q.set(&e)
			out = append(out, e)
			a[f][1] = b[f][1]
		}
	}
	return out
}

// touchesFailsafe reports whether an element of the preDNAT or input stage
// holds a packet an inbound failsafe accepts.
func touchesFailsafe(el *RegionElem, fs []policy.ProtoPort) bool {
	if el.Kind != RegionPorts {
		return false
	}
	for _, f := range fs {
		if uint8(f.Protocol) < el.Proto[0] || uint8(f.Protocol) > el.Proto[1] || f.Port < el.B[0] || f.Port > el.B[1] {
			continue
		}
		if !f.Net.IsValid() {
			return true
		}
		if (f.Net.Addr().Is4()) != (el.Fam == 4) {
			continue
		}
		lo := f.Net.Masked().Addr()
		var a dtree.U128
		var hi dtree.U128
		if el.Fam == 4 {
			b := lo.As4()
			v := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
			a = dtree.U128{Lo: v}
			hi = dtree.U128{Lo: v | (1<<(32-f.Net.Bits()) - 1)}
		} else {
			b := lo.As16()
			for i := range 8 {
				a.Hi = a.Hi<<8 | uint64(b[i])
				a.Lo = a.Lo<<8 | uint64(b[8+i])
			}
			hi = a
			n := 128 - f.Net.Bits()
			switch {
			case n >= 64:
				hi.Lo = ^uint64(0)
				if n-64 >= 64 {
					hi.Hi = ^uint64(0)
				} else {
					hi.Hi |= 1<<(n-64) - 1
				}
			case n > 0:
				hi.Lo |= 1<<n - 1
			}
		}
		if !u128Less(el.Src[1], a) && !u128Less(hi, el.Src[0]) {
			return true
		}
	}
	return false
}
