package conformance

import (
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// probeEvent is a trace event carrying a probe's headers (the first event
// of a base chain pass).
func probeEvent(t *testing.T, id uint32, table, chain string, p *Packet) traceEvent {
	t.Helper()
	b, err := p.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	hl := 20
	if p.Src.Is6() {
		hl = 40
	}
	return traceEvent{ID: id, Table: table, Chain: chain, HasPacket: true, Network: b[:hl], Transport: b[hl:]}
}

func rule(id uint32, table, chain string, verdict int32) traceEvent {
	return traceEvent{ID: id, Table: table, Chain: chain, Type: traceTypeRule, Verdict: verdict}
}

func policyEv(id uint32, table, chain string) traceEvent {
	return traceEvent{ID: id, Table: table, Chain: chain, Type: traceTypePolicy, Verdict: nfAccept}
}

// The trace analysis gives each hook the verdict of its last pass: a
// queued packet re-run by NF_REPEAT takes its second pass's verdict; one
// queued and never seen again was dropped; one seen at a later hook was
// accepted; a base chain policy is NONE.
func TestObserve(t *testing.T) {
	p := &Packet{Src: netip.MustParseAddr("198.18.1.2"), Dst: netip.MustParseAddr("198.18.1.1"), Proto: protoTCP, SPort: 1, DPort: 22, ID: 7}
	q := &Packet{Src: netip.MustParseAddr("2001:db8:1::2"), Dst: netip.MustParseAddr("2001:db8:1::1"), Proto: protoUDP, SPort: 1, DPort: 53, ID: 8}
	queue := int32(nfQueue | 102<<16)
	evs := []traceEvent{
		// probe 7: raw NONE, mangle queued then repeated and accepted, filter INPUT queued and dropped.
		probeEvent(t, 1, "nfconf", "pre", p),
		rule(1, "nfconf", "pre", -1),
		probeEvent(t, 1, "raw", "PREROUTING", p),
		rule(1, "raw", "PREROUTING", -3),
		policyEv(1, "raw", "PREROUTING"),
		{ID: 1, Table: "nfconf", Chain: "prect", Type: traceTypeRule, Verdict: -3, JumpTo: "st-new"},
		probeEvent(t, 1, "mangle", "PREROUTING", p),
		rule(1, "mangle", "NFGATE-PRE", queue),
		probeEvent(t, 1, "mangle", "PREROUTING", p),
		rule(1, "mangle", "NFGATE-PRE", nfAccept),
		probeEvent(t, 1, "filter", "INPUT", p),
		rule(1, "filter", "cali-pi-gnp/p1", -1),
		rule(1, "filter", "NFGATE-IN", queue),
		// probe 8 (IPv6): forward accepted by user space (seen later at mangle POSTROUTING).
		probeEvent(t, 2, "filter", "FORWARD", q),
		rule(2, "filter", "NFGATE-FWD", queue),
		probeEvent(t, 2, "mangle", "POSTROUTING", q),
		policyEv(2, "mangle", "POSTROUTING"),
		// Not a probe (a kernel reply: no magic): ignored.
		{ID: 3, Table: "filter", Chain: "OUTPUT", HasPacket: true, Network: make([]byte, 20), Transport: make([]byte, 20)},
		rule(3, "filter", "OUTPUT", nfDrop),
	}
	obs := observe(evs)
	if len(obs) != 2 {
		t.Fatalf("observed %d probes, want 2: %v", len(obs), obs)
	}
	o := obs[7]
	want := map[string]string{"raw PREROUTING": vNone, "mangle PREROUTING": vAccept, "filter INPUT": vDrop}
	for h, v := range want {
		if o.Hooks[h] != v {
			t.Errorf("probe 7 %s: %s, want %s", h, o.Hooks[h], v)
		}
	}
	if o.CT != "new" {
		t.Errorf("probe 7 ct %q, want new", o.CT)
	}
	if o.Chain["filter INPUT"] != "cali-pi-gnp/p1" {
		t.Errorf("probe 7 decider %q", o.Chain["filter INPUT"])
	}
	if v := obs[8].Hooks["filter FORWARD"]; v != vAccept {
		t.Errorf("probe 8 forward %s, want ACCEPT", v)
	}
}

// Probe packets are well formed: gopacket decodes them with valid
// checksums, and probeOf finds their number again.
func TestPacketBytes(t *testing.T) {
	for _, p := range []Packet{
		{Src: clientIP4, Dst: serverIP4, Proto: protoTCP, SPort: 1000, DPort: 80, ID: 3},
		{Src: clientIP6, Dst: serverIP6, Proto: protoUDP, SPort: 1000, DPort: 5000, ID: 4},
		{Src: clientIP4, Dst: serverIP4, Proto: protoICMP, ICMPType: 8, ID: 5},
		{Src: clientIP6, Dst: serverIP6, Proto: protoICMPv6, ICMPType: 128, ID: 6},
		{Src: clientIP4, Dst: serverIP4, Proto: protoSCTP, SPort: 5, DPort: 6, ID: 7},
		{Src: clientIP6, Dst: serverIP6, Proto: 50, ID: 8},
		{Src: clientIP6, Dst: serverIP6, Proto: protoICMP, ICMPType: 8, ID: 9}, // ICMPv4 inside IPv6: a bare protocol
		{Src: clientIP4, Dst: serverIP4, Proto: protoICMPv6, ICMPType: 128, ID: 10},
	} {
		b, err := p.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		first := layers.LayerTypeIPv4
		hl := 20
		if p.Src.Is6() {
			first, hl = layers.LayerTypeIPv6, 40
		}
		pk := gopacket.NewPacket(b, first, gopacket.Default)
		if el := pk.ErrorLayer(); el != nil {
			t.Errorf("%v: %v", p, el.Error())
		}
		if id, proto, ok := probeOf(b[:hl], b[hl:]); !ok || id != p.ID || proto != p.Proto {
			t.Errorf("%v: probeOf = %d %d %v", p, id, proto, ok)
		}
		// Checksums: summing a header with its checksum in gives zero.
		if p.Src.Is4() && fold(sum(0, b[:20])) != 0 {
			t.Errorf("%v: bad IPv4 header checksum", p)
		}
		l4 := b[hl:]
		switch {
		case !p.isICMP() && !p.hasPorts():
			// a bare protocol: no checksum
		case p.Proto == protoICMP:
			if fold(sum(0, l4)) != 0 {
				t.Errorf("%v: bad ICMP checksum", p)
			}
		case p.Proto == protoTCP || p.Proto == protoUDP || p.Proto == protoICMPv6:
			if p.l4Checksum(l4) != 0 {
				t.Errorf("%v: bad transport checksum", p)
			}
		}
	}
}
