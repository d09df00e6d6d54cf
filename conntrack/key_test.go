package conntrack

import (
	"net/netip"
	"testing"
	"unsafe"
)

var ap = netip.MustParseAddr

func TestFlowKeyIdentity(t *testing.T) {
	v4a, v4b := ap("198.18.0.1"), ap("198.18.0.2")
	v6b := ap("2001:db8::2")
	mapped := ap("::ffff:198.18.0.1")
	base := MakeKey(4, 6, v4a, v4b, 1234, 80)
	tests := []struct {
		name  string
		k     FlowKey
		equal bool
	}{
		{"same tuple", MakeKey(4, 6, v4a, v4b, 1234, 80), true},
		{"other source port", MakeKey(4, 6, v4a, v4b, 1235, 80), false},
		{"other destination port", MakeKey(4, 6, v4a, v4b, 1234, 81), false},
		{"other protocol", MakeKey(4, 17, v4a, v4b, 1234, 80), false},
		{"swapped addresses", MakeKey(4, 6, v4b, v4a, 1234, 80), false},
		{"reverse of reverse", base.Reverse().Reverse(), true},
		{"v4-mapped v6 is not v4", MakeKey(6, 6, mapped, v4b, 1234, 80), false},
	}
	for _, tt := range tests {
		if got := tt.k == base; got != tt.equal {
			t.Errorf("%s: (%v == %v) = %v, want %v", tt.name, tt.k, base, got, tt.equal)
		}
	}
	z1 := MakeKey(6, 17, ap("fe80::1%eth0"), v6b, 1, 2)
	z2 := MakeKey(6, 17, ap("fe80::1%eth1"), v6b, 1, 2)
	if z1 != z2 {
		t.Errorf("keys differing only in zone differ: %v vs %v", z1, z2)
	}
}

func TestFlowKeyAccessors(t *testing.T) {
	tests := []struct {
		k       FlowKey
		family  uint8
		proto   uint8
		src     string
		dst     string
		sp, dp  uint16
		display string
	}{
		{MakeKey(4, 6, ap("198.18.0.1"), ap("198.18.0.2"), 1234, 80), 4, 6, "198.18.0.1", "198.18.0.2", 1234, 80, "tcp 198.18.0.1:1234 -> 198.18.0.2:80"},
		{MakeKey(6, 17, ap("2001:db8::1"), ap("2001:db8::2"), 53, 5353), 6, 17, "2001:db8::1", "2001:db8::2", 53, 5353, "udp [2001:db8::1]:53 -> [2001:db8::2]:5353"},
		{MakeICMPKey(4, 1, ap("198.18.0.1"), ap("198.18.0.2"), 8, 0, 77), 4, 1, "198.18.0.1", "198.18.0.2", 8 << 8, 77, "icmp 198.18.0.1:2048 -> 198.18.0.2:77"},
		{MakeKey(4, 47, ap("198.18.0.1"), ap("198.18.0.2"), 0, 0), 4, 47, "198.18.0.1", "198.18.0.2", 0, 0, "proto 47 198.18.0.1:0 -> 198.18.0.2:0"},
	}
	for _, tt := range tests {
		k := tt.k
		if k.Family() != tt.family || k.Proto() != tt.proto || k.Src().String() != tt.src || k.Dst().String() != tt.dst ||
			k.SrcPort() != tt.sp || k.DstPort() != tt.dp || k.String() != tt.display {
			t.Errorf("%s: got family=%d proto=%d %v:%d -> %v:%d", tt.display, k.Family(), k.Proto(), k.Src(), k.SrcPort(), k.Dst(), k.DstPort())
		}
		r := k.Reverse()
		if r.Src() != k.Dst() || r.Dst() != k.Src() || r.SrcPort() != k.DstPort() || r.DstPort() != k.SrcPort() {
			t.Errorf("%s: Reverse() = %v", tt.display, r)
		}
	}
	if !(FlowKey{}).IsZero() || MakeKey(4, 6, ap("198.18.0.1"), ap("198.18.0.2"), 1, 2).IsZero() {
		t.Error("IsZero wrong")
	}
}

func TestFlowKeyICMPDistinct(t *testing.T) {
	a, b := ap("198.18.0.1"), ap("198.18.0.2")
	echo1 := MakeICMPKey(4, 1, a, b, 8, 0, 1)
	echo2 := MakeICMPKey(4, 1, a, b, 8, 0, 2)
	unreach := MakeICMPKey(4, 1, a, b, 3, 3, 0)
	if echo1 == echo2 || echo1 == unreach {
		t.Errorf("ICMP keys collide: %v %v %v", echo1, echo2, unreach)
	}
}

func TestFlowKeyPacked(t *testing.T) {
	if got := unsafe.Sizeof(FlowKey{}); got != 38 {
		t.Errorf("sizeof(FlowKey) = %d, want 38 (no padding)", got)
	}
}

var sinkKey FlowKey

func TestMakeKeyNoAllocs(t *testing.T) {
	a, b := ap("2001:db8::1"), ap("2001:db8::2")
	m := map[FlowKey]int{}
	m[MakeKey(6, 6, a, b, 1, 2)] = 1
	n := testing.AllocsPerRun(1000, func() {
		sinkKey = MakeKey(6, 6, a, b, 1, 2)
		_ = m[sinkKey]
		sinkKey = sinkKey.Reverse()
	})
	if n != 0 {
		t.Errorf("MakeKey + map lookup allocated %v times per run, want 0", n)
	}
}

func BenchmarkMakeKey(b *testing.B) {
	s, d := ap("198.18.0.1"), ap("198.18.0.2")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sinkKey = MakeKey(4, 6, s, d, uint16(i), 80)
	}
}

func BenchmarkFlowKeyMapLookup(b *testing.B) {
	s, d := ap("198.18.0.1"), ap("198.18.0.2")
	m := make(map[FlowKey]int, 1024)
	for i := range 1024 {
		m[MakeKey(4, 6, s, d, uint16(i), 80)] = i
	}
	b.ReportAllocs()
	var sum int
	for i := 0; b.Loop(); i++ {
		sum += m[MakeKey(4, 6, s, d, uint16(i&2047), 80)]
	}
	_ = sum
}
