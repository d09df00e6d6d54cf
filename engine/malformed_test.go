package engine_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/enginetest"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

// Packet builders for odd packets (checksums are left zero: nfgate never
// checks them, the kernel's conntrack does, see docs/reliability.md).

func tcpHdr(sport, dport uint16, words uint8) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = words << 4
	b[13] = 0x02 // SYN
	return b
}

func udpHdr(sport, dport uint16) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], 8)
	return b
}

// ip4 builds an IPv4 packet: opts are IP options (a multiple of 4 bytes),
// frag the fragment offset in 8-byte units.
func ip4(proto uint8, opts []byte, frag uint16, payload []byte) []byte {
	hl := 20 + len(opts)
	b := make([]byte, hl+len(payload))
	b[0] = 0x40 | uint8(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8], b[9] = 64, proto
	s, d := netip.MustParseAddr("198.18.1.2").As4(), netip.MustParseAddr("198.18.2.2").As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], opts)
	copy(b[hl:], payload)
	return b
}

// ext6 is one IPv6 extension header: its type and its bytes after the
// next-header byte (padded to its length unit by ip6).
type ext6 struct {
	typ  uint8
	body []byte
}

func ip6(exts []ext6, proto uint8, payload []byte) []byte {
	var chain []byte
	for i, e := range exts {
		next := proto
		if i+1 < len(exts) {
			next = exts[i+1].typ
		}
		h := append([]byte{next}, e.body...)
		chain = append(chain, h...)
	}
	b := make([]byte, 40, 40+len(chain)+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(chain)+len(payload)))
	b[6] = proto
	if len(exts) > 0 {
		b[6] = exts[0].typ
	}
	b[7] = 64
	s, d := netip.MustParseAddr("2001:db8:1::2").As16(), netip.MustParseAddr("2001:db8:2::2").As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(append(b, chain...), payload...)
}

var (
	hopByHop  = ext6{0, []byte{0, 1, 4, 0, 0, 0, 0}}                                                  // 8 bytes: PadN
	routing   = ext6{43, []byte{0, 4, 0, 0, 0, 0, 0}}                                                 // type 4 (SRH-like), no segments left
	rh0       = ext6{43, []byte{0, 0, 1, 0, 0, 0, 0}}                                                 // type 0, one segment left
	destOpts  = ext6{60, []byte{0, 1, 4, 0, 0, 0, 0}}                                                 // 8 bytes: PadN
	fragFirst = ext6{44, []byte{0, 0x00, 0x01, 0, 0, 0, 42}}                                          // offset 0, more fragments
	fragLater = ext6{44, []byte{0, 0x00, 0xb8, 0, 0, 0, 42}}                                          // offset 23 (184 bytes)
	nopOpts   = []byte{1, 1, 1, 0}                                                                    // NOP NOP NOP EOL
	raOpt     = []byte{0x94, 4, 0, 0}                                                                 // router alert
	icmpUnr   = func(inner []byte) []byte { return append([]byte{3, 3, 0, 0, 0, 0, 0, 0}, inner...) } // port unreachable
)

// malformedCase is one odd packet and what the engine does with it on a
// policed interface (the input stage, an endpoint whose policy allows
// TCP/22 and anything without ports).
type malformedCase struct {
	name   string
	pkt    []byte
	want   string // ACCEPT (policy decided), DROP-malformed
	reason string // the trace note
}

func malformedCases() []malformedCase {
	tcp22 := tcpHdr(40000, 22, 5)
	return []malformedCase{
		{"empty packet", nil, "DROP-malformed", "empty"},
		{"unknown IP version 7", []byte{0x70, 0, 0, 20}, "DROP-malformed", "bad-version"},
		{"IPv4 header truncated (12 of 20 bytes)", ip4(6, nil, 0, tcp22)[:12], "DROP-malformed", "truncated-ip"},
		{"IPv4 IHL 4 (16 bytes, below the minimum)", func() []byte { b := ip4(6, nil, 0, tcp22); b[0] = 0x44; return b }(), "DROP-malformed", "bad-ihl"},
		{"IPv4 IHL 15 beyond the packet", func() []byte { b := ip4(6, nil, 0, nil); b[0] = 0x4f; binary.BigEndian.PutUint16(b[2:], 60); return b }(), "DROP-malformed", "truncated-ip"},
		{"IPv4 total length below IHL", func() []byte { b := ip4(6, nil, 0, tcp22); binary.BigEndian.PutUint16(b[2:], 10); return b }(), "DROP-malformed", "bad-length"},
		{"IPv4 with NOP options, TCP/22", ip4(6, nopOpts, 0, tcp22), "ACCEPT", ""},
		{"IPv4 with router-alert option, TCP/22", ip4(6, raOpt, 0, tcp22), "ACCEPT", ""},
		{"IPv4 first fragment (MF), TCP/22", ip4(6, nil, 0x2000, tcp22), "ACCEPT", ""},
		{"IPv4 non-first fragment", ip4(6, nil, 23, []byte("middle of a segment")), "ACCEPT-fragment", "fragment"},
		{"TCP header truncated (12 of 20 bytes)", ip4(6, nil, 0, tcp22[:12]), "DROP-malformed", "truncated-l4"},
		{"TCP data offset 3 (12-byte header)", ip4(6, nil, 0, tcpHdr(40000, 22, 3)), "DROP-malformed", "bad-tcp-offset"},
		{"TCP data offset 15 beyond the packet", ip4(6, nil, 0, tcpHdr(40000, 22, 15)), "ACCEPT", ""},
		{"UDP length 4 (below the header)", func() []byte { u := udpHdr(1, 22); u[5] = 4; return ip4(17, nil, 0, u) }(), "DROP-malformed", "bad-udp-length"},
		{"UDP truncated (4 of 8 bytes)", ip4(17, nil, 0, udpHdr(1, 22)[:4]), "DROP-malformed", "truncated-l4"},
		{"ICMP port unreachable carrying IPv4+TCP", ip4(1, nil, 0, icmpUnr(ip4(6, nil, 0, tcp22)[:28])), "ACCEPT", ""},
		{"ICMP truncated (4 bytes)", ip4(1, nil, 0, []byte{3, 3, 0, 0}), "DROP-malformed", "truncated-l4"},
		{"IPv6 header truncated (30 of 40 bytes)", ip6(nil, 6, tcp22)[:30], "DROP-malformed", "truncated-ip"},
		{"IPv6 TCP/22", ip6(nil, 6, tcp22), "ACCEPT", ""},
		{"IPv6 hop-by-hop, routing, fragment(first), dest-opts, TCP/22", ip6([]ext6{hopByHop, routing, fragFirst, destOpts}, 6, tcp22), "ACCEPT", ""},
		{"IPv6 non-first fragment", ip6([]ext6{fragLater}, 6, []byte("middle of a segment")), "ACCEPT-fragment", "fragment"},
		{"IPv6 routing header type 0 (nfgate drops it, RFC 5095)", ip6([]ext6{hopByHop, rh0}, 6, tcp22), "DROP-malformed", "routing-header-0"},
		{"IPv6 hop-by-hop truncated", ip6([]ext6{hopByHop}, 6, nil)[:44], "DROP-malformed", "truncated-ext-header"},
		{"IPv6 nine destination-options headers", ip6([]ext6{destOpts, destOpts, destOpts, destOpts, destOpts, destOpts, destOpts, destOpts, destOpts}, 6, tcp22), "DROP-malformed", "too-many-ext-headers"},
		{"ICMPv6 destination unreachable carrying IPv6+TCP", ip6(nil, 58, append([]byte{1, 4, 0, 0, 0, 0, 0, 0}, ip6(nil, 6, tcp22)[:48]...)), "ACCEPT", ""},
		{"IPv6 no next header (59)", ip6(nil, 59, nil), "ACCEPT", ""},
		{"bad TCP checksum (nfgate does not check)", func() []byte { b := ip4(6, nil, 0, tcp22); b[36], b[37] = 0xde, 0xad; return b }(), "ACCEPT", ""},
	}
}

func malformedSeeds() [][]byte {
	var out [][]byte
	for _, c := range malformedCases() {
		out = append(out, c.pkt)
	}
	return out
}

// TestMalformedPackets: every odd packet gets a defined verdict on a
// policed interface, counted, with the decode problem in the trace; the
// queue keeps deciding normal packets afterwards.
func TestMalformedPackets(t *testing.T) {
	l := newLab(t, config.FailClosed)
	var seen classify.Packet
	l.pol.LocalFn = func(ep policy.EndpointID, dir policy.Dir, pkt *classify.Packet) policy.Decision {
		seen = *pkt
		if !pkt.HasPorts() || pkt.DstPort == 22 {
			return enginetest.Decide(policy.Accept, 0, 0)
		}
		return enginetest.Decide(policy.Drop, 0, 1)
	}
	q, h := l.queue(policy.StageInput)
	wantMalformed := 0
	for i, c := range malformedCases() {
		if c.want == "DROP-malformed" {
			wantMalformed++
		}
		before := l.e.Snapshot()
		seen = classify.Packet{}
		id := uint32(i + 1)
		h(&engine.Packet{ID: id, Hook: engine.HookInput, InIf: ifClient, Payload: c.pkt})
		vs := q.Verdicts()
		v := vs[len(vs)-1]
		after := l.e.Snapshot()
		rec := l.tracer.Records[len(l.tracer.Records)-1]
		got := "ACCEPT"
		switch {
		case v.Action == engine.NfDrop && after.Malformed == before.Malformed+1:
			got = "DROP-malformed"
		case v.Action == engine.NfDrop:
			got = "DROP"
		case v.Mark&l.m.InDone == 0:
			got = "?"
		}
		if after.Fragments == before.Fragments+1 {
			got += "-fragment"
			if seen.HasPorts() {
				t.Errorf("%s: fragment evaluated with ports %d->%d", c.name, seen.SrcPort, seen.DstPort)
			}
		}
		t.Logf("%-62s %-16s note=%q", c.name, got, rec.Note)
		if len(vs) != int(id) || v.ID != id {
			t.Errorf("%s: %d verdicts for %d packets", c.name, len(vs), id)
		}
		if got != c.want || rec.Note != c.reason {
			t.Errorf("%s: got %s note %q, want %s note %q", c.name, got, rec.Note, c.want, c.reason)
		}
		if rh0 := after.RoutingHeader0 - before.RoutingHeader0; rh0 != 0 != (c.reason == "routing-header-0") {
			t.Errorf("%s: routing_header_0 counted %d", c.name, rh0)
		}
	}
	// The queue still decides a normal packet.
	h(&engine.Packet{ID: 999, Hook: engine.HookInput, InIf: ifClient, Payload: enginetest.TCP4("198.18.1.2", "198.18.1.1", 1, 80)})
	if vs := q.Verdicts(); vs[len(vs)-1].ID != 999 || vs[len(vs)-1].Action != engine.NfDrop || l.e.Snapshot().Malformed != uint64(wantMalformed) {
		t.Errorf("after the odd packets: last verdict %+v, malformed %d", vs[len(vs)-1], l.e.Snapshot().Malformed)
	}
	// On an interface nfgate does not police, even a malformed packet is
	// handed to the host's rules.
	h(&engine.Packet{ID: 1000, Hook: engine.HookInput, InIf: ifOther, Payload: []byte{0x45}})
	if vs := q.Verdicts(); vs[len(vs)-1].Action != engine.NfRepeat || vs[len(vs)-1].Mark != l.m.Pass {
		t.Errorf("malformed on an unpoliced interface: %+v, want NONE", vs[len(vs)-1])
	}
}
