package classify

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

// pkt turns a commented hex dump into bytes: "#" starts a comment that runs to
// the end of the line, and whitespace is ignored.
func pkt(dump string) []byte {
	var sb strings.Builder
	for _, line := range strings.Split(dump, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		panic(err)
	}
	return b
}

// cat concatenates packet parts.
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

var (
	v4src = netip.MustParseAddr("198.18.0.1")
	v4dst = netip.MustParseAddr("198.19.0.2")
	v6src = netip.MustParseAddr("2001:db8::1")
	v6dst = netip.MustParseAddr("2001:db8::2")
)

// Recurring header parts.
var (
	v4addrs = pkt(`c6120001 c6130002`) // 198.18.0.1 -> 198.19.0.2
	v6addrs = pkt(`
		20010db8 00000000 00000000 00000001 # src 2001:db8::1
		20010db8 00000000 00000000 00000002 # dst 2001:db8::2`)
	tcpSYN = pkt(`
		d431 0050          # sport 54321, dport 80
		00000001 00000000  # seq 1, ack 0
		50 02 faf0         # data offset 5, flags SYN, window
		0000 0000          # checksum (not verified), urgent`)
	udpDNS = pkt(`
		c000 0035 000c 0000  # sport 49152, dport 53, length 12, checksum
		deadbeef             # payload`)
)

// v4 returns an IPv4 header (no options) with the given total length,
// flags/fragment word and protocol, followed by the addresses.
func v4(total, fragWord uint16, proto uint8) []byte {
	return cat([]byte{0x45, 0, byte(total >> 8), byte(total), 0, 1, byte(fragWord >> 8), byte(fragWord), 64, proto, 0, 0}, v4addrs)
}

// v6 returns an IPv6 fixed header with the given payload length and next header.
func v6(plen uint16, next uint8) []byte {
	return cat([]byte{0x60, 0, 0, 0, byte(plen >> 8), byte(plen), next, 64}, v6addrs)
}

// want builders for the common shapes.
func ok4(proto uint8) Packet {
	return Packet{Family: IPv4, Proto: proto, Src: v4src, Dst: v4dst}
}

func ok6(proto uint8) Packet {
	return Packet{Family: IPv6, Proto: proto, Src: v6src, Dst: v6dst}
}

func (p Packet) ports(s, d uint16) Packet       { p.SrcPort, p.DstPort = s, d; return p }
func (p Packet) icmp(t, c uint8) Packet         { p.ICMPType, p.ICMPCode = t, c; return p }
func (p Packet) flags(f uint8) Packet           { p.TCPFlags = f; return p }
func (p Packet) length(l uint16) Packet         { p.Length = l; return p }
func (p Packet) class(c Class, r Reason) Packet { p.Class, p.Reason = c, r; return p }

type fixture struct {
	name string
	b    []byte
	want Packet
}

// fixtures is the decoder's spec, one packet kind per line.
var fixtures = []fixture{
	// IPv4
	{"v4/tcp-syn", cat(v4(40, 0, ProtoTCP), tcpSYN), ok4(ProtoTCP).length(40).ports(54321, 80).flags(TCPFlagSYN)},
	{"v4/udp", cat(v4(32, 0x4000, ProtoUDP), udpDNS), ok4(ProtoUDP).length(32).ports(49152, 53)},
	{"v4/icmp-echo", cat(v4(28, 0, ProtoICMP), pkt(`0800 0000 0001 0001 # echo request, id 1, seq 1`)),
		ok4(ProtoICMP).length(28).icmp(8, 0)},
	{"v4/icmp-error-with-inner", cat(v4(56, 0, ProtoICMP), pkt(`
		03 03 0000 00000000   # destination unreachable, port unreachable, unused
		45000020 00010000 4011 0000 c6130002 c6120001  # quoted IPv4 header, UDP
		0035 c000 000c 0000   # quoted UDP header`)),
		ok4(ProtoICMP).length(56).icmp(3, 3)},
	{"v4/icmp-error-inner-cut", cat(v4(36, 0, ProtoICMP), pkt(`0b00 0000 00000000 45 00 00`)),
		ok4(ProtoICMP).length(36).icmp(11, 0)},
	{"v4/sctp", cat(v4(32, 0, ProtoSCTP), pkt(`9c40 0b59 00000000 00000000 # sport 40000, dport 2905, vtag, checksum`)),
		ok4(ProtoSCTP).length(32).ports(40000, 2905)},
	{"v4/udplite", cat(v4(28, 0, ProtoUDPLite), pkt(`1388 1389 0008 0000 # sport 5000, dport 5001, coverage 8`)),
		ok4(ProtoUDPLite).length(28).ports(5000, 5001)},
	{"v4/gre-no-ports", cat(v4(24, 0, 47), pkt(`0000 0800`)), ok4(47).length(24)},
	{"v4/icmpv6-proto-in-v4", cat(v4(28, 0, ProtoICMPv6), pkt(`8000 0000 0000 0000`)), ok4(ProtoICMPv6).length(28)},
	{"v4/options-skipped", cat(pkt(`
		46 00 002c 0001 0000 40 06 0000  # IHL 6 (24 bytes), total 44, TCP`), v4addrs, pkt(`
		94 04 0000                       # router alert option`), tcpSYN),
		ok4(ProtoTCP).length(44).ports(54321, 80).flags(TCPFlagSYN)},
	{"v4/bad-options-skipped", cat(pkt(`
		47 00 0028 0001 0000 40 11 0000  # IHL 7 (28 bytes), total 40, UDP`), v4addrs, pkt(`
		07 00 01 01 44 01 ff 00          # record route with length 0, timestamp longer than the header`), udpDNS),
		ok4(ProtoUDP).length(40).ports(49152, 53)},
	{"v4/max-options", cat(pkt(`4f 00 0048 0001 0000 40 11 0000 # IHL 15, total 72`), v4addrs,
		pkt(strings.Repeat("01", 40)+" # 40 NOP options"), udpDNS),
		ok4(ProtoUDP).length(72).ports(49152, 53)},
	{"v4/first-fragment", cat(v4(32, 0x2000, ProtoUDP), udpDNS), ok4(ProtoUDP).length(32).ports(49152, 53)},
	{"v4/non-first-fragment", cat(v4(28, 0x00b9, ProtoUDP), pkt(`c000 0035 000c 0000 # data at offset 1480, looks like ports`)),
		ok4(ProtoUDP).length(28).class(Fragment, ReasonNonFirstFragment)},
	{"v4/middle-fragment", cat(v4(28, 0x2001, ProtoTCP), pkt(`0000 0000 0000 0000`)),
		ok4(ProtoTCP).length(28).class(Fragment, ReasonNonFirstFragment)},
	{"v4/tiny-first-fragment", cat(v4(28, 0x2000, ProtoTCP), tcpSYN[:8]),
		ok4(ProtoTCP).length(28).class(Malformed, ReasonTruncatedL4)},
	{"v4/cut-by-copy-range", cat(v4(1500, 0x4000, ProtoTCP), tcpSYN), ok4(ProtoTCP).length(1500).ports(54321, 80).flags(TCPFlagSYN)},
	{"v4/trailing-bytes-ignored", cat(v4(32, 0, ProtoUDP), udpDNS, pkt(`00000000`)), ok4(ProtoUDP).length(32).ports(49152, 53)},
	{"v4/total-length-cuts-l4", cat(v4(30, 0, ProtoTCP), tcpSYN), ok4(ProtoTCP).length(30).class(Malformed, ReasonTruncatedL4)},
	{"v4/truncated-header", pkt(`45 00 0028 0001 0000 40 06 0000 c612 # 14 bytes`),
		Packet{Family: IPv4, Class: Malformed, Reason: ReasonTruncatedIP}},
	{"v4/bad-ihl", cat(pkt(`44 00 0028 0001 0000 40 06 0000 # IHL 4`), v4addrs, tcpSYN),
		ok4(ProtoTCP).length(40).class(Malformed, ReasonBadIHL)},
	{"v4/ihl-beyond-buffer", cat(pkt(`4f 00 0044 0001 0000 40 06 0000 # IHL 15 but 24 bytes`), v4addrs, pkt(`01010101`)),
		ok4(ProtoTCP).length(68).class(Malformed, ReasonTruncatedIP)},
	{"v4/total-below-ihl", cat(pkt(`45 00 0010 0001 0000 40 06 0000 # total 16`), v4addrs, tcpSYN),
		ok4(ProtoTCP).length(16).class(Malformed, ReasonBadLength)},
	{"v4/total-zero", cat(pkt(`45 00 0000 0001 0000 40 06 0000 # total 0`), v4addrs, tcpSYN),
		ok4(ProtoTCP).class(Malformed, ReasonBadLength)},
	{"v4/tcp-offset-below-5", cat(v4(40, 0, ProtoTCP), pkt(`d431 0050 00000001 00000000 40 12 faf0 0000 0000 # offset 4, SYN|ACK`)),
		ok4(ProtoTCP).length(40).ports(54321, 80).flags(TCPFlagSYN|TCPFlagACK).class(Malformed, ReasonBadTCPOffset)},
	{"v4/tcp-options-cut", cat(v4(40, 0, ProtoTCP), pkt(`d431 0050 00000001 00000000 f0 02 faf0 0000 0000 # offset 15, options absent`)),
		ok4(ProtoTCP).length(40).ports(54321, 80).flags(TCPFlagSYN)},
	{"v4/tcp-bad-options", cat(v4(48, 0, ProtoTCP), pkt(`d431 0050 00000001 00000000 70 02 faf0 0000 0000 02 00 05 ff 08 0a 01 00 # MSS len 0, SACK len 255`)),
		ok4(ProtoTCP).length(48).ports(54321, 80).flags(TCPFlagSYN)},
	{"v4/tcp-all-flags", cat(v4(40, 0, ProtoTCP), pkt(`d431 0050 00000001 00000001 51 ff faf0 0000 0000 # NS and all 8 flags`)),
		ok4(ProtoTCP).length(40).ports(54321, 80).flags(0xff)},
	{"v4/tcp-truncated", cat(v4(40, 0, ProtoTCP), tcpSYN[:12]), ok4(ProtoTCP).length(40).class(Malformed, ReasonTruncatedL4)},
	{"v4/udp-truncated", cat(v4(28, 0, ProtoUDP), udpDNS[:6]), ok4(ProtoUDP).length(28).class(Malformed, ReasonTruncatedL4)},
	{"v4/udp-bad-length", cat(v4(28, 0, ProtoUDP), pkt(`c000 0035 0004 0000 # length 4`)),
		ok4(ProtoUDP).length(28).ports(49152, 53).class(Malformed, ReasonBadUDPLength)},
	{"v4/sctp-truncated", cat(v4(28, 0, ProtoSCTP), pkt(`9c40 0b59 00000000`)), ok4(ProtoSCTP).length(28).class(Malformed, ReasonTruncatedL4)},
	{"v4/udplite-truncated", cat(v4(24, 0, ProtoUDPLite), pkt(`1388 1389`)), ok4(ProtoUDPLite).length(24).class(Malformed, ReasonTruncatedL4)},
	{"v4/icmp-truncated", cat(v4(24, 0, ProtoICMP), pkt(`0800 0000`)), ok4(ProtoICMP).length(24).class(Malformed, ReasonTruncatedL4)},

	// IPv6
	{"v6/tcp-syn", cat(v6(20, ProtoTCP), tcpSYN), ok6(ProtoTCP).length(60).ports(54321, 80).flags(TCPFlagSYN)},
	{"v6/udp", cat(v6(12, ProtoUDP), udpDNS), ok6(ProtoUDP).length(52).ports(49152, 53)},
	{"v6/icmpv6-echo", cat(v6(8, ProtoICMPv6), pkt(`80 00 0000 0001 0001 # echo request`)), ok6(ProtoICMPv6).length(48).icmp(128, 0)},
	{"v6/icmpv6-too-big-with-inner", cat(v6(48, ProtoICMPv6), pkt(`02 00 0000 000005dc # packet too big, MTU 1500`), v6(20, ProtoTCP)),
		ok6(ProtoICMPv6).length(88).icmp(2, 0)},
	{"v6/icmp-proto-in-v6", cat(v6(8, ProtoICMP), pkt(`0800 0000 0001 0001`)), ok6(ProtoICMP).length(48)},
	{"v6/sctp", cat(v6(12, ProtoSCTP), pkt(`9c40 0b59 00000000 00000000`)), ok6(ProtoSCTP).length(52).ports(40000, 2905)},
	{"v6/ext-chain", cat(v6(44, 0), pkt(`
		2b 00 01 04 00000000  # hop-by-hop: next routing, 8 bytes, PadN
		3c 00 fd 00 00000000  # routing: next destination options, 8 bytes, type 253
		06 00 01 04 00000000  # destination options: next TCP, 8 bytes, PadN`), tcpSYN),
		ok6(ProtoTCP).length(84).ports(54321, 80).flags(TCPFlagSYN)},
	{"v6/routing-header-0", cat(v6(60, 0), pkt(`
		2b 00 01 04 00000000  # hop-by-hop: next routing, 8 bytes, PadN
		3c 02 00 01 00000000 20010db8000000000000000000000001 20010db8000000000000000000000002 # routing type 0, 1 segment left
		06 00 01 04 00000000`), tcpSYN),
		ok6(nhRouting).length(100).class(Malformed, ReasonRoutingHeader0)},
	{"v6/routing-header-0-no-segments-left", cat(v6(44, nhRouting), pkt(`06 02 00 00 00000000 20010db8000000000000000000000001 20010db8000000000000000000000002`), tcpSYN),
		ok6(nhRouting).length(84).class(Malformed, ReasonRoutingHeader0)},
	{"v6/long-dest-opts", cat(v6(28, nhDestOpts), pkt(`11 01 01 0c 000000000000000000000000 # dest opts: next UDP, 16 bytes`), udpDNS),
		ok6(ProtoUDP).length(68).ports(49152, 53)},
	{"v6/ah", cat(v6(36, nhAH), pkt(`11 04 0000 00000100 00000001 000000000000000000000000 # AH: next UDP, (4+2)*4 = 24 bytes`), udpDNS),
		ok6(ProtoUDP).length(76).ports(49152, 53)},
	{"v6/first-fragment", cat(v6(20, nhFragment), pkt(`11 00 0001 deadbeef # fragment: next UDP, offset 0, M`), udpDNS),
		ok6(ProtoUDP).length(60).ports(49152, 53)},
	{"v6/non-first-fragment", cat(v6(16, nhFragment), pkt(`11 00 05c8 deadbeef # fragment: next UDP, offset 185`), pkt(`c000 0035 000c 0000`)),
		ok6(ProtoUDP).length(56).class(Fragment, ReasonNonFirstFragment)},
	{"v6/fragment-after-hbh", cat(v6(20, 0), pkt(`2c 00 01 04 00000000 # hop-by-hop: next fragment`), pkt(`06 00 0a29 deadbeef # fragment: next TCP, offset 325, M`), pkt(`00000000`)),
		ok6(ProtoTCP).length(60).class(Fragment, ReasonNonFirstFragment)},
	{"v6/esp", cat(v6(16, 50), pkt(`00000100 00000001 0102030405060708 # ESP: SPI, seq, ciphertext`)), ok6(50).length(56)},
	{"v6/no-next-header", v6(0, nhNoNext), ok6(nhNoNext).length(40)},
	{"v6/jumbogram", cat(v6(0, 0), pkt(`06 00 c2 04 00010000 # hop-by-hop: next TCP, jumbo payload option`), tcpSYN),
		ok6(ProtoTCP).length(40).ports(54321, 80).flags(TCPFlagSYN)},
	{"v6/cut-by-copy-range", cat(v6(1460, ProtoTCP), tcpSYN), ok6(ProtoTCP).length(1500).ports(54321, 80).flags(TCPFlagSYN)},
	{"v6/max-payload-length", cat(v6(0xffff, ProtoUDP), udpDNS), ok6(ProtoUDP).length(0xffff).ports(49152, 53)},
	{"v6/payload-length-cuts-l4", cat(v6(8, ProtoTCP), tcpSYN), ok6(ProtoTCP).length(48).class(Malformed, ReasonTruncatedL4)},
	{"v6/truncated-header", cat(pkt(`6000 0000 0014 0640`), v6addrs[:20]), Packet{Family: IPv6, Class: Malformed, Reason: ReasonTruncatedIP}},
	{"v6/truncated-ext-header", cat(v6(16, 0), pkt(`06 01 01 04 00000000 # hop-by-hop claims 16 bytes, 8 present`)),
		ok6(0).length(56).class(Malformed, ReasonTruncatedExtHeader)},
	{"v6/ext-header-one-byte", cat(v6(1, nhRouting), pkt(`06`)), ok6(nhRouting).length(41).class(Malformed, ReasonTruncatedExtHeader)},
	{"v6/truncated-fragment-header", cat(v6(4, nhFragment), pkt(`11 00 0000`)), ok6(nhFragment).length(44).class(Malformed, ReasonTruncatedExtHeader)},
	{"v6/truncated-ah", cat(v6(12, nhAH), pkt(`11 04 0000 00000100 00000001 # AH claims 24 bytes`)),
		ok6(nhAH).length(52).class(Malformed, ReasonTruncatedExtHeader)},
	{"v6/too-many-ext-headers", cat(v6(80, nhDestOpts), pkt(strings.Repeat("3c 00 01 04 00000000 ", 9)), pkt(`06 00 01 04 00000000`)),
		ok6(nhDestOpts).length(120).class(Malformed, ReasonTooManyExtHeaders)},
	{"v6/max-ext-headers", cat(v6(76, nhDestOpts), pkt(strings.Repeat("3c 00 01 04 00000000 ", 7)), pkt(`11 00 01 04 00000000`), udpDNS),
		ok6(ProtoUDP).length(116).ports(49152, 53)},
	{"v6/tcp-truncated", cat(v6(20, ProtoTCP), tcpSYN[:19]), ok6(ProtoTCP).length(60).class(Malformed, ReasonTruncatedL4)},
	{"v6/icmpv6-truncated", cat(v6(4, ProtoICMPv6), pkt(`80`)), ok6(ProtoICMPv6).length(44).class(Malformed, ReasonTruncatedL4)},

	// Neither
	{"empty", []byte{}, Packet{Class: Malformed, Reason: ReasonEmpty}},
	{"nil", nil, Packet{Class: Malformed, Reason: ReasonEmpty}},
	{"bad-version-5", cat(pkt(`55 00 0028 0001 0000 40 06 0000`), v4addrs, tcpSYN), Packet{Class: Malformed, Reason: ReasonBadVersion}},
	{"bad-version-0", []byte{0x00}, Packet{Class: Malformed, Reason: ReasonBadVersion}},
	{"v4-one-byte", []byte{0x45}, Packet{Family: IPv4, Class: Malformed, Reason: ReasonTruncatedIP}},
	{"v6-one-byte", []byte{0x60}, Packet{Family: IPv6, Class: Malformed, Reason: ReasonTruncatedIP}},
}

func TestDecode(t *testing.T) {
	var d Decoder
	for _, f := range fixtures {
		var got Packet
		d.Decode(f.b, &got)
		if got != f.want {
			t.Errorf("%s:\n got  %+v\n want %+v", f.name, got, f.want)
		}
	}
}

func TestDecodeKeepsCT(t *testing.T) {
	var d Decoder
	p := Packet{CT: CTRelated, SrcPort: 9, Class: Malformed, Reason: ReasonEmpty}
	d.Decode(BuildUDP4("198.18.0.1", "198.19.0.2", 1000, 53), &p)
	want := ok4(ProtoUDP).length(32).ports(1000, 53)
	want.CT = CTRelated
	if p != want {
		t.Errorf("got %+v, want %+v", p, want)
	}
}

// Fixtures named in the brief must stay covered.
func TestFixtureKinds(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range fixtures {
		seen[f.want.Class.String()+"/"+f.want.Reason.String()] = true
	}
	for r := ReasonNone; r <= ReasonBadUDPLength; r++ {
		c := Malformed
		switch r {
		case ReasonNone:
			c = OK
		case ReasonNonFirstFragment:
			c = Fragment
		}
		if !seen[c.String()+"/"+r.String()] {
			t.Errorf("no fixture for %s/%s", c, r)
		}
	}
}

func TestHasPortsAndICMP(t *testing.T) {
	var d Decoder
	for _, f := range fixtures {
		var p Packet
		d.Decode(f.b, &p)
		wantPorts := p.Class == OK && (p.Proto == ProtoTCP || p.Proto == ProtoUDP || p.Proto == ProtoSCTP || p.Proto == ProtoUDPLite)
		if p.HasPorts() != wantPorts {
			t.Errorf("%s: HasPorts = %v", f.name, p.HasPorts())
		}
		if !p.HasPorts() && p.Class == OK && (p.SrcPort != 0 || p.DstPort != 0) {
			t.Errorf("%s: ports set without HasPorts", f.name)
		}
		if !p.HasICMP() && (p.ICMPType != 0 || p.ICMPCode != 0) {
			t.Errorf("%s: ICMP fields set without HasICMP", f.name)
		}
	}
}

func TestBuilders(t *testing.T) {
	const (
		s4, d4 = "198.18.0.1", "198.19.0.2"
		s6, d6 = "2001:db8::1", "2001:db8::2"
	)
	tests := []struct {
		name string
		b    []byte
		want Packet
	}{
		{"BuildTCP4", BuildTCP4(s4, d4, 40000, 443, TCPFlagSYN), ok4(ProtoTCP).length(40).ports(40000, 443).flags(TCPFlagSYN)},
		{"BuildTCP4 ack", BuildTCP4(s4, d4, 40000, 443, TCPFlagACK|TCPFlagPSH), ok4(ProtoTCP).length(40).ports(40000, 443).flags(TCPFlagACK | TCPFlagPSH)},
		{"BuildUDP4", BuildUDP4(s4, d4, 5353, 53), ok4(ProtoUDP).length(32).ports(5353, 53)},
		{"BuildICMP4", BuildICMP4(s4, d4, 8, 0), ok4(ProtoICMP).length(28).icmp(8, 0)},
		{"BuildICMP4 unreachable", BuildICMP4(s4, d4, 3, 13), ok4(ProtoICMP).length(28).icmp(3, 13)},
		{"BuildTCP6", BuildTCP6(s6, d6, 40000, 22, TCPFlagSYN|TCPFlagECE|TCPFlagCWR), ok6(ProtoTCP).length(60).ports(40000, 22).flags(TCPFlagSYN | TCPFlagECE | TCPFlagCWR)},
		{"BuildUDP6", BuildUDP6(s6, d6, 546, 547), ok6(ProtoUDP).length(52).ports(546, 547)},
		{"BuildICMP6", BuildICMP6(s6, d6, 135, 0), ok6(ProtoICMPv6).length(48).icmp(135, 0)},
	}
	var d Decoder
	for _, tt := range tests {
		var got Packet
		d.Decode(tt.b, &got)
		if got != tt.want {
			t.Errorf("%s:\n got  %+v\n want %+v", tt.name, got, tt.want)
		}
	}
}

func TestBuildersComputeChecksums(t *testing.T) {
	b := BuildTCP4("198.18.0.1", "198.19.0.2", 1, 2, TCPFlagSYN)
	if sum := inetChecksum(b[:20]); sum != 0 {
		t.Errorf("IPv4 header checksum does not verify: residue %#04x", sum)
	}
	pseudo := cat(b[12:20], []byte{0, ProtoTCP, 0, byte(len(b) - 20)}, b[20:])
	if sum := inetChecksum(pseudo); sum != 0 {
		t.Errorf("TCP checksum does not verify: residue %#04x", sum)
	}
}

func inetChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func TestBuildersRejectWrongFamily(t *testing.T) {
	for name, f := range map[string]func(){
		"v6 address to BuildTCP4": func() { BuildTCP4("2001:db8::1", "198.19.0.2", 1, 2, 0) },
		"v4 address to BuildUDP6": func() { BuildUDP6("2001:db8::1", "198.19.0.2", 1, 2) },
		"not an address":          func() { BuildICMP4("host", "198.19.0.2", 8, 0) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestNoAllocs(t *testing.T) {
	var d Decoder
	var p Packet
	for _, f := range fixtures {
		b := f.b
		if n := testing.AllocsPerRun(100, func() { d.Decode(b, &p) }); n != 0 {
			t.Errorf("%s: %v allocs per Decode, want 0", f.name, n)
		}
	}
}

// A decoder's reused layers must not leak state from one packet into the next.
func TestDecoderReuseIsStateless(t *testing.T) {
	var reused Decoder
	for _, prev := range fixtures {
		for _, f := range fixtures {
			var p, fresh Packet
			reused.Decode(prev.b, &p)
			reused.Decode(f.b, &p)
			new(Decoder).Decode(f.b, &fresh)
			if p != fresh {
				t.Fatalf("%s after %s: got %+v, fresh decoder gives %+v", f.name, prev.name, p, fresh)
			}
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, fx := range fixtures {
		f.Add(fx.b)
	}
	f.Add(BuildTCP6("2001:db8::1", "2001:db8::2", 1, 2, TCPFlagSYN))
	f.Add(BuildICMP6("2001:db8::1", "2001:db8::2", 1, 4))
	var d Decoder
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := append([]byte(nil), b...)
		var p1, p2 Packet
		d.Decode(b, &p1)
		d.Decode(b, &p2)
		if p1 != p2 {
			t.Fatalf("decoding twice differs:\n%+v\n%+v", p1, p2)
		}
		if string(b) != string(orig) {
			t.Fatal("Decode modified its input")
		}
		checkInvariants(t, b, &p1)
	})
}

// checkInvariants states what every decoded Packet promises.
func checkInvariants(t *testing.T, b []byte, p *Packet) {
	t.Helper()
	if p.Reason == ReasonDecodeError {
		t.Fatalf("gopacket rejected a header the bounds checks accepted: % x", b)
	}
	if (p.Class == OK) != (p.Reason == ReasonNone) || (p.Class == Fragment) != (p.Reason == ReasonNonFirstFragment) {
		t.Fatalf("class %s with reason %s", p.Class, p.Reason)
	}
	if len(b) > 0 && (b[0]>>4 == 4 || b[0]>>4 == 6) && uint8(p.Family) != b[0]>>4 {
		t.Fatalf("family %d for version %d", p.Family, b[0]>>4)
	}
	if p.Src.IsValid() && (p.Src.Is4() != (p.Family == IPv4) || p.Dst.Is4() != (p.Family == IPv4)) {
		t.Fatalf("addresses %v %v for family %d", p.Src, p.Dst, p.Family)
	}
	if p.Class != OK && p.Reason != ReasonBadTCPOffset && p.Reason != ReasonBadUDPLength && (p.SrcPort|p.DstPort) != 0 {
		t.Fatalf("ports set for %s/%s", p.Class, p.Reason)
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, f := range fixtures {
		b.Run(f.name, func(b *testing.B) {
			var d Decoder
			var p Packet
			b.ReportAllocs()
			b.SetBytes(int64(len(f.b)))
			for b.Loop() {
				d.Decode(f.b, &p)
			}
		})
	}
}
