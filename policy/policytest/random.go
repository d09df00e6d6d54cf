package policytest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
)

// Random configurations and packets for property tests, drawn from small
// pools of labels, addresses, nets and ports so that rules overlap and
// packets land on their edges. (The same generators as the compiled-vs-
// oracle test in package policy, exported for other packages' tests.)

var (
	randSels   = []string{"all()", "a == 'x'", "a == 'y'", "has(b)", "!has(a)", "a in {'x','z'}", "b != 'x'", "a == 'x' || has(b)", "has(projectcalico.org/namespace)", "projectcalico.org/namespace == 'n1'"}
	randV4     = []string{"198.18.0.1", "198.18.0.2", "198.18.1.7", "198.18.1.200", "198.19.0.1", "198.19.4.4", "198.18.255.255", "0.0.0.0", "255.255.255.255"}
	randV6     = []string{"2001:db8::1", "2001:db8::2", "2001:db8:1::7", "2001:db8:1::ffff", "2001:db8:ffff::1", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::ffff:198.18.1.7"}
	randNets   = []string{"198.18.0.0/15", "198.18.1.0/24", "198.18.1.128/25", "198.19.0.1/32", "198.18.0.0/16", "2001:db8::/32", "2001:db8:1::/48", "2001:db8::1/128", "0.0.0.0/1", "128.0.0.0/1"}
	randPorts  = []uint16{0, 1, 22, 53, 67, 68, 80, 443, 1024, 2379, 8080, 65535}
	randProtos = []string{"TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "6", "17", "1", "58", "47"}
)

// Pick returns a random element of s.
func Pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

func randPortList(r *rand.Rand) []policy.Port {
	var out []policy.Port
	for n := r.IntN(3) + 1; n > 0; n-- {
		switch r.IntN(4) {
		case 0:
			out = append(out, policy.Port{Name: Pick(r, []string{"web", "dns", "ssh"})})
		case 1:
			a, b := max(Pick(r, randPorts), 1), max(Pick(r, randPorts), 1)
			out = append(out, policy.Port{Min: min(a, b), Max: max(a, b)})
		default:
			p := max(Pick(r, randPorts), 1)
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
			p := netip.MustParsePrefix(Pick(r, randNets))
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
		e.Selector = Sel(Pick(r, randSels))
	}
	if r.IntN(5) == 0 {
		e.NotSelector = Sel(Pick(r, randSels))
	}
	if r.IntN(8) == 0 {
		e.NamespaceSelector = Sel(Pick(r, []string{"global()", "all()", "a == 'x'", "!has(a)", "a != 'x'"}))
	}
	if r.IntN(12) == 0 {
		e.ServiceAccounts = &policy.ServiceAccountMatch{}
		if r.IntN(2) == 0 {
			e.ServiceAccounts.Selector = Sel(Pick(r, []string{"all()", "!has(a)", "has(a)"}))
		}
		if r.IntN(2) == 0 {
			e.ServiceAccounts.Names = []string{"x", "y"}
		}
	}
	if ports {
		// ports and notPorts are ANDed when both are set.
		switch r.IntN(5) {
		case 0:
			e.Ports = randPortList(r)
		case 1:
			e.NotPorts = randPortList(r)
		case 2:
			e.Ports, e.NotPorts = randPortList(r), randPortList(r)
		}
	}
	return e
}

// RandRule is a random rule: any action, protocol (with ICMP matches),
// nets, selectors and ports.
func RandRule(r *rand.Rand) policy.Rule {
	ru := policy.Rule{Action: Pick(r, []policy.Action{policy.Allow, policy.Allow, policy.Deny, policy.Deny, policy.Pass, policy.Log})}
	if r.IntN(6) == 0 {
		ru.IPVersion = Pick(r, []uint8{4, 6})
	}
	ported := false
	if r.IntN(2) == 0 {
		ru.Protocol = Proto(Pick(r, randProtos))
		switch ru.Protocol.Num {
		case 6, 17, 132:
			ported = true
		case 1, 58:
			if r.IntN(2) == 0 {
				m := &policy.ICMPMatch{Type: Pick(r, []uint8{0, 3, 8, 128, 129}), HasType: true}
				if r.IntN(2) == 0 {
					m.Code, m.HasCode = Pick(r, []uint8{0, 1, 4}), true
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
		ru.NotProtocol = Proto(Pick(r, randProtos))
	}
	ru.Source = randEntity(r, ported)
	ru.Destination = randEntity(r, ported)
	if !ported && r.IntN(8) == 0 {
		if r.IntN(2) == 0 {
			ru.Destination.Ports = []policy.Port{{Name: "web"}}
		} else {
			ru.Source.NotPorts = []policy.Port{{Name: Pick(r, []string{"web", "dns"})}}
		}
	}
	return ru
}

// RandRules is up to max random rules.
func RandRules(r *rand.Rand, max int) []policy.Rule {
	var out []policy.Rule
	for n := r.IntN(max + 1); n > 0; n-- {
		out = append(out, RandRule(r))
	}
	return out
}

// RandLabels is a random label set over keys a and b.
func RandLabels(r *rand.Rand) map[string]string {
	m := map[string]string{}
	if r.IntN(2) == 0 {
		m["a"] = Pick(r, []string{"x", "y", "z"})
	}
	if r.IntN(2) == 0 {
		m["b"] = Pick(r, []string{"x", "y"})
	}
	return m
}

// RandSettings are the default settings, sometimes with failsafe entries
// that have nets, sometimes without the INVALID check.
func RandSettings(r *rand.Rand) policy.Settings {
	s := policy.Settings{NodeName: "gw", InterfacePrefix: []string{"cali"},
		FailsafeInbound: policy.DefaultFailsafeInbound(), FailsafeOutbound: policy.DefaultFailsafeOutbound()}
	if r.IntN(3) == 0 {
		s.FailsafeInbound = []policy.ProtoPort{{Protocol: 6, Port: 22}, {Protocol: 17, Port: 68, Net: netip.MustParsePrefix("198.18.1.0/24")}}
		s.FailsafeOutbound = []policy.ProtoPort{{Protocol: 17, Port: 53}, {Protocol: 6, Port: 443, Net: netip.MustParsePrefix("2001:db8::/32")}}
	}
	s.DisableConntrackInvalidCheck = r.IntN(4) == 0
	return s
}

// RandHostEndpoints is one to four endpoints on eth0..eth2 or "*".
func RandHostEndpoints(r *rand.Rand) []policy.HostEndpoint {
	var out []policy.HostEndpoint
	for i := r.IntN(4) + 1; i > 0; i-- {
		h := policy.HostEndpoint{Name: fmt.Sprintf("h%d", r.IntN(5)), InterfaceName: Pick(r, []string{"eth0", "eth1", "eth2", "*"}), Labels: RandLabels(r)}
		for n := r.IntN(3); n > 0; n-- {
			h.ExpectedIPs = append(h.ExpectedIPs, netip.MustParseAddr(Pick(r, append(append([]string{}, randV4...), randV6...))))
		}
		if r.IntN(2) == 0 {
			h.Ports = []policy.EndpointPort{{Name: "web", Protocol: Pick(r, []uint8{6, 17}), Port: Pick(r, randPorts)}, {Name: "dns", Protocol: 17, Port: 53}}
		}
		if r.IntN(2) == 0 {
			h.Profiles = []string{"p1", "p2"}[r.IntN(2):]
		}
		out = append(out, h)
	}
	return out
}

// RandPolicy is a random policy in tier "", t1 or t2, of any kind.
func RandPolicy(r *rand.Rand) policy.GlobalNetworkPolicy {
	p := policy.GlobalNetworkPolicy{
		Name:     Pick(r, []string{"a", "a-b", "a.b", "b", "c", "d"}) + fmt.Sprint(r.IntN(3)),
		Tier:     Pick(r, []string{"", "t1", "t2"}),
		Selector: Sel(Pick(r, randSels)),
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
	p.Ingress = RandRules(r, 4)
	if !p.PreDNAT {
		p.Egress = RandRules(r, 4)
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
		ns := Pick(r, []string{"", "all()", "!has(a)", "a == 'x'", "b != 'x'"})
		sa := Pick(r, []string{"", "", "!has(b)", "has(b)"})
		sel, err := policy.PolicySelector(Pick(r, randSels), ns, sa)
		if err != nil {
			panic(err)
		}
		p.Selector, p.NamespaceSelector, p.ServiceAccountSelector = sel, ns, sa
	}
	p.Staged = r.IntN(6) == 0
	return p
}

// RandConfig is a random configuration: endpoints, network sets, two
// profiles, a tier and up to seven policies.
func RandConfig(r *rand.Rand) *policy.Config {
	cfg := &policy.Config{Settings: RandSettings(r)}
	cfg.Profiles = []policy.Profile{
		{Name: "p1", LabelsToApply: RandLabels(r), Ingress: RandRules(r, 2), Egress: RandRules(r, 2)},
		{Name: "p2", Ingress: RandRules(r, 2), Egress: RandRules(r, 2)},
		{Name: "kns.n1", LabelsToApply: RandLabels(r)}, // namespace n1's network sets inherit these
	}
	cfg.HostEndpoints = RandHostEndpoints(r)
	for i := r.IntN(3); i > 0; i-- {
		var nets []netip.Prefix
		for n := r.IntN(3) + 1; n > 0; n-- {
			nets = append(nets, netip.MustParsePrefix(Pick(r, randNets)))
		}
		cfg.NetworkSets = append(cfg.NetworkSets, policy.GlobalNetworkSet{Name: fmt.Sprint("ns", i), Namespace: Pick(r, []string{"", "", "n1", "n2"}), Labels: RandLabels(r), Nets: nets})
	}
	cfg.Tiers = []policy.Tier{{Name: "t1", Order: Order(float64(r.IntN(3)) * 1e6), DefaultAction: policy.TierDefault(r.IntN(2))}}
	for i := r.IntN(7) + 1; i > 0; i-- {
		cfg.Policies = append(cfg.Policies, RandPolicy(r))
	}
	return cfg
}

// RandPacket is a random NEW packet of either family: TCP, UDP, SCTP,
// ICMP, ICMPv6 or GRE, sometimes a fragment.
func RandPacket(r *rand.Rand) classify.Packet {
	var p classify.Packet
	if r.IntN(2) == 0 {
		p.Family, p.Src, p.Dst = classify.IPv4, netip.MustParseAddr(Pick(r, randV4)), netip.MustParseAddr(Pick(r, randV4))
	} else {
		p.Family, p.Src, p.Dst = classify.IPv6, netip.MustParseAddr(Pick(r, randV6)), netip.MustParseAddr(Pick(r, randV6))
	}
	p.Proto = Proto(Pick(r, randProtos)).Num
	p.SrcPort, p.DstPort = Pick(r, randPorts), Pick(r, randPorts)
	p.ICMPType, p.ICMPCode = Pick(r, []uint8{0, 3, 8, 128, 129}), Pick(r, []uint8{0, 1, 4})
	if r.IntN(20) == 0 {
		p.Class = classify.Fragment
	}
	return p
}

// RandPacketAnyState is RandPacket in any conntrack state (mostly NEW),
// sometimes malformed: for tests of every stage's whole decision.
func RandPacketAnyState(r *rand.Rand) classify.Packet {
	p := RandPacket(r)
	p.CT = Pick(r, []classify.CTState{classify.CTNew, classify.CTNew, classify.CTNew, classify.CTEstablished, classify.CTInvalid, classify.CTUntracked})
	if r.IntN(20) == 0 {
		p.Class = classify.Malformed
	}
	return p
}
