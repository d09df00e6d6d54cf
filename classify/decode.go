package classify

import (
	"encoding/binary"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// MaxExtHeaders is the most IPv6 extension headers Decode walks before it
// gives up with ReasonTooManyExtHeaders.
const MaxExtHeaders = 8

// TCP flag bits as found in Packet.TCPFlags (byte 13 of the TCP header).
const (
	TCPFlagFIN uint8 = 1 << iota
	TCPFlagSYN
	TCPFlagRST
	TCPFlagPSH
	TCPFlagACK
	TCPFlagURG
	TCPFlagECE
	TCPFlagCWR
)

// IPv6 next-header values the extension header walk knows.
const (
	nhHopByHop = 0
	nhRouting  = 43
	nhFragment = 44
	nhAH       = 51
	nhDestOpts = 60
	nhNoNext   = 59
)

// Fixed header sizes.
const (
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	tcpHeaderLen  = 20
	udpHeaderLen  = 8
	sctpHeaderLen = 12
	icmp4Len      = 8
	icmp6Len      = 4
	fragHeaderLen = 8
)

// nilDF discards gopacket's truncation feedback: Decode works out truncation
// itself.
var nilDF = gopacket.NilDecodeFeedback

// A Decoder decodes packets into Packet values. It holds reusable gopacket
// decoding layers and scratch space, so it is not safe for concurrent use:
// give each queue reader goroutine its own. The zero value is ready to use.
type Decoder struct {
	ip4   layers.IPv4
	ip6   layers.IPv6
	ext   layers.IPv6ExtensionSkipper
	tcp   layers.TCP
	udp   layers.UDP
	sctp  layers.SCTP
	icmp4 layers.ICMPv4
	icmp6 layers.ICMPv6

	// fixed holds a copy of a fixed-size header whose length and
	// next-header fields are normalised to "nothing follows", so gopacket
	// never parses options or rejects the header (see the package doc).
	fixed [ipv6HeaderLen]byte
}

// Decode fills *p from the raw IP packet b. It keeps p.CT and resets every
// other field. It never fails: problems are reported in p.Class and p.Reason.
// Nothing of b is retained in *p.
func (d *Decoder) Decode(b []byte, p *Packet) {
	*p = Packet{CT: p.CT}
	if len(b) == 0 {
		p.malformed(ReasonEmpty)
		return
	}
	switch b[0] >> 4 {
	case 4:
		d.decode4(b, p)
	case 6:
		d.decode6(b, p)
	default:
		p.malformed(ReasonBadVersion)
	}
}

func (p *Packet) malformed(r Reason) {
	p.Class = Malformed
	p.Reason = r
}

func (d *Decoder) decode4(b []byte, p *Packet) {
	p.Family = IPv4
	if len(b) < ipv4HeaderLen {
		p.malformed(ReasonTruncatedIP)
		return
	}
	f := d.fixed[:ipv4HeaderLen]
	copy(f, b)
	f[0] = 0x45                                       // version 4, IHL 5: no options
	binary.BigEndian.PutUint16(f[2:4], ipv4HeaderLen) // total length: no payload
	if d.ip4.DecodeFromBytes(f, nilDF) != nil {
		p.malformed(ReasonDecodeError)
		return
	}
	p.Src = netip.AddrFrom4([4]byte(d.ip4.SrcIP))
	p.Dst = netip.AddrFrom4([4]byte(d.ip4.DstIP))
	p.Proto = uint8(d.ip4.Protocol)

	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	p.Length = uint16(total)
	switch {
	case ihl < ipv4HeaderLen:
		p.malformed(ReasonBadIHL)
		return
	case total < ihl:
		p.malformed(ReasonBadLength)
		return
	case len(b) < ihl:
		p.malformed(ReasonTruncatedIP)
		return
	}
	if d.ip4.FragOffset != 0 {
		p.Class = Fragment
		p.Reason = ReasonNonFirstFragment
		return
	}
	d.decodeL4(b[ihl:min(len(b), total)], p)
}

func (d *Decoder) decode6(b []byte, p *Packet) {
	p.Family = IPv6
	if len(b) < ipv6HeaderLen {
		p.malformed(ReasonTruncatedIP)
		return
	}
	f := d.fixed[:ipv6HeaderLen]
	copy(f, b)
	binary.BigEndian.PutUint16(f[4:6], 1) // payload length: non-zero, so no jumbogram is expected
	f[6] = nhNoNext                       // next header: none, so no hop-by-hop options are parsed
	if d.ip6.DecodeFromBytes(f, nilDF) != nil {
		p.malformed(ReasonDecodeError)
		return
	}
	p.Src = netip.AddrFrom16([16]byte(d.ip6.SrcIP))
	p.Dst = netip.AddrFrom16([16]byte(d.ip6.DstIP))

	plen := int(binary.BigEndian.Uint16(b[4:6]))
	p.Length = uint16(min(ipv6HeaderLen+plen, 0xffff))
	nh := b[6]
	data := b
	if plen != 0 || nh != nhHopByHop {
		// A zero payload length only means "see the jumbogram option"
		// after a hop-by-hop header; then decode what is present.
		data = b[:min(len(b), ipv6HeaderLen+plen)]
	}
	off := ipv6HeaderLen
	for n := 0; ; n++ {
		switch nh {
		case nhHopByHop, nhRouting, nhDestOpts, nhAH, nhFragment:
		default:
			p.Proto = nh
			d.decodeL4(data[off:], p)
			return
		}
		p.Proto = nh // where the walk stopped, if it stops here
		if n == MaxExtHeaders {
			p.malformed(ReasonTooManyExtHeaders)
			return
		}
		rest := data[off:]
		switch nh {
		case nhFragment:
			if len(rest) < fragHeaderLen {
				p.malformed(ReasonTruncatedExtHeader)
				return
			}
			nh = rest[0]
			if binary.BigEndian.Uint16(rest[2:4])>>3 != 0 {
				p.Proto = nh
				p.Class = Fragment
				p.Reason = ReasonNonFirstFragment
				return
			}
			off += fragHeaderLen
		case nhAH:
			if len(rest) < 2 || len(rest) < (int(rest[1])+2)*4 {
				p.malformed(ReasonTruncatedExtHeader)
				return
			}
			nh = rest[0]
			off += (int(rest[1]) + 2) * 4
		default: // hop-by-hop, routing, destination options
			if len(rest) < 2 || len(rest) < (int(rest[1])+1)*8 {
				p.malformed(ReasonTruncatedExtHeader)
				return
			}
			if nh == nhRouting && rest[2] == 0 {
				// Type 0, whatever its segments left (RFC 5095).
				p.malformed(ReasonRoutingHeader0)
				return
			}
			if d.ext.DecodeFromBytes(rest, nilDF) != nil {
				p.malformed(ReasonDecodeError)
				return
			}
			nh = uint8(d.ext.NextHeader)
			off += len(d.ext.Contents)
		}
	}
}

// decodeL4 decodes the transport header at the start of data for p.Proto.
func (d *Decoder) decodeL4(data []byte, p *Packet) {
	var err error
	switch {
	case p.Proto == ProtoTCP:
		if len(data) < tcpHeaderLen {
			p.malformed(ReasonTruncatedL4)
			return
		}
		f := d.fixed[:tcpHeaderLen]
		copy(f, data)
		f[12] = 5<<4 | f[12]&0x0f // data offset 5: no options
		if err = d.tcp.DecodeFromBytes(f, nilDF); err == nil {
			p.SrcPort, p.DstPort = uint16(d.tcp.SrcPort), uint16(d.tcp.DstPort)
			p.TCPFlags = tcpFlags(&d.tcp)
			if data[12]>>4 < 5 {
				p.malformed(ReasonBadTCPOffset)
			}
		}
	case p.Proto == ProtoUDP:
		if len(data) < udpHeaderLen {
			p.malformed(ReasonTruncatedL4)
			return
		}
		f := d.fixed[:udpHeaderLen]
		copy(f, data)
		binary.BigEndian.PutUint16(f[4:6], udpHeaderLen) // length: just the header
		if err = d.udp.DecodeFromBytes(f, nilDF); err == nil {
			p.SrcPort, p.DstPort = uint16(d.udp.SrcPort), uint16(d.udp.DstPort)
			if l := binary.BigEndian.Uint16(data[4:6]); l != 0 && l < udpHeaderLen {
				p.malformed(ReasonBadUDPLength)
			}
		}
	case p.Proto == ProtoUDPLite:
		// No allocation-free UDP-Lite layer in gopacket v1.1.19.
		if len(data) < udpHeaderLen {
			p.malformed(ReasonTruncatedL4)
			return
		}
		p.SrcPort = binary.BigEndian.Uint16(data[0:2])
		p.DstPort = binary.BigEndian.Uint16(data[2:4])
	case p.Proto == ProtoSCTP:
		if len(data) < sctpHeaderLen {
			p.malformed(ReasonTruncatedL4)
			return
		}
		if err = d.sctp.DecodeFromBytes(data, nilDF); err == nil {
			p.SrcPort, p.DstPort = uint16(d.sctp.SrcPort), uint16(d.sctp.DstPort)
		}
	case p.Proto == ProtoICMP && p.Family == IPv4:
		if len(data) < icmp4Len {
			p.malformed(ReasonTruncatedL4)
			return
		}
		if err = d.icmp4.DecodeFromBytes(data, nilDF); err == nil {
			p.ICMPType, p.ICMPCode = d.icmp4.TypeCode.Type(), d.icmp4.TypeCode.Code()
		}
	case p.Proto == ProtoICMPv6 && p.Family == IPv6:
		if len(data) < icmp6Len {
			p.malformed(ReasonTruncatedL4)
			return
		}
		if err = d.icmp6.DecodeFromBytes(data, nilDF); err == nil {
			p.ICMPType, p.ICMPCode = d.icmp6.TypeCode.Type(), d.icmp6.TypeCode.Code()
		}
	}
	if err != nil {
		p.malformed(ReasonDecodeError)
	}
}

func tcpFlags(t *layers.TCP) uint8 {
	var f uint8
	for _, b := range [...]struct {
		set  bool
		flag uint8
	}{
		{t.FIN, TCPFlagFIN}, {t.SYN, TCPFlagSYN}, {t.RST, TCPFlagRST}, {t.PSH, TCPFlagPSH},
		{t.ACK, TCPFlagACK}, {t.URG, TCPFlagURG}, {t.ECE, TCPFlagECE}, {t.CWR, TCPFlagCWR},
	} {
		if b.set {
			f |= b.flag
		}
	}
	return f
}
