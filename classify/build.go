package classify

// Packet builders for tests, in this package and in others (engine, replay).
// They serialise real packets with gopacket, checksums included. They
// allocate and panic on bad input (an address of the wrong family): they are
// test helpers, not for the packet path.

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// BuildTCP4 returns an IPv4 TCP packet from src:sport to dst:dport with the
// given flags (TCPFlagSYN, ...). Not for the packet path.
func BuildTCP4(src, dst string, sport, dport uint16, flags uint8) []byte {
	ip := buildIPv4(src, dst, layers.IPProtocolTCP)
	return buildTCP(ip, sport, dport, flags)
}

// BuildUDP4 returns an IPv4 UDP packet from src:sport to dst:dport with a
// 4-byte payload. Not for the packet path.
func BuildUDP4(src, dst string, sport, dport uint16) []byte {
	ip := buildIPv4(src, dst, layers.IPProtocolUDP)
	return buildUDP(ip, sport, dport)
}

// BuildICMP4 returns an IPv4 ICMP packet of the given type and code with an
// 8-byte header (identifier and sequence 1). Not for the packet path.
func BuildICMP4(src, dst string, typ, code uint8) []byte {
	ip := buildIPv4(src, dst, layers.IPProtocolICMPv4)
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Id: 1, Seq: 1}
	return serialize(ip, icmp)
}

// BuildTCP6 returns an IPv6 TCP packet from src:sport to dst:dport with the
// given flags (TCPFlagSYN, ...). Not for the packet path.
func BuildTCP6(src, dst string, sport, dport uint16, flags uint8) []byte {
	ip := buildIPv6(src, dst, layers.IPProtocolTCP)
	return buildTCP(ip, sport, dport, flags)
}

// BuildUDP6 returns an IPv6 UDP packet from src:sport to dst:dport with a
// 4-byte payload. Not for the packet path.
func BuildUDP6(src, dst string, sport, dport uint16) []byte {
	ip := buildIPv6(src, dst, layers.IPProtocolUDP)
	return buildUDP(ip, sport, dport)
}

// BuildICMP6 returns an IPv6 ICMPv6 packet of the given type and code with
// four zero bytes after the 4-byte header (an echo's identifier and
// sequence). Not for the packet path.
func BuildICMP6(src, dst string, typ, code uint8) []byte {
	ip := buildIPv6(src, dst, layers.IPProtocolICMPv6)
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, code)}
	if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
		panic(fmt.Sprintf("classify.BuildICMP6: %v", err))
	}
	return serialize(ip, icmp, gopacket.Payload{0, 0, 0, 0})
}

func buildIPv4(src, dst string, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{
		Version: 4, IHL: 5, TTL: 64, Id: 1, Flags: layers.IPv4DontFragment, Protocol: proto,
		SrcIP: mustIP(src, IPv4), DstIP: mustIP(dst, IPv4),
	}
}

func buildIPv6(src, dst string, next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{
		Version: 6, HopLimit: 64, NextHeader: next,
		SrcIP: mustIP(src, IPv6), DstIP: mustIP(dst, IPv6),
	}
}

func buildTCP(ip gopacket.NetworkLayer, sport, dport uint16, flags uint8) []byte {
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport),
		Seq: 1, Window: 64240,
		FIN: flags&TCPFlagFIN != 0, SYN: flags&TCPFlagSYN != 0,
		RST: flags&TCPFlagRST != 0, PSH: flags&TCPFlagPSH != 0,
		ACK: flags&TCPFlagACK != 0, URG: flags&TCPFlagURG != 0,
		ECE: flags&TCPFlagECE != 0, CWR: flags&TCPFlagCWR != 0,
	}
	if tcp.ACK {
		tcp.Ack = 1
	}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		panic(fmt.Sprintf("classify.BuildTCP: %v", err))
	}
	return serialize(ip.(gopacket.SerializableLayer), tcp)
}

func buildUDP(ip gopacket.NetworkLayer, sport, dport uint16) []byte {
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		panic(fmt.Sprintf("classify.BuildUDP: %v", err))
	}
	return serialize(ip.(gopacket.SerializableLayer), udp, gopacket.Payload{0xde, 0xad, 0xbe, 0xef})
}

func serialize(ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		panic(fmt.Sprintf("classify: serialising test packet: %v", err))
	}
	return buf.Bytes()
}

// mustIP parses s as an address of family f, panicking otherwise.
func mustIP(s string, f Family) net.IP {
	a, err := netip.ParseAddr(s)
	if err != nil {
		panic(fmt.Sprintf("classify: test packet address: %v", err))
	}
	if (f == IPv4) != a.Is4() {
		panic(fmt.Sprintf("classify: test packet address %s is not IPv%d", s, f))
	}
	return net.IP(a.AsSlice())
}
