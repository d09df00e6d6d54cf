package classbench

import (
	"net/netip"

	"github.com/nfgate/nfgate/policy/dtree"
)

// ToDTree converts rules to classifier rules one to one: rule i gets
// Priority i, so a lookup result r means trace answer r+1. ICMP type and code
// are wildcards (ClassBench has none).
func ToDTree(rules []Rule) []dtree.Rule {
	out := make([]dtree.Rule, len(rules))
	for i := range rules {
		r := &rules[i]
		d := dtree.Rule{
			Priority: int32(i),
			Src:      prefixRange(r.Src),
			Dst:      prefixRange(r.Dst),
			Proto:    [2]uint32{uint32(r.Proto), uint32(r.Proto)},
			SPort:    [2]uint32{uint32(r.SPort[0]), uint32(r.SPort[1])},
			DPort:    [2]uint32{uint32(r.DPort[0]), uint32(r.DPort[1])},
			ICMPType: [2]uint32{0, dtree.NoICMP},
			ICMPCode: [2]uint32{0, dtree.NoICMP},
		}
		if r.ProtoAny {
			d.Proto = [2]uint32{0, 255}
		}
		out[i] = d
	}
	return out
}

// prefixRange is the address range of an IPv4 prefix, in U128.Lo.
func prefixRange(p netip.Prefix) [2]dtree.U128 {
	lo := uint64(u32(p.Addr()))
	host := uint64(1)<<(32-p.Bits()) - 1
	return [2]dtree.U128{{Lo: lo &^ host}, {Lo: lo | host}}
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// Key is the classifier key of a trace packet.
func Key(p *Packet) dtree.Key {
	return dtree.Key{
		Src: dtree.U128{Lo: uint64(u32(p.Src))}, Dst: dtree.U128{Lo: uint64(u32(p.Dst))},
		Proto: uint32(p.Proto), SPort: uint32(p.SPort), DPort: uint32(p.DPort),
		ICMPType: dtree.NoICMP, ICMPCode: dtree.NoICMP,
	}
}

// Keys converts a whole trace.
func Keys(trace []Packet) []dtree.Key {
	ks := make([]dtree.Key, len(trace))
	for i := range trace {
		ks[i] = Key(&trace[i])
	}
	return ks
}

// Linear is the baseline classifier: a plain scan, in priority order, of
// compact IPv4 rules, stopping at the first match.
type Linear []linRule

type linRule struct {
	src, dst     [2]uint32
	sport, dport [2]uint16
	proto        uint8
	protoAny     bool
}

// NewLinear compiles rules for Linear.Lookup.
func NewLinear(rules []Rule) Linear {
	l := make(Linear, len(rules))
	for i := range rules {
		r := &rules[i]
		s, d := prefixRange(r.Src), prefixRange(r.Dst)
		l[i] = linRule{
			src: [2]uint32{uint32(s[0].Lo), uint32(s[1].Lo)}, dst: [2]uint32{uint32(d[0].Lo), uint32(d[1].Lo)},
			sport: r.SPort, dport: r.DPort, proto: r.Proto, protoAny: r.ProtoAny,
		}
	}
	return l
}

// Lookup returns the index of the first rule matching k, which is its
// priority under ToDTree, or -1.
func (l Linear) Lookup(k *dtree.Key) int32 {
	if k.Src.Hi|k.Dst.Hi != 0 || k.Src.Lo|k.Dst.Lo > 0xffffffff || k.SPort|k.DPort > 0xffff || k.Proto > 0xff {
		return -1
	}
	src, dst := uint32(k.Src.Lo), uint32(k.Dst.Lo)
	sp, dp, proto := uint16(k.SPort), uint16(k.DPort), uint8(k.Proto)
	for i := range l {
		r := &l[i]
		if src >= r.src[0] && src <= r.src[1] && dst >= r.dst[0] && dst <= r.dst[1] &&
			dp >= r.dport[0] && dp <= r.dport[1] && sp >= r.sport[0] && sp <= r.sport[1] &&
			(r.protoAny || r.proto == proto) {
			return int32(i)
		}
	}
	return -1
}
