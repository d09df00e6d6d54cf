package classbench

import (
	"fmt"
	"net/netip"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/selector"
)

// PolicyRulesPerPolicy is how many Calico rules one generated policy holds:
// Calico allows at most 1024 rules per direction, so a large set becomes
// consecutive policies (order 1, 2, ...) with the same first-match order.
const PolicyRulesPerPolicy = 1000

// Bench endpoint and interface of a ClassBench policy: forwarded traffic
// leaving OutIface is evaluated against the set as applyOnForward egress policy.
const (
	OutIface   = "out0"
	EndpointID = policy.EndpointID(0)
)

// PolicySet is a ClassBench rule set turned into Calico policy.
type PolicySet struct {
	Config *policy.Config
	// Origin maps each Calico rule, in evaluation order, to the 0-based
	// ClassBench rule it came from.
	Origin []int
	// Skipped counts ClassBench rules Calico cannot express (port ranges under
	// a protocol without ports); they are left out.
	Skipped int
}

// ToPolicy turns a ClassBench rule set into Calico host-endpoint policy, as a
// user would write it: one applyOnForward egress GlobalNetworkPolicy per
// PolicyRulesPerPolicy rules on a host endpoint for OutIface, rules in the
// set's priority order, actions mixed (every third rule Deny, the others
// Allow) so first-match order decides. Calico requires a protocol for ports,
// so a rule whose ports are constrained under a wildcard protocol becomes a
// TCP rule and a UDP rule. Wildcard prefixes and port ranges become no
// constraint.
func ToPolicy(name string, rules []Rule) *PolicySet {
	ps := &PolicySet{}
	cfg := &policy.Config{
		Settings: policy.Settings{NodeName: "bench", InterfacePrefix: []string{"cali"}},
		HostEndpoints: []policy.HostEndpoint{{
			Name: "bench." + OutIface, Node: "bench", InterfaceName: OutIface,
			Labels: map[string]string{"role": "classbench"},
		}},
	}
	sel, err := selector.Parse("role == 'classbench'")
	if err != nil {
		panic(err)
	}
	var cur *policy.GlobalNetworkPolicy
	add := func(r policy.Rule, origin int) {
		if cur == nil || len(cur.Egress) == PolicyRulesPerPolicy {
			order := float64(len(cfg.Policies) + 1)
			cfg.Policies = append(cfg.Policies, policy.GlobalNetworkPolicy{
				Name: fmt.Sprintf("classbench-%s-%03d", name, len(cfg.Policies)), Order: &order,
				Selector: sel, Types: []policy.PolicyType{policy.Egress}, ApplyOnForward: true,
			})
			cur = &cfg.Policies[len(cfg.Policies)-1]
		}
		cur.Egress = append(cur.Egress, r)
		ps.Origin = append(ps.Origin, origin)
	}
	for i, cb := range rules {
		r := policy.Rule{Action: policy.Allow}
		if i%3 == 2 {
			r.Action = policy.Deny
		}
		if cb.Src.Bits() > 0 {
			r.Source.Nets = []netip.Prefix{cb.Src}
		}
		if cb.Dst.Bits() > 0 {
			r.Destination.Nets = []netip.Prefix{cb.Dst}
		}
		ports := false
		if cb.SPort != [2]uint16{0, 65535} {
			r.Source.Ports = []policy.Port{{Min: cb.SPort[0], Max: cb.SPort[1]}}
			ports = true
		}
		if cb.DPort != [2]uint16{0, 65535} {
			r.Destination.Ports = []policy.Port{{Min: cb.DPort[0], Max: cb.DPort[1]}}
			ports = true
		}
		switch {
		case cb.ProtoAny && ports:
			tcp, udp := r, r
			tcp.Protocol = &policy.Protocol{Num: classify.ProtoTCP, Named: true}
			udp.Protocol = &policy.Protocol{Num: classify.ProtoUDP, Named: true}
			add(tcp, i)
			add(udp, i)
		case cb.ProtoAny:
			add(r, i)
		case ports && !portProto(cb.Proto):
			ps.Skipped++
		default:
			r.Protocol = &policy.Protocol{Num: cb.Proto}
			add(r, i)
		}
	}
	ps.Config = cfg
	return ps
}

func portProto(p uint8) bool {
	return p == classify.ProtoTCP || p == classify.ProtoUDP || p == classify.ProtoSCTP
}

// PolicyPackets turns trace lines into new forwarded packets.
func PolicyPackets(trace []Packet) []classify.Packet {
	out := make([]classify.Packet, len(trace))
	for i, p := range trace {
		out[i] = classify.Packet{Family: classify.IPv4, Proto: p.Proto, Src: p.Src, Dst: p.Dst,
			SrcPort: p.SPort, DstPort: p.DPort, Class: classify.OK, CT: classify.CTNew}
		if !out[i].HasPorts() {
			out[i].SrcPort, out[i].DstPort = 0, 0
		}
	}
	return out
}
