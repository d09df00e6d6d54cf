package classbench

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"sync"
)

// profile is the rough shape of a ClassBench seed: how specific addresses
// and ports are and which protocols appear.
type profile struct {
	srcLens, dstLens []wv // prefix length -> weight
	dportExact       float64
	dportRange       float64 // the rest of dport is a wildcard
	sportExact       float64
	protos           []wv // protocol -> weight; -1 is any
}

type wv struct{ v, w int }

var profiles = map[string]profile{
	// ACLs: specific destinations, mostly exact destination ports, TCP.
	"acl1": {
		srcLens:    []wv{{32, 30}, {28, 10}, {24, 20}, {16, 10}, {8, 5}, {0, 25}},
		dstLens:    []wv{{32, 55}, {30, 10}, {24, 20}, {16, 5}, {0, 10}},
		dportExact: 0.60, dportRange: 0.10, sportExact: 0.01,
		protos: []wv{{6, 75}, {17, 12}, {1, 3}, {-1, 10}},
	},
	// Firewalls: many wildcard addresses and protocols.
	"fw1": {
		srcLens:    []wv{{32, 10}, {28, 20}, {24, 15}, {16, 5}, {0, 50}},
		dstLens:    []wv{{32, 25}, {28, 25}, {24, 15}, {16, 5}, {0, 30}},
		dportExact: 0.40, dportRange: 0.12, sportExact: 0.10,
		protos: []wv{{6, 50}, {17, 25}, {1, 5}, {-1, 20}},
	},
	// IP chains: a mix of both.
	"ipc1": {
		srcLens:    []wv{{32, 35}, {28, 10}, {24, 15}, {16, 10}, {0, 30}},
		dstLens:    []wv{{32, 40}, {28, 10}, {24, 20}, {16, 10}, {0, 20}},
		dportExact: 0.50, dportRange: 0.10, sportExact: 0.05,
		protos: []wv{{6, 60}, {17, 25}, {1, 5}, {-1, 10}},
	},
}

func pick(r *rand.Rand, ws []wv) int {
	tot := 0
	for _, w := range ws {
		tot += w.w
	}
	x := r.IntN(tot)
	for _, w := range ws {
		if x < w.w {
			return w.v
		}
		x -= w.w
	}
	return ws[len(ws)-1].v
}

var wellKnown = []uint16{20, 21, 22, 23, 25, 53, 80, 110, 123, 143, 161, 443, 445, 993, 1521, 3306, 5432, 8080}

// Generate makes a synthetic set of n rules shaped like the named ClassBench
// seed, and a trace of headers taken from inside random rules, with the
// expected first match computed by a linear scan. Same arguments, same set.
func Generate(name string, n int, seed uint64) ([]Rule, []Packet, error) {
	pf, ok := profiles[name]
	if !ok {
		return nil, nil, fmt.Errorf("no synthetic profile for set %q", name)
	}
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	// Addresses cluster under a pool of /16s, as real sets do.
	bases := make([]uint32, max(n/50, 4))
	for i := range bases {
		bases[i] = r.Uint32() &^ 0xffff
	}
	prefix := func(lens []wv) netip.Prefix {
		l := pick(r, lens)
		a := bases[r.IntN(len(bases))] | r.Uint32()&0xffff
		return netip.PrefixFrom(addr4(a), l).Masked()
	}
	port := func(exact, rng float64) [2]uint16 {
		x := r.Float64()
		switch {
		case x < exact:
			p := wellKnown[r.IntN(len(wellKnown))]
			if r.IntN(2) == 0 {
				p = uint16(1024 + r.IntN(64000))
			}
			return [2]uint16{p, p}
		case x < exact+rng:
			if r.IntN(2) == 0 {
				return [2]uint16{1024, 65535}
			}
			lo := uint16(r.IntN(60000))
			return [2]uint16{lo, lo + uint16(r.IntN(5000))}
		}
		return [2]uint16{0, 65535}
	}
	rules := make([]Rule, n)
	for i := range rules {
		ru := Rule{Src: prefix(pf.srcLens), Dst: prefix(pf.dstLens),
			DPort: port(pf.dportExact, pf.dportRange), SPort: port(pf.sportExact, 0)}
		// As in the seeds, fields are correlated: a rule wide in both
		// addresses is rare, and then names a service port.
		for ru.Src.Bits() < 16 && ru.Dst.Bits() < 16 && r.IntN(10) != 0 {
			ru.Dst = prefix(pf.dstLens)
		}
		if ru.Src.Bits() < 16 && ru.Dst.Bits() < 16 {
			ru.DPort = port(1, 0)
		}
		if p := pick(r, pf.protos); p < 0 {
			ru.ProtoAny = true
		} else {
			ru.Proto = uint8(p)
		}
		rules[i] = ru
	}
	// Real sets list specific rules before general ones (a general rule
	// first would shadow them), so order by specificity.
	spec := func(r *Rule) int {
		n := r.Src.Bits() + r.Dst.Bits()
		n += 16 - bits.Len16(r.DPort[1]-r.DPort[0]) + 16 - bits.Len16(r.SPort[1]-r.SPort[0])
		if !r.ProtoAny {
			n += 8
		}
		return n
	}
	slices.SortStableFunc(rules, func(a, b Rule) int { return spec(&b) - spec(&a) })

	// Like ClassBench traces: about ten headers per rule, capped.
	trace := make([]Packet, min(10*n, 20000))
	inPrefix := func(p netip.Prefix) netip.Addr {
		host := uint32(1)<<(32-p.Bits()) - 1
		if p.Bits() == 0 {
			host = ^uint32(0)
		}
		return addr4(u32(p.Addr()) | r.Uint32()&host)
	}
	inPorts := func(pr [2]uint16) uint16 { return pr[0] + uint16(r.IntN(int(pr[1]-pr[0])+1)) }
	for i := range trace {
		ru := &rules[r.IntN(n)]
		p := Packet{Src: inPrefix(ru.Src), Dst: inPrefix(ru.Dst), SPort: inPorts(ru.SPort), DPort: inPorts(ru.DPort), Proto: ru.Proto}
		if ru.ProtoAny {
			p.Proto = []uint8{6, 17, 1, 47}[r.IntN(4)]
		}
		trace[i] = p
	}
	// Expected answers: a linear scan, split across the CPUs.
	var wg sync.WaitGroup
	w := runtime.GOMAXPROCS(0)
	for c := range w {
		wg.Go(func() {
			for i := c; i < len(trace); i += w {
				trace[i].Expected = FirstMatch(rules, &trace[i])
			}
		})
	}
	wg.Wait()
	return rules, trace, nil
}
