package classify

import "net/netip"

// Family is the IP version of a packet: 4, 6, or 0 when unknown.
type Family uint8

const (
	FamilyUnknown Family = 0
	IPv4          Family = 4
	IPv6          Family = 6
)

// IP protocol numbers used by the policy language.
const (
	ProtoICMP    uint8 = 1
	ProtoTCP     uint8 = 6
	ProtoUDP     uint8 = 17
	ProtoICMPv6  uint8 = 58
	ProtoSCTP    uint8 = 132
	ProtoUDPLite uint8 = 136
)

// CTState is the conntrack state the kernel reported for the packet.
type CTState uint8

const (
	CTNew CTState = iota
	CTEstablished
	CTRelated
	CTInvalid
	CTUntracked
)

var ctNames = [...]string{"new", "established", "related", "invalid", "untracked"}

func (s CTState) String() string {
	if int(s) < len(ctNames) {
		return ctNames[s]
	}
	return "unknown"
}

// Class says how well a packet decoded.
type Class uint8

const (
	// OK: IP header and, where the protocol has one, the transport header
	// needed for matching (ports, ICMP type/code) were decoded.
	OK Class = iota
	// Fragment: a non-first IP fragment. Addresses and protocol are valid,
	// ports and ICMP fields are not present.
	Fragment
	// Malformed: the packet could not be decoded far enough to match on
	// every field policy may ask for. Reason says why.
	Malformed
)

// Reason is a constant code explaining a non-OK Class.
type Reason uint8

const (
	ReasonNone Reason = iota
	ReasonEmpty
	ReasonBadVersion
	ReasonTruncatedIP
	ReasonBadIHL
	ReasonBadLength
	ReasonTruncatedExtHeader
	ReasonTruncatedL4
	ReasonBadTCPOffset
	ReasonNonFirstFragment
	ReasonTooManyExtHeaders
	ReasonBadUDPLength
	ReasonDecodeError
	// ReasonRoutingHeader0: an IPv6 type 0 routing header (deprecated by
	// RFC 5095 for amplification and filter evasion). nfgate treats it as
	// malformed, so policed interfaces drop it whatever the policy says,
	// as most firewalls do; an nfgate extension (Calico does not look).
	ReasonRoutingHeader0
)

// Packet is the decoded view of one packet. It is a plain value: it holds no
// pointers into the buffer it was decoded from.
type Packet struct {
	Family   Family
	Proto    uint8 // IPv4 protocol or IPv6 upper-layer next header
	Src      netip.Addr
	Dst      netip.Addr
	SrcPort  uint16 // TCP, UDP, UDPLite, SCTP
	DstPort  uint16
	ICMPType uint8 // ICMP and ICMPv6
	ICMPCode uint8
	TCPFlags uint8
	Length   uint16 // total IP length from the header
	Class    Class
	Reason   Reason
	CT       CTState // filled by the caller from queue metadata
}

// HasPorts reports whether the packet carries transport ports that rules can match.
func (p *Packet) HasPorts() bool {
	if p.Class != OK {
		return false
	}
	switch p.Proto {
	case ProtoTCP, ProtoUDP, ProtoSCTP, ProtoUDPLite:
		return true
	}
	return false
}

// HasICMP reports whether ICMPType and ICMPCode are valid.
func (p *Packet) HasICMP() bool {
	return p.Class == OK && ((p.Family == IPv4 && p.Proto == ProtoICMP) || (p.Family == IPv6 && p.Proto == ProtoICMPv6))
}
