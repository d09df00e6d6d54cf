package classbench

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/nfgate/nfgate/policy/dtree"
)

func TestParseRules(t *testing.T) {
	cases := []struct {
		line string
		want Rule
	}{
		{"@175.77.88.155/32 119.106.158.230/32 0 : 65535 6888 : 6888 0x06/0xFF",
			Rule{Src: pfx("175.77.88.155/32"), Dst: pfx("119.106.158.230/32"), SPort: [2]uint16{0, 65535}, DPort: [2]uint16{6888, 6888}, Proto: 6}},
		{"@211.65.221.101/32\t72.126.125.96/32\t0 : 65535\t1521 : 1521\t0x06/0xFF\t0x0000/0x0200",
			Rule{Src: pfx("211.65.221.101/32"), Dst: pfx("72.126.125.96/32"), SPort: [2]uint16{0, 65535}, DPort: [2]uint16{1521, 1521}, Proto: 6}},
		{"@0.0.0.0/0 10.1.2.3/8 1024:65535 53 :53 0x00/0x00",
			Rule{Src: pfx("0.0.0.0/0"), Dst: pfx("10.0.0.0/8"), SPort: [2]uint16{1024, 65535}, DPort: [2]uint16{53, 53}, ProtoAny: true}},
	}
	for _, c := range cases {
		rs, err := ParseRules(strings.NewReader(c.line+"\n"), "t")
		if err != nil {
			t.Fatalf("%q: %v", c.line, err)
		}
		if len(rs) != 1 || rs[0] != c.want {
			t.Errorf("%q:\n got %+v\nwant %+v", c.line, rs, c.want)
		}
	}
}

func TestParseRulesErrors(t *testing.T) {
	cases := []struct{ text, want string }{
		{"@1.2.3.4/32 5.6.7.8/32 0 : 65535 80 : 80 0x06/0xFF\n1.2.3.4/32 5.6.7.8/32 0 : 65535 80 : 80 0x06/0xFF", "f:2: rule does not start with '@'"},
		{"@1.2.3.4/33 5.6.7.8/32 0 : 65535 80 : 80 0x06/0xFF", "f:1: source:"},
		{"@1.2.3.4/32 5.6.7.8/32 0 : 65535 90 : 80 0x06/0xFF", "f:1: destination port: empty range"},
		{"@1.2.3.4/32 5.6.7.8/32 0 : 70000 80 : 80 0x06/0xFF", "f:1: source port:"},
		{"@1.2.3.4/32 5.6.7.8/32 0 : 65535 80 : 80 0x06/0x0F", "f:1: protocol \"0x06/0x0F\": mask must be"},
		{"@1.2.3.4/32 5.6.7.8/32 0 : 65535 80 : 80", "f:1: want 9 or 10 fields"},
		{"@::1/128 5.6.7.8/32 0 : 65535 80 : 80 0x06/0xFF", "not IPv4"},
	}
	for _, c := range cases {
		_, err := ParseRules(strings.NewReader(c.text), "f")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want it to contain %q", c.text, err, c.want)
		}
	}
}

func TestParseTrace(t *testing.T) {
	ps, err := ParseTrace(strings.NewReader("0 564723993 0 67 6 4459\n4294967295\t3142972489\t65535\t25\t17\t6412\t99\n"), "t")
	if err != nil {
		t.Fatal(err)
	}
	want := []Packet{
		{Src: netip.MustParseAddr("0.0.0.0"), Dst: addr4(564723993), SPort: 0, DPort: 67, Proto: 6, Expected: 4459},
		{Src: netip.MustParseAddr("255.255.255.255"), Dst: addr4(3142972489), SPort: 65535, DPort: 25, Proto: 17, Expected: 6412},
	}
	if len(ps) != 2 || ps[0] != want[0] || ps[1] != want[1] {
		t.Fatalf("got %+v, want %+v", ps, want)
	}
	for _, bad := range []string{"1 2 3 4 5", "1 2 3 70000 6 1", "4294967296 2 3 4 6 1", "1 2 3 4 300 1"} {
		if _, err := ParseTrace(strings.NewReader("0 0 0 0 6 1\n"+bad), "t"); err == nil || !strings.HasPrefix(err.Error(), "t:2: ") {
			t.Errorf("%q: error %v, want one for t:2", bad, err)
		}
	}
}

func TestToDTreeMatchesLikeTheRules(t *testing.T) {
	rules, trace, err := Generate("fw1", 300, 7)
	if err != nil {
		t.Fatal(err)
	}
	drules := ToDTree(rules)
	lin := NewLinear(rules)
	for i := range trace {
		k := Key(&trace[i])
		want := FirstMatch(rules, &trace[i])
		if got := firstDTree(drules, &k) + 1; got != want || want != trace[i].Expected {
			t.Fatalf("packet %d: dtree rules say %d, classbench rules %d, trace %d", i, got, want, trace[i].Expected)
		}
		if got := int(lin.Lookup(&k)) + 1; got != want {
			t.Fatalf("packet %d: Linear says %d, want %d", i, got, want)
		}
	}
}

// TestTreeAgreesWithTraces checks the classifier against every 1k set's
// trace: the real files when present, synthetic sets otherwise.
func TestTreeAgreesWithTraces(t *testing.T) {
	for _, name := range Names {
		set, err := Open(name, "1k")
		if err != nil {
			t.Fatal(err)
		}
		drules := ToDTree(set.Rules)
		tree := dtree.Build(drules)
		for i := range set.Trace {
			k := Key(&set.Trace[i])
			got := tree.Lookup(&k, 0)
			if int(got)+1 != set.Trace[i].Expected {
				t.Fatalf("%s (%s) packet %d: tree %d, trace expects %d", name, set.Source, i+1, got+1, set.Trace[i].Expected)
			}
			// Continuing after the first match (Calico's Pass) finds the
			// next one.
			if i%4 == 0 && got >= 0 {
				if next, want := tree.Lookup(&k, got+1), firstDTreeFrom(drules, &k, got+1); int(next) != want {
					t.Fatalf("%s packet %d from %d: tree %d, linear %d", name, i+1, got+1, next, want)
				}
			}
		}
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	a, ta, _ := Generate("acl1", 200, 3)
	b, tb, _ := Generate("acl1", 200, 3)
	if len(a) != 200 || len(ta) != 2000 {
		t.Fatalf("got %d rules, %d packets", len(a), len(ta))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("rule %d differs", i)
		}
	}
	for i := range ta {
		if ta[i] != tb[i] {
			t.Fatalf("packet %d differs", i)
		}
	}
	if _, _, err := Generate("nope", 10, 1); err == nil {
		t.Fatal("unknown profile accepted")
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s).Masked() }

// firstDTree is the index of the first dtree rule matching k, or -1.
func firstDTree(rs []dtree.Rule, k *dtree.Key) int { return firstDTreeFrom(rs, k, 0) }

// firstDTreeFrom is firstDTree among rules from index from on.
func firstDTreeFrom(rs []dtree.Rule, k *dtree.Key, from int32) int {
	in := func(v dtree.U128, r [2]dtree.U128) bool {
		return (v.Hi > r[0].Hi || v.Hi == r[0].Hi && v.Lo >= r[0].Lo) && (v.Hi < r[1].Hi || v.Hi == r[1].Hi && v.Lo <= r[1].Lo)
	}
	in32 := func(v uint32, r [2]uint32) bool { return v >= r[0] && v <= r[1] }
	for i, r := range rs[from:] {
		i += int(from)
		if in(k.Src, r.Src) && in(k.Dst, r.Dst) && in32(k.Proto, r.Proto) && in32(k.SPort, r.SPort) &&
			in32(k.DPort, r.DPort) && in32(k.ICMPType, r.ICMPType) && in32(k.ICMPCode, r.ICMPCode) {
			return i
		}
	}
	return -1
}
