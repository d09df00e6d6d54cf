package conformance

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net/netip"
)

// Protocol numbers the probes use by name.
const (
	protoICMP    = 1
	protoTCP     = 6
	protoUDP     = 17
	protoICMPv6  = 58
	protoSCTP    = 132
	protoUDPLite = 136
)

// probeMagic starts the payload of every probe (and is the TCP sequence
// number), so a probe is told apart from the replies and neighbour
// discovery the kernel sends on its own.
const probeMagic = 0x6e66636f // "nfco"

// TCP flag bits.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// Packet is the IP packet of a probe, minus what the sender fills in.
type Packet struct {
	Src, Dst     netip.Addr
	Proto        uint8
	SPort, DPort uint16
	ICMPType     uint8
	ICMPCode     uint8
	TCPFlags     uint8  // 0 means SYN
	ID           uint16 // IPv4 identification / IPv6 flow label: the probe's number
}

func (p *Packet) hasPorts() bool {
	return p.Proto == protoTCP || p.Proto == protoUDP || p.Proto == protoSCTP || p.Proto == protoUDPLite
}

func (p *Packet) isICMP() bool {
	return (p.Proto == protoICMP && p.Src.Is4()) || (p.Proto == protoICMPv6 && p.Src.Is6())
}

// Bytes builds the packet: an IPv4 header (checksum filled) or an IPv6
// header, and a transport header with a correct checksum, then the magic.
func (p *Packet) Bytes() ([]byte, error) {
	if !p.Src.IsValid() || !p.Dst.IsValid() || p.Src.Is4() != p.Dst.Is4() {
		return nil, fmt.Errorf("packet: bad addresses %v -> %v", p.Src, p.Dst)
	}
	payload := make([]byte, 8)
	binary.BigEndian.PutUint32(payload, probeMagic)
	binary.BigEndian.PutUint16(payload[4:], p.ID)
	var l4 []byte
	switch {
	case p.Proto == protoTCP:
		l4 = make([]byte, 20)
		binary.BigEndian.PutUint16(l4[0:], p.SPort)
		binary.BigEndian.PutUint16(l4[2:], p.DPort)
		binary.BigEndian.PutUint32(l4[4:], probeMagic)
		l4[12] = 5 << 4
		flags := p.TCPFlags
		if flags == 0 {
			flags = tcpSYN
		}
		l4[13] = flags
		binary.BigEndian.PutUint16(l4[14:], 64240)
		l4 = append(l4, payload...)
		binary.BigEndian.PutUint16(l4[16:], p.l4Checksum(l4))
	case p.Proto == protoUDP || p.Proto == protoUDPLite:
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[0:], p.SPort)
		binary.BigEndian.PutUint16(l4[2:], p.DPort)
		l4 = append(l4, payload...)
		if p.Proto == protoUDP {
			binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		} // UDP-Lite: checksum coverage 0 = the whole datagram
		// UDP-Lite's checksum as the kernel's conntrack verifies it at
		// PREROUTING (nf_checksum_partial with IPPROTO_UDP in the
		// pseudo-header): with protocol 136 there, conntrack calls the
		// packet INVALID and no flow starts.
		q := *p
		q.Proto = protoUDP
		ck := q.l4Checksum(l4)
		if ck == 0 {
			ck = 0xffff
		}
		binary.BigEndian.PutUint16(l4[6:], ck)
	case p.Proto == protoSCTP:
		// Common header + one INIT chunk (verification tag 0, as INIT needs).
		l4 = make([]byte, 12+20)
		binary.BigEndian.PutUint16(l4[0:], p.SPort)
		binary.BigEndian.PutUint16(l4[2:], p.DPort)
		c := l4[12:]
		c[0] = 1 // INIT
		binary.BigEndian.PutUint16(c[2:], 20)
		binary.BigEndian.PutUint32(c[4:], probeMagic) // initiate tag
		binary.BigEndian.PutUint32(c[8:], 65536)      // a_rwnd
		binary.BigEndian.PutUint16(c[12:], 1)
		binary.BigEndian.PutUint16(c[14:], 1)
		binary.BigEndian.PutUint32(c[16:], uint32(p.ID)+1)
		binary.LittleEndian.PutUint32(l4[8:], crc32.Checksum(l4, crc32.MakeTable(crc32.Castagnoli)))
	case p.Proto == protoICMP && p.Src.Is4(), p.Proto == protoICMPv6 && p.Src.Is6():
		l4 = make([]byte, 8)
		l4[0], l4[1] = p.ICMPType, p.ICMPCode
		binary.BigEndian.PutUint16(l4[4:], p.ID) // echo identifier: one flow per probe
		binary.BigEndian.PutUint16(l4[6:], 1)
		l4 = append(l4, payload...)
		var ck uint16
		if p.Proto == protoICMPv6 {
			ck = p.l4Checksum(l4)
		} else {
			ck = fold(sum(0, l4))
		}
		binary.BigEndian.PutUint16(l4[2:], ck)
	default:
		l4 = payload
	}
	if p.Src.Is4() {
		h := make([]byte, 20, 20+len(l4))
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
		binary.BigEndian.PutUint16(h[4:], p.ID)
		h[8] = 64
		h[9] = p.Proto
		s, d := p.Src.As4(), p.Dst.As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		binary.BigEndian.PutUint16(h[10:], fold(sum(0, h)))
		return append(h, l4...), nil
	}
	h := make([]byte, 40, 40+len(l4))
	binary.BigEndian.PutUint32(h[0:], 6<<28|uint32(p.ID))
	binary.BigEndian.PutUint16(h[4:], uint16(len(l4)))
	h[6] = p.Proto
	h[7] = 64
	s, d := p.Src.As16(), p.Dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, l4...), nil
}

// l4Checksum is the transport checksum with the pseudo-header.
func (p *Packet) l4Checksum(l4 []byte) uint16 {
	var ph []byte
	if p.Src.Is4() {
		s, d := p.Src.As4(), p.Dst.As4()
		ph = append(append(ph, s[:]...), d[:]...)
		ph = append(ph, 0, p.Proto, byte(len(l4)>>8), byte(len(l4)))
	} else {
		s, d := p.Src.As16(), p.Dst.As16()
		ph = append(append(ph, s[:]...), d[:]...)
		ph = binary.BigEndian.AppendUint32(ph, uint32(len(l4)))
		ph = append(ph, 0, 0, 0, p.Proto)
	}
	return fold(sum(sum(0, ph), l4))
}

func sum(s uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// probeOf reads a traced packet's network and transport headers back:
// it returns the probe number and whether the packet is a probe (the
// magic where the transport header shows it).
func probeOf(network, transport []byte) (uint16, uint8, bool) {
	var id uint16
	var proto, icmp uint8
	switch {
	case len(network) >= 20 && network[0]>>4 == 4:
		id, proto, icmp = binary.BigEndian.Uint16(network[4:]), network[9], protoICMP
	case len(network) >= 40 && network[0]>>4 == 6:
		fl := binary.BigEndian.Uint32(network[0:]) & 0xfffff
		if fl > 0xffff {
			return 0, 0, false
		}
		id, proto, icmp = uint16(fl), network[6], protoICMPv6
	default:
		return 0, 0, false
	}
	magicAt := -1
	switch proto {
	case protoTCP:
		magicAt = 4
	case protoUDP, protoUDPLite, icmp:
		magicAt = 8
	case protoSCTP:
		magicAt = 16
	default:
		magicAt = 0
	}
	if len(transport) < magicAt+4 || binary.BigEndian.Uint32(transport[magicAt:]) != probeMagic {
		return 0, 0, false
	}
	return id, proto, true
}
