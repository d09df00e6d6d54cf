package policy_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/oracle"
	. "github.com/nfgate/nfgate/policy/policytest"
)

// Random small configurations and packets: the compiled Program and the
// in-order oracle must give identical decisions at every stage.

var (
	selPool   = []string{"all()", "a == 'x'", "a == 'y'", "has(b)", "!has(a)", "a in {'x','z'}", "b != 'x'", "a == 'x' || has(b)", "has(projectcalico.org/namespace)", "projectcalico.org/namespace == 'n1'"}
	v4Pool    = []string{"198.18.0.1", "198.18.0.2", "198.18.1.7", "198.18.1.200", "198.19.0.1", "198.19.4.4", "198.18.255.255", "0.0.0.0", "255.255.255.255"}
	v6Pool    = []string{"2001:db8::1", "2001:db8::2", "2001:db8:1::7", "2001:db8:1::ffff", "2001:db8:ffff::1", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:198.18.1.7"}
	netPool   = []string{"198.18.0.0/15", "198.18.1.0/24", "198.18.1.128/25", "198.19.0.1/32", "198.18.0.0/16", "2001:db8::/32", "2001:db8:1::/48", "2001:db8::1/128", "0.0.0.0/1", "128.0.0.0/1"}
	portPool  = []uint16{0, 1, 22, 53, 67, 68, 80, 443, 1024, 2379, 8080, 65535}
	protoPool = []string{"TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "6", "17", "1", "58", "47"}
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

func randPorts(r *rand.Rand) []policy.Port {
	var out []policy.Port
	for n := r.IntN(3) + 1; n > 0; n-- {
		switch r.IntN(4) {
		case 0:
			out = append(out, policy.Port{Name: pick(r, []string{"web", "dns", "ssh"})})
		case 1:
			a, b := pick(r, portPool), pick(r, portPool)
			if a > b {
				a, b = b, a
			}
			if a == 0 {
				a = 1
			}
			if b == 0 {
				b = 1
			}
			out = append(out, policy.Port{Min: a, Max: b})
		default:
			p := pick(r, portPool)
			if p == 0 {
				p = 1
			}
			out = append(out, policy.Port{Min: p, Max: p})
		}
	}
	return out
}

func randEntity(r *rand.Rand, ports bool) policy.EntityRule {
	var e policy.EntityRule
	fam := r.IntN(2)
	nets := func() []netip.Prefix {
		var out []netip.Prefix
		for n := r.IntN(3) + 1; n > 0; n-- {
			p := netip.MustParsePrefix(pick(r, netPool))
			if (fam == 0) == p.Addr().Is4() {
				out = append(out, p)
			}
		}
		return out
	}
	if r.IntN(4) == 0 {
		e.Nets = nets()
	}
	if r.IntN(5) == 0 {
		e.NotNets = nets()
	}
	if r.IntN(4) == 0 {
		e.Selector = Sel(pick(r, selPool))
	}
	if r.IntN(5) == 0 {
		e.NotSelector = Sel(pick(r, selPool))
	}
	if r.IntN(8) == 0 {
		e.NamespaceSelector = Sel(pick(r, []string{"global()", "all()", "a == 'x'", "!has(a)", "a != 'x'"}))
	}
	if r.IntN(12) == 0 {
		e.ServiceAccounts = &policy.ServiceAccountMatch{}
		if r.IntN(2) == 0 {
			e.ServiceAccounts.Selector = Sel(pick(r, []string{"all()", "!has(a)", "has(a)"}))
		}
		if r.IntN(2) == 0 {
			e.ServiceAccounts.Names = []string{"x", "y"}
		}
	}
	if ports {
		// ports and notPorts are ANDed when both are set.
		switch r.IntN(5) {
		case 0:
			e.Ports = randPorts(r)
		case 1:
			e.NotPorts = randPorts(r)
		case 2:
			e.Ports, e.NotPorts = randPorts(r), randPorts(r)
		}
	}
	return e
}

func randRule(r *rand.Rand) policy.Rule {
	ru := policy.Rule{Action: pick(r, []policy.Action{policy.Allow, policy.Allow, policy.Deny, policy.Deny, policy.Pass, policy.Log})}
	if r.IntN(6) == 0 {
		ru.IPVersion = pick(r, []uint8{4, 6})
	}
	ported := false
	if r.IntN(2) == 0 {
		ru.Protocol = Proto(pick(r, protoPool))
		switch ru.Protocol.Num {
		case 6, 17, 132:
			ported = true
		case 1, 58:
			if r.IntN(2) == 0 {
				m := &policy.ICMPMatch{Type: pick(r, []uint8{0, 3, 8, 128, 129}), HasType: true}
				if r.IntN(2) == 0 {
					m.Code, m.HasCode = pick(r, []uint8{0, 1, 4}), true
				}
				if r.IntN(6) == 0 {
					m = &policy.ICMPMatch{} // icmp: {}
				}
				if r.IntN(2) == 0 {
					ru.ICMP = m
				} else {
					ru.NotICMP = m
				}
			}
		}
	}
	if r.IntN(6) == 0 {
		ru.NotProtocol = Proto(pick(r, protoPool))
	}
	ru.Source = randEntity(r, ported)
	ru.Destination = randEntity(r, ported)
	if !ported && r.IntN(8) == 0 {
		// named ports are legal without a protocol
		if r.IntN(2) == 0 {
			ru.Destination.Ports = []policy.Port{{Name: "web"}}
		} else {
			ru.Source.NotPorts = []policy.Port{{Name: pick(r, []string{"web", "dns"})}}
		}
	}
	return ru
}

func randRules(r *rand.Rand, max int) []policy.Rule {
	var out []policy.Rule
	for n := r.IntN(max + 1); n > 0; n-- {
		out = append(out, randRule(r))
	}
	return out
}

func randLabels(r *rand.Rand) map[string]string {
	m := map[string]string{}
	if r.IntN(2) == 0 {
		m["a"] = pick(r, []string{"x", "y", "z"})
	}
	if r.IntN(2) == 0 {
		m["b"] = pick(r, []string{"x", "y"})
	}
	return m
}

func randConfig(r *rand.Rand) *policy.Config {
	cfg := &policy.Config{Settings: defaults()}
	if r.IntN(3) == 0 {
		cfg.Settings.FailsafeInbound = []policy.ProtoPort{{Protocol: 6, Port: 22}, {Protocol: 17, Port: 68, Net: netip.MustParsePrefix("198.18.1.0/24")}}
		cfg.Settings.FailsafeOutbound = []policy.ProtoPort{{Protocol: 17, Port: 53}, {Protocol: 6, Port: 443, Net: netip.MustParsePrefix("2001:db8::/32")}}
	}
	cfg.Settings.DisableConntrackInvalidCheck = r.IntN(4) == 0
	cfg.Profiles = []policy.Profile{
		{Name: "p1", LabelsToApply: randLabels(r), Ingress: randRules(r, 2), Egress: randRules(r, 2)},
		{Name: "p2", Ingress: randRules(r, 2), Egress: randRules(r, 2)},
		{Name: "kns.n1", LabelsToApply: randLabels(r)}, // namespace n1's network sets inherit these
	}
	names := []string{"eth0", "eth1", "eth2", "*"}
	for i := r.IntN(4) + 1; i > 0; i-- {
		h := policy.HostEndpoint{Name: fmt.Sprintf("h%d", r.IntN(5)), InterfaceName: pick(r, names), Labels: randLabels(r)}
		for n := r.IntN(3); n > 0; n-- {
			h.ExpectedIPs = append(h.ExpectedIPs, netip.MustParseAddr(pick(r, append(append([]string{}, v4Pool...), v6Pool...))))
		}
		if r.IntN(2) == 0 {
			h.Ports = []policy.EndpointPort{{Name: "web", Protocol: pick(r, []uint8{6, 17}), Port: pick(r, portPool)}, {Name: "dns", Protocol: 17, Port: 53}}
		}
		if r.IntN(2) == 0 {
			h.Profiles = []string{"p1", "p2"}[r.IntN(2):]
		}
		cfg.HostEndpoints = append(cfg.HostEndpoints, h)
	}
	for i := r.IntN(3); i > 0; i-- {
		var nets []netip.Prefix
		for n := r.IntN(3) + 1; n > 0; n-- {
			nets = append(nets, netip.MustParsePrefix(pick(r, netPool)))
		}
		cfg.NetworkSets = append(cfg.NetworkSets, policy.GlobalNetworkSet{Name: fmt.Sprint("ns", i), Namespace: pick(r, []string{"", "", "n1", "n2"}), Labels: randLabels(r), Nets: nets})
	}
	cfg.Tiers = []policy.Tier{{Name: "t1", Order: Order(float64(r.IntN(3)) * 1e6), DefaultAction: policy.TierDefault(r.IntN(2))}}
	for i := r.IntN(7) + 1; i > 0; i-- {
		p := policy.GlobalNetworkPolicy{
			Name:     pick(r, []string{"a", "a-b", "a.b", "b", "c", "d"}) + fmt.Sprint(r.IntN(3)),
			Tier:     pick(r, []string{"", "t1", "t2"}),
			Selector: Sel(pick(r, selPool)),
		}
		if r.IntN(3) > 0 {
			p.Order = Order(float64(r.IntN(3)))
		}
		switch r.IntN(5) {
		case 0:
			p.DoNotTrack, p.ApplyOnForward = true, true
		case 1:
			p.PreDNAT, p.ApplyOnForward = true, true
		case 2:
			p.ApplyOnForward = true
		}
		p.Ingress = randRules(r, 4)
		if !p.PreDNAT {
			p.Egress = randRules(r, 4)
		}
		switch r.IntN(4) {
		case 0:
			p.Types = []policy.PolicyType{policy.Ingress}
		case 1:
			if !p.PreDNAT {
				p.Types = []policy.PolicyType{policy.Egress}
			}
		default:
			p.Types = []policy.PolicyType{policy.Ingress, policy.Egress}
			if p.PreDNAT {
				p.Types = p.Types[:1]
			}
		}
		if r.IntN(8) == 0 {
			// Calico's namespace / service account rewriting of the selector.
			ns := pick(r, []string{"", "all()", "!has(a)", "a == 'x'", "b != 'x'"})
			sa := pick(r, []string{"", "", "!has(b)", "has(b)"})
			sel, err := policy.PolicySelector(pick(r, selPool), ns, sa)
			if err != nil {
				panic(err)
			}
			p.Selector, p.NamespaceSelector, p.ServiceAccountSelector = sel, ns, sa
		}
		p.Staged = r.IntN(6) == 0
		cfg.Policies = append(cfg.Policies, p)
	}
	return cfg
}

func randPacket(r *rand.Rand) classify.Packet {
	var p classify.Packet
	if r.IntN(2) == 0 {
		p.Family, p.Src, p.Dst = classify.IPv4, netip.MustParseAddr(pick(r, v4Pool)), netip.MustParseAddr(pick(r, v4Pool))
	} else {
		p.Family, p.Src, p.Dst = classify.IPv6, netip.MustParseAddr(pick(r, v6Pool)), netip.MustParseAddr(pick(r, v6Pool))
	}
	p.Proto = Proto(pick(r, protoPool)).Num
	p.SrcPort, p.DstPort = pick(r, portPool), pick(r, portPool)
	p.ICMPType, p.ICMPCode = pick(r, []uint8{0, 3, 8, 128, 129}), pick(r, []uint8{0, 1, 4})
	p.CT = pick(r, []classify.CTState{classify.CTNew, classify.CTNew, classify.CTNew, classify.CTEstablished, classify.CTInvalid, classify.CTUntracked})
	switch r.IntN(20) {
	case 0:
		p.Class = classify.Fragment
	case 1:
		p.Class = classify.Malformed
	}
	return p
}

// diffOne compares every stage for one configuration seed and some packets.
func diffOne(t *testing.T, seed uint64, packets int) {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	cfg := randConfig(r)
	prog, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	orc := oracle.New(prog)
	eps := []policy.EndpointID{policy.NoEndpoint}
	for i := range prog.Endpoints() {
		eps = append(eps, policy.EndpointID(i))
	}
	check := func(what string, pkt *classify.Packet, got, want policy.Decision) {
		if got != want {
			t.Fatalf("seed %d: %s %s:\n compiled %+v\n oracle   %+v", seed, what, fmtPkt(*pkt), got, want)
		}
	}
	for i := 0; i < packets; i++ {
		pkt := randPacket(r)
		for _, ep := range eps {
			for _, dir := range []policy.Dir{policy.Ingress, policy.Egress} {
				check(fmt.Sprintf("Untracked(%d,%v)", ep, dir), &pkt, prog.Untracked(ep, dir, &pkt), orc.Untracked(ep, dir, &pkt))
				check(fmt.Sprintf("Local(%d,%v)", ep, dir), &pkt, prog.Local(ep, dir, &pkt), orc.Local(ep, dir, &pkt))
			}
			check(fmt.Sprintf("PreDNAT(%d)", ep), &pkt, prog.PreDNAT(ep, &pkt), orc.PreDNAT(ep, &pkt))
			for _, out := range eps {
				for _, acc := range []bool{false, true} {
					check(fmt.Sprintf("Forward(%d,%d,%v)", ep, out, acc), &pkt, prog.Forward(ep, out, acc, &pkt), orc.Forward(ep, out, acc, &pkt))
				}
			}
		}
	}
}

func TestCompiledVsOracleRandom(t *testing.T) {
	n := 400
	if testing.Short() {
		n = 60
	}
	for _, limit := range []int{4096, 1} { // 1: nearly every rule takes the slow path
		restore := policy.SetMaxRectsPerRule(limit)
		for seed := uint64(0); seed < uint64(n); seed++ {
			diffOne(t, seed, 60)
		}
		restore()
	}
}

func FuzzCompiledVsOracle(f *testing.F) {
	for s := uint64(0); s < 8; s++ {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, seed uint64, slow bool) {
		if slow {
			defer policy.SetMaxRectsPerRule(2)()
		}
		diffOne(t, seed, 40)
	})
}
