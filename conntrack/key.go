package conntrack

import (
	"net/netip"
	"strconv"
)

// FlowKey identifies one direction of a flow. It is a packed, pointer-free,
// comparable value: cheap to hash, safe to copy, and usable as a map key or
// in a fixed-size table.
//
// Addresses are stored in their 16-byte form (IPv4 as v4-mapped IPv6) and
// Family tells the two apart, so an IPv4 flow never equals an IPv6 flow that
// happens to use the mapped address. Zones are dropped: nfgate matches on
// addresses as they appear on the wire.
//
// For TCP, UDP, UDPLite and SCTP the port fields hold the ports. For ICMP and
// ICMPv6 (see MakeICMPKey) the source-port field holds type<<8|code and the
// destination-port field holds the echo identifier, so distinct pings are
// distinct keys. For any other protocol both are zero.
//
// The field order leaves no padding: 16+16+2+2+1+1 = 38 bytes.
type FlowKey struct {
	src    [16]byte
	dst    [16]byte
	sport  uint16
	dport  uint16
	proto  uint8
	family uint8
}

// MakeKey builds the key of a flow from its 5-tuple. family is 4 or 6; proto
// is the IP protocol number. It allocates nothing.
func MakeKey(family, proto uint8, src, dst netip.Addr, sport, dport uint16) FlowKey {
	return FlowKey{
		src:    src.As16(),
		dst:    dst.As16(),
		sport:  sport,
		dport:  dport,
		proto:  proto,
		family: family,
	}
}

// MakeICMPKey builds the key of an ICMP or ICMPv6 flow, folding type, code
// and the echo identifier (0 when the message has none) into the port fields.
func MakeICMPKey(family, proto uint8, src, dst netip.Addr, icmpType, icmpCode uint8, id uint16) FlowKey {
	return MakeKey(family, proto, src, dst, uint16(icmpType)<<8|uint16(icmpCode), id)
}

// Family returns the IP version the key was built with (4 or 6).
func (k FlowKey) Family() uint8 { return k.family }

// Proto returns the IP protocol number.
func (k FlowKey) Proto() uint8 { return k.proto }

// Src returns the source address, unmapped for IPv4 keys.
func (k FlowKey) Src() netip.Addr { return k.addr(k.src) }

// Dst returns the destination address, unmapped for IPv4 keys.
func (k FlowKey) Dst() netip.Addr { return k.addr(k.dst) }

// SrcPort returns the source port (type<<8|code for ICMP keys).
func (k FlowKey) SrcPort() uint16 { return k.sport }

// DstPort returns the destination port (the echo identifier for ICMP keys).
func (k FlowKey) DstPort() uint16 { return k.dport }

// IsZero reports whether k is the zero key.
func (k FlowKey) IsZero() bool { return k == FlowKey{} }

// Reverse returns the key of the reply direction: addresses and ports
// swapped. For ICMP keys the result is only meaningful to compare with other
// reversed keys, since type and code are not mirrored.
func (k FlowKey) Reverse() FlowKey {
	k.src, k.dst = k.dst, k.src
	k.sport, k.dport = k.dport, k.sport
	return k
}

func (k FlowKey) addr(b [16]byte) netip.Addr {
	a := netip.AddrFrom16(b)
	if k.family == 4 {
		return a.Unmap()
	}
	return a
}

// String formats the key for logs and test failures, e.g.
// "tcp 198.18.0.1:1234 -> 198.18.0.2:80". It allocates; keep it off the
// packet path.
func (k FlowKey) String() string {
	b := make([]byte, 0, 64)
	switch k.proto {
	case 6:
		b = append(b, "tcp "...)
	case 17:
		b = append(b, "udp "...)
	case 1:
		b = append(b, "icmp "...)
	case 58:
		b = append(b, "icmpv6 "...)
	case 132:
		b = append(b, "sctp "...)
	case 136:
		b = append(b, "udplite "...)
	default:
		b = append(b, "proto "...)
		b = strconv.AppendUint(b, uint64(k.proto), 10)
		b = append(b, ' ')
	}
	b = netip.AddrPortFrom(k.Src(), k.sport).AppendTo(b)
	b = append(b, " -> "...)
	b = netip.AddrPortFrom(k.Dst(), k.dport).AppendTo(b)
	return string(b)
}
