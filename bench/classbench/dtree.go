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

// Linear is the baseline classifier: a plain scan of rules sorted by
// priority, stopping at the first match.
type Linear []dtree.Rule

// Lookup has dtree.Tree.Lookup's contract. l must be sorted by Priority.
func (l Linear) Lookup(k *dtree.Key, from int32) int32 {
	for i := range l {
		r := &l[i]
		if r.Priority < from {
			continue
		}
		if in128(k.Src, r.Src) && in128(k.Dst, r.Dst) &&
			k.Proto >= r.Proto[0] && k.Proto <= r.Proto[1] &&
			k.SPort >= r.SPort[0] && k.SPort <= r.SPort[1] &&
			k.DPort >= r.DPort[0] && k.DPort <= r.DPort[1] &&
			k.ICMPType >= r.ICMPType[0] && k.ICMPType <= r.ICMPType[1] &&
			k.ICMPCode >= r.ICMPCode[0] && k.ICMPCode <= r.ICMPCode[1] {
			return r.Priority
		}
	}
	return -1
}

func in128(v dtree.U128, r [2]dtree.U128) bool {
	return !less(v, r[0]) && !less(r[1], v)
}

func less(a, b dtree.U128) bool { return a.Hi < b.Hi || (a.Hi == b.Hi && a.Lo < b.Lo) }
