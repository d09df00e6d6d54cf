package policy_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/dtree"
	"github.com/nfgate/nfgate/policy/oracle"
	. "github.com/nfgate/nfgate/policy/policytest"
)

// oracleEval is Program.Eval on the in-order oracle.
func oracleEval(o *oracle.Oracle, c policy.StageCall, pkt classify.Packet) policy.Decision {
	pkt.CT = c.CT
	switch c.Stage {
	case policy.StageUntracked:
		return o.Untracked(c.Endpoint, c.Dir, &pkt)
	case policy.StagePreDNAT:
		return o.PreDNAT(c.Endpoint, &pkt)
	case policy.StageInput:
		return o.Local(c.Endpoint, policy.Ingress, &pkt)
	case policy.StageOutput:
		return o.Local(c.Endpoint, policy.Egress, &pkt)
	default:
		return o.Forward(c.In, c.Out, c.Accepted, &pkt)
	}
}

func randCall(r *rand.Rand, eps []policy.EndpointID) policy.StageCall {
	c := policy.StageCall{Stage: policy.Stage(r.IntN(5)), Dir: Pick(r, []policy.Dir{policy.Ingress, policy.Egress}),
		Endpoint: Pick(r, eps), In: Pick(r, eps), Out: Pick(r, eps), Accepted: r.IntN(4) == 0,
		CT: Pick(r, []classify.CTState{classify.CTNew, classify.CTNew, classify.CTNew, classify.CTEstablished, classify.CTRelated, classify.CTInvalid, classify.CTUntracked})}
	return c
}

// randU128 is a random value of [lo, hi].
func randU128(r *rand.Rand, lo, hi dtree.U128) dtree.U128 {
	d := dtree.U128{Hi: hi.Hi - lo.Hi, Lo: hi.Lo - lo.Lo}
	if hi.Lo < lo.Lo {
		d.Hi--
	}
	var off dtree.U128
	switch {
	case d.Hi == 0 && d.Lo == ^uint64(0):
		off.Lo = r.Uint64()
	case d.Hi == 0:
		off.Lo = r.Uint64N(d.Lo + 1)
	case d.Hi == ^uint64(0):
		off = dtree.U128{Hi: r.Uint64(), Lo: r.Uint64()}
	default:
		off = dtree.U128{Hi: r.Uint64N(d.Hi + 1), Lo: r.Uint64()}
		if off.Hi == d.Hi && off.Lo > d.Lo {
			off.Lo = d.Lo
		}
	}
	v := dtree.U128{Hi: lo.Hi + off.Hi, Lo: lo.Lo + off.Lo}
	if v.Lo < lo.Lo {
		v.Hi++
	}
	return v
}

// sampleBox returns a key of b (not empty), biased towards its corners and
// towards near's coordinates when they are in b.
func sampleBox(r *rand.Rand, b *dtree.Box, near *dtree.Key) dtree.Key {
	var k dtree.Key
	set := func(f int, v dtree.U128) {
		switch f {
		case 0:
			k.Src = v
		case 1:
			k.Dst = v
		case 2:
			k.Proto = uint32(v.Lo)
		case 3:
			k.SPort = uint32(v.Lo)
		case 4:
			k.DPort = uint32(v.Lo)
		case 5:
			k.ICMPType = uint32(v.Lo)
		default:
			k.ICMPCode = uint32(v.Lo)
		}
	}
	for f := range dtree.NumFields {
		lo, hi := b.Field(f)
		v := randU128(r, lo, hi)
		switch r.IntN(5) {
		case 0:
			v = lo
		case 1:
			v = hi
		case 2:
			if n := dtree.KeyField(near, f); !(n.Hi < lo.Hi || n.Hi == lo.Hi && n.Lo < lo.Lo) && !(hi.Hi < n.Hi || hi.Hi == n.Hi && hi.Lo < n.Lo) {
				v = n
			}
		}
		set(f, v)
	}
	return k
}

// samplePackets returns up to n real packets (PacketSpace) of box b.
func samplePackets(r *rand.Rand, b policy.Box, near *dtree.Key, ct classify.CTState, n int) []classify.Packet {
	var parts []dtree.Box
	for _, s := range policy.PacketSpace(b.Fam) {
		x := b.Box
		if x.Intersect(&s.Box) {
			parts = append(parts, x)
		}
	}
	var out []classify.Packet
	for i := 0; i < n && len(parts) > 0; i++ {
		x := parts[r.IntN(len(parts))]
		k := sampleBox(r, &x, near)
		out = append(out, policy.PacketAt(b.Fam, &k, ct))
	}
	return out
}

// regionOne checks RegionAt for one random configuration: the decision is
// the stage method's, the box holds the packet, and every packet sampled
// in the box gets that decision from the stage method and the oracle.
func regionOne(t *testing.T, seed uint64, calls, samples int) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	cfg := RandConfig(r)
	prog, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	orc := oracle.New(prog)
	eps := []policy.EndpointID{policy.NoEndpoint}
	for i := range prog.Endpoints() {
		eps = append(eps, policy.EndpointID(i))
	}
	for range calls {
		c := randCall(r, eps)
		pkt := RandPacketAnyState(r)
		fam, k, ok := policy.KeyOf(&pkt)
		if !ok {
			continue
		}
		d, b := prog.RegionAt(c, fam, &k)
		if want := prog.Eval(c, &pkt); d != want {
			t.Fatalf("seed %d: %+v %s: RegionAt %+v, stage method %+v", seed, c, fmtPkt(pkt), d, want)
		}
		if !b.Contains(&k) || b.Fam != fam {
			t.Fatalf("seed %d: %+v %s: box %s does not hold the packet", seed, c, fmtPkt(pkt), b)
		}
		for _, s := range samplePackets(r, b, &k, c.CT, samples) {
			if got := prog.Eval(c, &s); got != d {
				t.Fatalf("seed %d: %+v: %s decides %+v,\nbut %s in its box %s decides %+v", seed, c, fmtPkt(pkt), d, fmtPkt(s), b, got)
			}
			if got := oracleEval(orc, c, s); got != d {
				t.Fatalf("seed %d: %+v: %s decides %+v,\nbut the oracle says %+v for %s in its box %s", seed, c, fmtPkt(pkt), d, got, fmtPkt(s), b)
			}
		}
	}
}

func TestRegionAtRandom(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 60
	}
	for _, limit := range []int{4096, 1} { // 1: nearly every rule takes the slow matcher
		restore := policy.SetMaxRectsPerRule(limit)
		for seed := uint64(0); seed < uint64(n); seed++ {
			regionOne(t, seed, 60, 30)
		}
		restore()
	}
}

func FuzzRegionAt(f *testing.F) {
	for s := uint64(0); s < 8; s++ {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, seed uint64, slow bool) {
		if slow {
			defer policy.SetMaxRectsPerRule(2)()
		}
		regionOne(t, seed, 40, 20)
	})
}

// TestRegionAtTable: boxes of hand-written policies are the regions one
// expects.
func TestRegionAtTable(t *testing.T) {
	cfg := &policy.Config{Settings: defaults()}
	cfg.Settings.FailsafeInbound = []policy.ProtoPort{{Protocol: 6, Port: 22}}
	cfg.HostEndpoints = []policy.HostEndpoint{{Name: "eth0", InterfaceName: "eth0", Labels: Labels("role=gw")}}
	cfg.Policies = []policy.GlobalNetworkPolicy{{Name: "web", Selector: Sel("role == 'gw'"), Types: []policy.PolicyType{policy.Ingress},
		Ingress: []policy.Rule{
			Deny(P("TCP"), SrcNets("198.18.7.0/24")),
			Allow(P("TCP"), DstPorts("80", "443")),
		}}}
	prog, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in := policy.StageCall{Stage: policy.StageInput, Endpoint: 0, CT: classify.CTNew}
	cases := []struct {
		name string
		pkt  classify.Packet
		want string // verdict and box
	}{
		{"web from anywhere but the denied net", TCP("198.18.1.1", 40000, "198.18.0.1", 80),
			"ACCEPT src 0.0.0.0-198.18.6.255 proto tcp dport 80"},
		{"denied net", TCP("198.18.7.9", 40000, "198.18.0.1", 80), "DROP src 198.18.7.0/24 proto tcp dport 23-65535 or none"},
		{"failsafe beats the deny", TCP("198.18.7.9", 40000, "198.18.0.1", 22), "ACCEPT proto tcp dport 22"},
		{"other ports: end of tier", TCP("198.18.1.1", 40000, "198.18.0.1", 8080), "DROP src 0.0.0.0-198.18.6.255 dport 444-65535 or none"},
		{"udp: end of tier", UDP("198.18.1.1", 40000, "198.18.0.1", 80), "DROP proto 7-255 dport 23-65535 or none"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fam, k, _ := policy.KeyOf(&c.pkt)
			d, b := prog.RegionAt(in, fam, &k)
			if got := fmt.Sprintf("%s %s", d.Verdict, b); got != c.want {
				t.Errorf("got  %s\nwant %s", got, c.want)
			}
		})
	}
}

func BenchmarkRegionAt(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		cfg := bigConfig(n, 1)
		prog, err := policy.Compile(cfg)
		if err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		pkts := make([]classify.Packet, 1024)
		for i := range pkts {
			pkts[i] = UDP(fmt.Sprintf("198.19.%d.%d", r.IntN(256), r.IntN(256)), uint16(r.IntN(65536)),
				fmt.Sprintf("198.18.%d.%d", r.IntN(256), r.IntN(256)), uint16(10000+r.IntN(50000)))
		}
		c := policy.StageCall{Stage: policy.StageForward, In: policy.NoEndpoint, Out: 0, CT: classify.CTNew}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				fam, k, _ := policy.KeyOf(&pkts[i&1023])
				prog.RegionAt(c, fam, &k)
				i++
			}
		})
	}
}

// bigConfig is bench/netbench's policy shape at n rules: one endpoint,
// applyOnForward egress policies of TCP/UDP rules with source and
// destination prefixes and destination ports, 80% Allow.
func bigConfig(n int, seed uint64) *policy.Config {
	r := rand.New(rand.NewPCG(seed, 0x6e6574))
	cfg := &policy.Config{Settings: defaults()}
	cfg.HostEndpoints = []policy.HostEndpoint{{Name: "gw.srv0", InterfaceName: "srv0", Labels: Labels("role=servers"), ExpectedIPs: Addrs("198.18.1.1")}}
	prefix := func(base uint32, bits int) string {
		l := bits + r.IntN(33-bits)
		v := base | r.Uint32()&(1<<(32-bits)-1)
		v &^= 1<<(32-l) - 1
		if l == 0 {
			v = 0
		}
		return fmt.Sprintf("%d.%d.%d.%d/%d", v>>24, v>>16&255, v>>8&255, v&255, l)
	}
	var rules []policy.Rule
	for range n {
		ru := policy.Rule{Action: policy.Allow, Protocol: Proto(Pick(r, []string{"TCP", "UDP"}))}
		if r.IntN(5) == 0 {
			ru.Action = policy.Deny
		}
		if r.IntN(5) < 3 {
			ru.Source.Nets = Nets(prefix(198<<24|19<<16, 16))
		}
		if r.IntN(2) == 0 {
			ru.Destination.Nets = Nets(prefix(198<<24|18<<16, 15))
		}
		for k := 1 + r.IntN(2)*r.IntN(3); k > 0; k-- {
			lo := uint16(10000 + r.IntN(50000))
			hi := lo
			if r.IntN(10) < 3 {
				hi = lo + uint16(r.IntN(2000))
			}
			ru.Destination.Ports = append(ru.Destination.Ports, policy.Port{Min: lo, Max: hi})
		}
		rules = append(rules, ru)
	}
	for p := 0; p*1000 < len(rules); p++ {
		cfg.Policies = append(cfg.Policies, policy.GlobalNetworkPolicy{Name: fmt.Sprintf("bench-%03d", p), Order: Order(float64(p + 1)),
			Selector: Sel("role == 'servers'"), ApplyOnForward: true, Types: []policy.PolicyType{policy.Egress},
			Egress: rules[p*1000 : min(len(rules), (p+1)*1000)]})
	}
	return cfg
}
