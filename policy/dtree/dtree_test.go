package dtree

import (
	"encoding/binary"
	"math/rand/v2"
	"strconv"
	"testing"
)

// linear is the reference matcher: the lowest priority >= from among the
// rules matching k, by scanning every rule.
func linear(rules []Rule, k *Key, from int32) int32 {
	best := int32(-1)
	for i := range rules {
		r := &rules[i]
		if r.Priority < from || (best >= 0 && r.Priority >= best) {
			continue
		}
		if matches(r, k) {
			best = r.Priority
		}
	}
	return best
}

func matches(r *Rule, k *Key) bool {
	in := func(v U128, rg [2]U128) bool { return !less(v, rg[0]) && !less(rg[1], v) }
	in32 := func(v uint32, rg [2]uint32) bool { return v >= rg[0] && v <= rg[1] }
	return in(k.Src, r.Src) && in(k.Dst, r.Dst) && in32(k.Proto, r.Proto) &&
		in32(k.SPort, r.SPort) && in32(k.DPort, r.DPort) &&
		in32(k.ICMPType, r.ICMPType) && in32(k.ICMPCode, r.ICMPCode)
}

var (
	anyV4   = [2]U128{{0, 0}, {0, 0xffffffff}}
	anyAddr = [2]U128{{0, 0}, {^uint64(0), ^uint64(0)}}
	anyProt = [2]uint32{0, 255}
	anyPort = [2]uint32{0, NoPort}
	anyICMP = [2]uint32{0, NoICMP}
)

// wild is a rule matching everything.
func wild(prio int32) Rule {
	return Rule{Priority: prio, Src: anyAddr, Dst: anyAddr, Proto: anyProt,
		SPort: anyPort, DPort: anyPort, ICMPType: anyICMP, ICMPCode: anyICMP}
}

func v4(a, b, c, d byte) U128 {
	return U128{0, uint64(a)<<24 | uint64(b)<<16 | uint64(c)<<8 | uint64(d)}
}

func v4net(a, b, c, d byte, bits int) [2]U128 {
	lo := v4(a, b, c, d)
	m := uint64(1)<<(32-bits) - 1
	return [2]U128{{0, lo.Lo &^ m}, {0, lo.Lo | m}}
}

func v6(s string) U128 {
	var b [16]byte
	copy(b[:], s) // tests only need distinct, ordered values
	return U128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func tcp(src, dst U128, dport uint32) Key {
	return Key{Src: src, Dst: dst, Proto: 6, SPort: 40000, DPort: dport, ICMPType: NoICMP, ICMPCode: NoICMP}
}

func TestLookupTable(t *testing.T) {
	r := func(prio int32, mod func(*Rule)) Rule { x := wild(prio); mod(&x); return x }
	web := r(10, func(x *Rule) {
		x.Dst = v4net(198, 18, 0, 0, 24)
		x.Proto = [2]uint32{6, 6}
		x.DPort = [2]uint32{80, 80}
	})
	ssh := r(20, func(x *Rule) {
		x.Src = v4net(198, 18, 1, 0, 24)
		x.Proto = [2]uint32{6, 6}
		x.DPort = [2]uint32{22, 22}
	})
	v4only := r(30, func(x *Rule) { x.Src = anyV4; x.Dst = anyV4 })
	ping := r(40, func(x *Rule) { x.Proto = [2]uint32{1, 1}; x.ICMPType = [2]uint32{8, 8}; x.ICMPCode = [2]uint32{0, 0} })
	ports := r(50, func(x *Rule) { x.SPort = [2]uint32{0, 65535}; x.DPort = [2]uint32{0, 65535} })
	v6net := r(60, func(x *Rule) { x.Dst = [2]U128{{0x20010db800000000, 0}, {0x20010db8ffffffff, ^uint64(0)}} })
	v6span := r(70, func(x *Rule) { x.Src = [2]U128{{1, ^uint64(0) - 5}, {2, 5}} })
	all := r(100, func(*Rule) {})
	set := []Rule{all, v6span, v6net, ports, ping, v4only, ssh, web}

	h := v4(198, 18, 0, 7)
	frag := Key{Src: v4(198, 18, 9, 9), Dst: h, Proto: 6, SPort: NoPort, DPort: NoPort, ICMPType: NoICMP, ICMPCode: NoICMP}
	echo := Key{Src: v4(198, 18, 9, 9), Dst: h, Proto: 1, SPort: NoPort, DPort: NoPort, ICMPType: 8, ICMPCode: 0}
	v6k := Key{Src: U128{5, 5}, Dst: U128{0x20010db800000001, 7}, Proto: 17, SPort: 1, DPort: 2, ICMPType: NoICMP, ICMPCode: NoICMP}
	cases := []struct {
		name  string
		rules []Rule
		key   Key
		from  int32
		want  int32
	}{
		{"empty tree matches nothing", nil, tcp(h, h, 80), 0, -1},
		{"full wildcard matches anything", []Rule{wild(7)}, v6k, 0, 7},
		{"full wildcard, from after it", []Rule{wild(7)}, v6k, 8, -1},
		{"full wildcard, from at it", []Rule{wild(7)}, v6k, 7, 7},
		{"web to its net", set, tcp(v4(203, 0, 113, 1), h, 80), 0, 10},
		{"web, wrong port falls to v4only", set, tcp(v4(203, 0, 113, 1), h, 81), 0, 30},
		{"web, from skips it", set, tcp(v4(203, 0, 113, 1), h, 80), 11, 30},
		{"ssh from its net", set, tcp(v4(198, 18, 1, 3), h, 22), 0, 20},
		{"ssh, from skips web and ssh", set, tcp(v4(198, 18, 1, 3), h, 22), 21, 30},
		{"from past every match", set, tcp(v4(198, 18, 1, 3), h, 22), 101, -1},
		{"negative from is from 0", set, tcp(v4(198, 18, 1, 3), h, 22), -5, 20},
		{"portless key skips port-constrained rules", set, frag, 0, 30},
		{"portless key skips 0-65535 rule", set, frag, 31, 100},
		{"icmp echo", set, echo, 31, 40},
		{"icmp key skips port rules", set, echo, 41, 100},
		{"ported key matches 0-65535 rule", set, tcp(v4(9, 9, 9, 9), h, 1), 31, 50},
		{"ipv6 key misses v4-only rule", set, v6k, 0, 50},
		{"ipv6 prefix in hi word", set, v6k, 51, 60},
		{"ipv6 outside prefix", set, Key{Src: U128{5, 5}, Dst: U128{0x20010db900000000, 0}, Proto: 6, SPort: NoPort, DPort: NoPort, ICMPType: NoICMP, ICMPCode: NoICMP}, 0, 100},
		{"range across the hi/lo boundary, low side", set, Key{Src: U128{1, ^uint64(0)}, Dst: U128{}, SPort: NoPort, DPort: NoPort, ICMPType: NoICMP, ICMPCode: NoICMP}, 61, 70},
		{"range across the hi/lo boundary, high side", set, Key{Src: U128{2, 5}, SPort: NoPort, DPort: NoPort, ICMPType: NoICMP, ICMPCode: NoICMP}, 61, 70},
		{"range across the hi/lo boundary, past it", set, Key{Src: U128{2, 6}, SPort: NoPort, DPort: NoPort, ICMPType: NoICMP, ICMPCode: NoICMP}, 61, 100},
		{"empty range rule is dropped", []Rule{r(1, func(x *Rule) { x.DPort = [2]uint32{9, 8} }), all}, tcp(h, h, 8), 0, 100},
		{"max values match full ranges", []Rule{wild(3)}, Key{Src: U128{^uint64(0), ^uint64(0)}, Dst: U128{^uint64(0), ^uint64(0)}, Proto: 255, SPort: NoPort, DPort: NoPort, ICMPType: NoICMP, ICMPCode: NoICMP}, 0, 3},
		{"only ping rules, echo reply misses", []Rule{ping}, Key{Proto: 1, SPort: NoPort, DPort: NoPort, ICMPType: 0, ICMPCode: 0}, 0, -1},
		{"only ping rules, echo request hits", []Rule{ping}, echo, 0, 40},
		{"out-of-range key values match nothing", []Rule{wild(3)}, Key{Proto: 300, SPort: 70000}, 0, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Build(c.rules).Lookup(&c.key, c.from); got != c.want {
				t.Errorf("Lookup = %d, want %d", got, c.want)
			}
			if got := linear(c.rules, &c.key, c.from); got != c.want {
				t.Errorf("reference = %d, want %d (bad case)", got, c.want)
			}
		})
	}
}

func TestNilTree(t *testing.T) {
	var tr *Tree
	if got := tr.Lookup(&Key{}, 0); got != -1 {
		t.Fatalf("nil tree Lookup = %d, want -1", got)
	}
}

// gen makes random rules and keys from a small pool of values so that rules
// overlap heavily and keys hit rule corners.
type gen struct {
	r     *rand.Rand
	addrs []U128
}

func newGen(seed uint64) *gen {
	g := &gen{r: rand.New(rand.NewPCG(seed, 1))}
	for range 24 {
		if g.r.IntN(4) == 0 {
			g.addrs = append(g.addrs, U128{0x20010db8_00000000 | g.r.Uint64N(4), g.r.Uint64()})
		} else {
			g.addrs = append(g.addrs, U128{0, 0xc6120000 | g.r.Uint64N(1<<17)})
		}
	}
	return g
}

func (g *gen) addrRange() [2]U128 {
	switch g.r.IntN(6) {
	case 0:
		return anyAddr
	case 1:
		return anyV4
	case 2:
		a := g.addrs[g.r.IntN(len(g.addrs))]
		return [2]U128{a, a}
	default:
		a, b := g.addrs[g.r.IntN(len(g.addrs))], g.addrs[g.r.IntN(len(g.addrs))]
		if less(b, a) {
			a, b = b, a
		}
		return [2]U128{a, b}
	}
}

func (g *gen) span(domain []uint32, full [2]uint32) [2]uint32 {
	switch g.r.IntN(4) {
	case 0:
		return full
	case 1:
		v := domain[g.r.IntN(len(domain))]
		return [2]uint32{v, v}
	default:
		a, b := domain[g.r.IntN(len(domain))], domain[g.r.IntN(len(domain))]
		return [2]uint32{min(a, b), max(a, b)}
	}
}

var (
	protoDom = []uint32{0, 1, 6, 17, 58, 255}
	portDom  = []uint32{0, 1, 22, 53, 80, 443, 1024, 8080, 65535, NoPort}
	icmpDom  = []uint32{0, 3, 8, 11, 255, NoICMP}
)

func (g *gen) rules(n int) []Rule {
	rs := make([]Rule, n)
	for i, p := range g.r.Perm(n) {
		rs[i] = Rule{Priority: int32(p * 3), Src: g.addrRange(), Dst: g.addrRange(),
			Proto: g.span(protoDom, anyProt), SPort: g.span(portDom, anyPort), DPort: g.span(portDom, anyPort),
			ICMPType: g.span(icmpDom, anyICMP), ICMPCode: g.span(icmpDom, anyICMP)}
	}
	return rs
}

func (g *gen) addr() U128 {
	a := g.addrs[g.r.IntN(len(g.addrs))]
	switch g.r.IntN(4) {
	case 0:
		a.Lo++
	case 1:
		a.Lo--
	}
	return a
}

func (g *gen) key() Key {
	pick := func(d []uint32) uint32 {
		v := d[g.r.IntN(len(d))]
		if g.r.IntN(5) == 0 {
			v++
		}
		return v
	}
	return Key{Src: g.addr(), Dst: g.addr(), Proto: pick(protoDom), SPort: pick(portDom), DPort: pick(portDom),
		ICMPType: pick(icmpDom), ICMPCode: pick(icmpDom)}
}

func TestRandomDifferential(t *testing.T) {
	for seed := range uint64(30) {
		g := newGen(seed)
		n := []int{1, 3, 10, 50, 200, 1000}[seed%6]
		rules := g.rules(n)
		tr := Build(rules)
		for range 1500 {
			k := g.key()
			from := int32(g.r.IntN(3*n + 2))
			if g.r.IntN(3) == 0 {
				from = 0
			}
			if got, want := tr.Lookup(&k, from), linear(rules, &k, from); got != want {
				t.Fatalf("seed %d, %d rules, key %+v from %d: tree %d, linear %d", seed, n, k, from, got, want)
			}
		}
	}
}

func FuzzLookup(f *testing.F) {
	f.Add(uint64(1), uint16(20), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add(uint64(7), uint16(300), []byte{0xff, 0, 0xff, 0})
	f.Fuzz(func(t *testing.T, seed uint64, n uint16, keyBytes []byte) {
		g := newGen(seed)
		rules := g.rules(int(n % 200))
		tr := Build(rules)
		// Keys come from the fuzzer's bytes, mapped onto the generator's
		// pools so they land on rule corners as well as between them.
		kr := rand.New(rand.NewPCG(seed, uint64(len(keyBytes))))
		for i := 0; i+1 < len(keyBytes) || i == 0; i += 2 {
			k := g.key()
			if len(keyBytes) > i+1 {
				k.DPort = portDom[int(keyBytes[i])%len(portDom)] + uint32(keyBytes[i+1]&1)
				k.Src.Lo += uint64(int8(keyBytes[i+1]) >> 4)
			}
			from := int32(kr.IntN(3*len(rules) + 2))
			if got, want := tr.Lookup(&k, from), linear(rules, &k, from); got != want {
				t.Fatalf("key %+v from %d: tree %d, linear %d", k, from, got, want)
			}
		}
	})
}

func TestNoAllocs(t *testing.T) {
	g := newGen(3)
	tr := Build(g.rules(500))
	keys := make([]Key, 64)
	for i := range keys {
		keys[i] = g.key()
	}
	i := 0
	if a := testing.AllocsPerRun(1000, func() {
		tr.Lookup(&keys[i%len(keys)], int32(i%700))
		i++
	}); a != 0 {
		t.Fatalf("Lookup allocates %v times per call", a)
	}
}

// TestWildcardHeavyBounded checks that sets where most rules are wildcards
// in different fields (the crossing pattern that makes decision trees copy
// rules) stay within a small multiple of the rule count.
func TestWildcardHeavyBounded(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	var rules []Rule
	for i := range 4000 {
		x := wild(int32(i))
		a := v4(198, 18, byte(r.IntN(256)), byte(r.IntN(256)))
		switch i % 4 {
		case 0:
			x.Src = [2]U128{a, a}
		case 1:
			x.Dst = [2]U128{a, a}
		case 2:
			p := uint32(r.IntN(65536))
			x.DPort = [2]uint32{p, p}
		case 3:
			p := uint32(r.IntN(65536))
			x.SPort = [2]uint32{p, p}
		}
		rules = append(rules, x)
	}
	tr := Build(rules)
	if e := tr.entries(); e > 20*len(rules) {
		t.Fatalf("%d leaf entries for %d rules", e, len(rules))
	}
	g := newGen(1)
	for range 2000 {
		k := g.key()
		if got, want := tr.Lookup(&k, 0), linear(rules, &k, 0); got != want {
			t.Fatalf("key %+v: tree %d, linear %d", k, got, want)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		g := newGen(uint64(n))
		tr := Build(g.rules(n))
		keys := make([]Key, 1024)
		for i := range keys {
			keys[i] = g.key()
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tr.Lookup(&keys[i&1023], 0)
				i++
			}
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		rules := newGen(uint64(n)).rules(n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Build(rules)
			}
		})
	}
}

// A wide-tree range ending at the top of the low 64 bits (its next value
// needs the high word) splits the space correctly, also when no other
// source range reaches into the high word.
func TestRangeEndingAtLowWordTop(t *testing.T) {
	top := U128{0, ^uint64(0)}
	rule := func(prio int32, src [2]U128) Rule {
		return Rule{Priority: prio, Src: src, Dst: anyAddr, Proto: anyProt, SPort: anyPort, DPort: anyPort, ICMPType: anyICMP, ICMPCode: anyICMP}
	}
	rules := []Rule{rule(1, [2]U128{{0, 1 << 40}, top})}
	for i := range 8 {
		a := U128{0, 1<<41 + uint64(i)}
		rules = append(rules, rule(int32(10+i), [2]U128{a, a}))
	}
	tr := Build(rules)
	for _, src := range []U128{{0, 1 << 40}, {0, 1<<41 + 3}, top, {1, 0}, {2, 0}, {0, 5}} {
		k := Key{Src: src, Dst: U128{0x20010db8 << 32, 1}, Proto: 6, SPort: 1, DPort: 1, ICMPType: NoICMP, ICMPCode: NoICMP}
		if got, want := tr.Lookup(&k, 0), linear(rules, &k, 0); got != want {
			t.Errorf("src %v: tree %d, linear %d", src, got, want)
		}
	}
}
