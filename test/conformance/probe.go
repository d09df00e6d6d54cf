package conformance

import (
	"fmt"
	"net/netip"
	"strings"
)

// Probe is one packet a case sends through both gateways.
type Probe struct {
	Origin Origin `toml:"origin"`
	Packet `toml:"-"`
	Note   string `toml:"note,omitempty"` // why the generator chose it (rule and edge)
}

var protoNames = map[uint8]string{protoICMP: "ICMP", protoTCP: "TCP", protoUDP: "UDP", protoICMPv6: "ICMPv6",
	protoSCTP: "SCTP", protoUDPLite: "UDPLite"}

func protoName(p uint8) string {
	if n, ok := protoNames[p]; ok {
		return n
	}
	return fmt.Sprint(p)
}

// Describe is a one-line human form of the probe.
func (p *Probe) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", p.Origin, protoName(p.Proto))
	switch {
	case p.hasPorts():
		fmt.Fprintf(&b, " %s -> %s", netip.AddrPortFrom(p.Src, p.SPort), netip.AddrPortFrom(p.Dst, p.DPort))
	case p.isICMP():
		fmt.Fprintf(&b, " %s -> %s type %d code %d", p.Src, p.Dst, p.ICMPType, p.ICMPCode)
	default:
		fmt.Fprintf(&b, " %s -> %s", p.Src, p.Dst)
	}
	if p.Proto == protoTCP && p.TCPFlags != 0 && p.TCPFlags != tcpSYN {
		fmt.Fprintf(&b, " flags %#x", p.TCPFlags)
	}
	return b.String()
}

// Path is the way the probe takes through the gateway.
func (p *Probe) Path() Path { return route(p.Origin, &p.Packet, p.expectedCT() == "new") }

// pathNoNAT is the path of the probe when an untracked Allow NOTRACKed it
// (the nat table never sees it).
func (p *Probe) pathNoNAT() Path { return route(p.Origin, &p.Packet, false) }

// expectedCT is the conntrack state the kernel gives the probe (nothing
// NOTRACKed it): new, or invalid for packets conntrack cannot start a
// flow with (ICMP errors without a flow, ICMP types that are not
// requests, TCP with impossible flags).
func (p *Probe) expectedCT() string {
	switch p.Proto {
	case protoTCP:
		f := p.TCPFlags
		if f == 0 {
			f = tcpSYN
		}
		if f&(tcpSYN|tcpFIN) == tcpSYN|tcpFIN || f&(tcpSYN|tcpRST) == tcpSYN|tcpRST || f&(tcpACK|tcpRST|tcpSYN|tcpFIN) == 0 {
			return "invalid"
		}
		return "new"
	case protoICMP:
		if p.Src.Is6() {
			return "invalid" // conntrack's ICMP tracker refuses it in IPv6
		}
		switch p.ICMPType {
		case 8, 13, 15, 17:
			return "new"
		}
		return "invalid"
	case protoICMPv6:
		if p.Src.Is4() {
			return "invalid" // and the ICMPv6 one in IPv4
		}
		switch p.ICMPType {
		case 128, 139:
			return "new"
		case 130, 131, 132, 133, 134, 135, 136, 143:
			// MLD and neighbour discovery: conntrack leaves them untracked.
			return "untracked"
		}
		return "invalid"
	}
	return "new"
}

// tuple is a conntrack-style key of a probe, both directions, after DNAT.
type tuple struct {
	proto  uint8
	a, b   netip.Addr
	pa, pb uint16
	icmpTy uint8
}

// tuples returns the keys a probe's conntrack entry would be found by:
// its original tuple, and its reply tuple (after DNAT).
func (p *Probe) tuples() []tuple {
	path := p.Path()
	t := tuple{proto: p.Proto, a: p.Src, b: p.Dst}
	if p.hasPorts() {
		t.pa, t.pb = p.SPort, p.DPort
	}
	if p.isICMP() {
		t.pa = p.ID // echo identifier
		t.icmpTy = p.ICMPType
	}
	r := tuple{proto: t.proto, a: t.b, b: t.a, pa: t.pb, pb: t.pa, icmpTy: t.icmpTy}
	if path.DNAT.IsValid() {
		r.a = path.DNAT
		if path.DNATPort != 0 && p.hasPorts() {
			r.pa = path.DNATPort
		}
	}
	if p.isICMP() {
		r.pa, r.pb = t.pa, 0
	}
	return []tuple{t, r}
}
