package links

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
)

var ip = netip.MustParseAddr

func TestStaticTable(t *testing.T) {
	in := []Iface{
		{Index: 70000, Name: "veth-far", Addrs: []netip.Addr{ip("198.18.7.1")}},
		{Index: 1, Name: "lo", Addrs: []netip.Addr{ip("127.0.0.1"), ip("::1")}},
		{Index: 3, Name: "eth1"},
	}
	tb := NewStatic(in)
	in[1].Addrs[0] = ip("198.18.0.99") // the table holds its own copy

	names := []struct {
		idx  uint32
		name string
		ok   bool
	}{
		{1, "lo", true},
		{2, "", false},
		{3, "eth1", true},
		{4, "", false},
		{70000, "veth-far", true},
		{70001, "", false},
		{0, "", false},
	}
	for _, c := range names {
		if n, ok := tb.Name(c.idx); n != c.name || ok != c.ok {
			t.Errorf("Name(%d) = %q, %v; want %q, %v", c.idx, n, ok, c.name, c.ok)
		}
	}
	if idx, ok := tb.Index("veth-far"); !ok || idx != 70000 {
		t.Errorf("Index(veth-far) = %d, %v", idx, ok)
	}
	if _, ok := tb.Index("nope"); ok {
		t.Error("Index(nope) found")
	}
	addrs, ok := tb.Addrs("lo")
	if !ok || !slices.Equal(addrs, []netip.Addr{ip("127.0.0.1"), ip("::1")}) {
		t.Errorf("Addrs(lo) = %v, %v", addrs, ok)
	}
	all := tb.Interfaces()
	if len(all) != 3 || all[0].Name != "lo" || all[1].Name != "eth1" || all[2].Name != "veth-far" {
		t.Errorf("Interfaces() = %+v, want sorted by index", all)
	}
	all[0].Addrs[0] = ip("198.18.0.99")
	if a, _ := tb.Addrs("lo"); a[0] != ip("127.0.0.1") {
		t.Error("Interfaces() shares address slices with the table")
	}
	tb.Close() // a static table closes without waiting for anything
}

var sinkName string

func TestNameNoAllocs(t *testing.T) {
	tb := NewStatic([]Iface{{Index: 2, Name: "eth0"}, {Index: 90000, Name: "far"}})
	n := testing.AllocsPerRun(1000, func() {
		sinkName, _ = tb.Name(2)
		sinkName, _ = tb.Name(90000)
		sinkName, _ = tb.Name(5)
	})
	if n != 0 {
		t.Errorf("Name allocated %v times per run, want 0", n)
	}
}

func BenchmarkName(b *testing.B) {
	tb := NewStatic([]Iface{{Index: 1, Name: "lo"}, {Index: 2, Name: "eth0"}, {Index: 3, Name: "eth1"}})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sinkName, _ = tb.Name(uint32(i & 3))
	}
}

// Message builders for the kernel's wire format.

func attr(typ uint16, data []byte) []byte {
	b := make([]byte, 4, 4+len(data)+3)
	binary.NativeEndian.PutUint16(b[0:2], uint16(4+len(data)))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func linkMsg(typ netlink.HeaderType, idx uint32, name string) netlink.Message {
	b := make([]byte, ifinfomsgLen)
	binary.NativeEndian.PutUint32(b[4:8], idx)
	if name != "" {
		b = append(b, attr(iflaIfname, append([]byte(name), 0))...)
	}
	return netlink.Message{Header: netlink.Header{Type: typ}, Data: b}
}

func addrMsg(typ netlink.HeaderType, idx uint32, local, peer string) netlink.Message {
	b := make([]byte, ifaddrmsgLen)
	binary.NativeEndian.PutUint32(b[4:8], idx)
	b[0] = afInet6
	for _, a := range []struct {
		t uint16
		s string
	}{{ifaAddress, peer}, {ifaLocal, local}} {
		if a.s == "" {
			continue
		}
		addr := ip(a.s)
		if addr.Is4() {
			b[0] = afInet
		}
		b = append(b, attr(a.t, addr.AsSlice())...)
	}
	return netlink.Message{Header: netlink.Header{Type: typ}, Data: b}
}

// TestStateEvents replays event sequences as the kernel would send them.
func TestStateEvents(t *testing.T) {
	steps := []struct {
		what    string
		msg     netlink.Message
		changed bool
		want    string // the table afterwards, as formatted by describe
	}{
		{"loopback appears", linkMsg(rtmNewLink, 1, "lo"), true, "1:lo[]"},
		{"same link again (state change)", linkMsg(rtmNewLink, 1, "lo"), false, "1:lo[]"},
		{"address on lo", addrMsg(rtmNewAddr, 1, "", "127.0.0.1"), true, "1:lo[127.0.0.1]"},
		{"same address again", addrMsg(rtmNewAddr, 1, "", "127.0.0.1"), false, "1:lo[127.0.0.1]"},
		{"IPv6 address", addrMsg(rtmNewAddr, 1, "", "::1"), true, "1:lo[127.0.0.1 ::1]"},
		{"address before its link", addrMsg(rtmNewAddr, 5, "", "198.18.0.5"), false, "1:lo[127.0.0.1 ::1]"},
		{"link arrives, keeps it", linkMsg(rtmNewLink, 5, "veth0"), true, "1:lo[127.0.0.1 ::1] 5:veth0[198.18.0.5]"},
		{"point-to-point: local wins over peer", addrMsg(rtmNewAddr, 5, "198.18.0.6", "198.18.0.254"), true, "1:lo[127.0.0.1 ::1] 5:veth0[198.18.0.5 198.18.0.6]"},
		{"rename", linkMsg(rtmNewLink, 5, "wan0"), true, "1:lo[127.0.0.1 ::1] 5:wan0[198.18.0.5 198.18.0.6]"},
		{"address removed", addrMsg(rtmDelAddr, 5, "", "198.18.0.5"), true, "1:lo[127.0.0.1 ::1] 5:wan0[198.18.0.6]"},
		{"unknown address removed", addrMsg(rtmDelAddr, 5, "", "198.18.9.9"), false, "1:lo[127.0.0.1 ::1] 5:wan0[198.18.0.6]"},
		{"link deleted with its addresses", linkMsg(rtmDelLink, 5, "wan0"), true, "1:lo[127.0.0.1 ::1]"},
		{"unknown link deleted", linkMsg(rtmDelLink, 9, "x"), false, "1:lo[127.0.0.1 ::1]"},
		{"truncated link message", netlink.Message{Header: netlink.Header{Type: rtmNewLink}, Data: []byte{0, 0, 1}}, false, "1:lo[127.0.0.1 ::1]"},
		{"truncated address message", netlink.Message{Header: netlink.Header{Type: rtmNewAddr}, Data: []byte{2, 24}}, false, "1:lo[127.0.0.1 ::1]"},
		{"link with index 0", linkMsg(rtmNewLink, 0, "bogus"), false, "1:lo[127.0.0.1 ::1]"},
		{"bad attribute length", netlink.Message{Header: netlink.Header{Type: rtmNewLink}, Data: append(linkMsg(rtmNewLink, 7, "").Data, 0xff, 0, 3, 0)}, false, "1:lo[127.0.0.1 ::1]"},
		{"other message type", netlink.Message{Header: netlink.Header{Type: 24}, Data: make([]byte, 32)}, false, "1:lo[127.0.0.1 ::1]"},
	}
	st := newState()
	for _, s := range steps {
		if got := st.apply(s.msg); got != s.changed {
			t.Errorf("%s: changed = %v, want %v", s.what, got, s.changed)
		}
		if got := describe(NewStatic(st.ifaces())); got != s.want {
			t.Errorf("%s: table = %s, want %s", s.what, got, s.want)
		}
	}
}

// describe formats a table as "index:name[addr addr] ...".
func describe(tb *Table) string {
	var parts []string
	for _, ifc := range tb.Interfaces() {
		addrs := make([]string, len(ifc.Addrs))
		for i, a := range ifc.Addrs {
			addrs[i] = a.String()
		}
		parts = append(parts, strconv.FormatUint(uint64(ifc.Index), 10)+":"+ifc.Name+"["+strings.Join(addrs, " ")+"]")
	}
	return strings.Join(parts, " ")
}

func FuzzDecode(f *testing.F) {
	f.Add(linkMsg(rtmNewLink, 3, "eth0").Data)
	f.Add(addrMsg(rtmNewAddr, 3, "198.18.0.1", "198.18.0.2").Data)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		st := newState()
		for _, typ := range []netlink.HeaderType{rtmNewLink, rtmNewAddr, rtmDelAddr, rtmDelLink} {
			st.apply(netlink.Message{Header: netlink.Header{Type: typ}, Data: b})
		}
		for _, ifc := range st.ifaces() {
			if ifc.Index == 0 || ifc.Name == "" {
				t.Fatalf("decoded an unusable interface %+v", ifc)
			}
		}
	})
}
