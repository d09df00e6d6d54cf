package netbench

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// The benchmark's ports. Early rules are the policy's first two; deep rules
// its last two, so traffic to a deep port is compared against every filler
// rule first. Nothing in the policy matches DeniedPort (default deny).
const (
	PortUDPEarly   = 7000 // UDP new-flow generator, early rule
	PortUDPDeep    = 7001 // UDP new-flow generator, deep rule
	PortEchoEarly  = 7100 // UDP echo (latency), early rule
	PortEchoDeep   = 7101 // UDP echo (latency), deep rule
	PortTCPEarly   = 7000 // TCP accept/close server, early rule
	PortTCPDeep    = 7001 // TCP accept/close server, deep rule
	PortTCPStall   = 7003 // TCP echo (stall probe during reload), deep rule
	PortIperf      = 5201 // iperf3, deep rule
	PortDenied     = 9999 // UDP flood, denied by default
	maxRulesPerPol = 1000 // Calico allows 1024 rules per direction
)

// Rule is one generated Calico rule (egress, applyOnForward).
type Rule struct {
	Allow bool
	Proto string // "TCP" or "UDP"
	Src   netip.Prefix
	Dst   netip.Prefix
	Ports [][2]uint16 // destination ports or ranges; empty: any
}

// Policy generates n rules: two early rules that admit the benchmark's
// early ports, n-4 filler rules that never match the benchmark's traffic
// (destination ports 10000-60000), and two deep rules admitting the deep
// ports. Fillers vary like ClassBench rules: wildcard or prefix sources
// (198.19.0.0/16, never the client), wildcard or prefix destinations
// (anywhere in 198.18.0.0/15), single ports, ranges and short lists, 80%
// Allow. The same seed gives the same rules.
func Policy(n int, seed uint64) []Rule {
	if n < 4 {
		n = 4
	}
	r := rand.New(rand.NewPCG(seed, 0x6e6574))
	rules := []Rule{
		{Allow: true, Proto: "UDP", Ports: [][2]uint16{{PortUDPEarly, PortUDPEarly}, {PortEchoEarly, PortEchoEarly}}},
		{Allow: true, Proto: "TCP", Ports: [][2]uint16{{PortTCPEarly, PortTCPEarly}}},
	}
	for i := 0; i < n-4; i++ {
		f := Rule{Allow: r.IntN(5) != 0, Proto: "UDP"}
		if r.IntN(2) == 0 {
			f.Proto = "TCP"
		}
		if r.IntN(5) < 3 {
			f.Src = randPrefix(r, netip.MustParsePrefix("198.19.0.0/16"))
		}
		if r.IntN(2) == 0 {
			f.Dst = randPrefix(r, netip.MustParsePrefix("198.18.0.0/15"))
		}
		for k := 1 + boolInt(r.IntN(5) == 0)*(1+r.IntN(2)); k > 0; k-- {
			lo := uint16(10000 + r.IntN(50000))
			hi := lo
			if r.IntN(10) < 3 {
				hi = lo + uint16(r.IntN(2000))
			}
			f.Ports = append(f.Ports, [2]uint16{lo, hi})
		}
		rules = append(rules, f)
	}
	rules = append(rules,
		Rule{Allow: true, Proto: "UDP", Ports: [][2]uint16{{PortUDPDeep, PortUDPDeep}, {PortEchoDeep, PortEchoDeep}}},
		Rule{Allow: true, Proto: "TCP", Ports: [][2]uint16{{PortTCPDeep, PortTCPDeep}, {PortTCPStall, PortTCPStall}, {PortIperf, PortIperf}}},
	)
	return rules
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// randPrefix returns a random prefix of length len(within)..32 inside within.
func randPrefix(r *rand.Rand, within netip.Prefix) netip.Prefix {
	bits := within.Bits() + r.IntN(33-within.Bits())
	a := within.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= r.Uint32() & (1<<(32-within.Bits()) - 1)
	ip := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	return netip.PrefixFrom(ip, bits).Masked()
}

// Topology names the generated configuration needs.
type Topology struct {
	Node      string // the gateway's node name
	ServerIf  string // the gateway's interface towards the server (the endpoint)
	ServerIP  string // the gateway's address on ServerIf
	Queues    int    // engine.queues (0: --queue-balance decides)
	TraceFile string // "" for none
}

// NfgateTOML renders rules as an nfgate configuration: one host endpoint
// on the gateway's server-side interface and applyOnForward egress
// policies of at most 1000 rules each, in order (Calico's limit is 1024
// per direction), ending in the default tier's default deny.
func NfgateTOML(rules []Rule, t Topology) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[gateway]\nnodeName = %q\n\n", t.Node)
	b.WriteString("[engine]\n")
	if t.Queues > 0 {
		fmt.Fprintf(&b, "queues = %d\n", t.Queues)
	}
	if t.TraceFile != "" {
		fmt.Fprintf(&b, "traceFile = %q\n", t.TraceFile)
	}
	fmt.Fprintf(&b, "\n[[hostEndpoint]]\nname = \"%s.%s\"\nlabels = { role = \"servers\" }\ninterfaceName = %q\nnode = %q\nexpectedIPs = [%q]\n",
		t.Node, t.ServerIf, t.ServerIf, t.Node, t.ServerIP)
	for p := 0; p*maxRulesPerPol < len(rules); p++ {
		end := min((p+1)*maxRulesPerPol, len(rules))
		fmt.Fprintf(&b, "\n[[globalNetworkPolicy]]\nname = \"bench-%03d\"\norder = %d\nselector = \"role == 'servers'\"\napplyOnForward = true\ntypes = [\"Egress\"]\n", p, p+1)
		for _, r := range rules[p*maxRulesPerPol : end] {
			act := "Deny"
			if r.Allow {
				act = "Allow"
			}
			fmt.Fprintf(&b, "[[globalNetworkPolicy.egress]]\naction = %q\nprotocol = %q\n", act, r.Proto)
			if r.Src.IsValid() {
				fmt.Fprintf(&b, "source = { nets = [%q] }\n", r.Src)
			}
			var dst []string
			if r.Dst.IsValid() {
				dst = append(dst, fmt.Sprintf("nets = [%q]", r.Dst))
			}
			if len(r.Ports) > 0 {
				var ps []string
				for _, pr := range r.Ports {
					if pr[0] == pr[1] {
						ps = append(ps, fmt.Sprint(pr[0]))
					} else {
						ps = append(ps, fmt.Sprintf("%q", fmt.Sprintf("%d:%d", pr[0], pr[1])))
					}
				}
				dst = append(dst, "ports = ["+strings.Join(ps, ", ")+"]")
			}
			if len(dst) > 0 {
				fmt.Fprintf(&b, "destination = { %s }\n", strings.Join(dst, ", "))
			}
		}
	}
	return b.String()
}

// WriteConfig writes an nfgate configuration for rules into dir and returns
// the main file's path: with yaml, a main TOML file ([gateway], [engine],
// the host endpoint) including the policies as Calico YAML manifests
// (policies.yaml), the way a Calico user brings an exported policy; else
// everything in one native TOML file.
func WriteConfig(dir string, rules []Rule, t Topology, yaml bool) (string, error) {
	main := filepath.Join(dir, "nfgate.toml")
	text := NfgateTOML(rules, t)
	if yaml {
		if err := os.WriteFile(filepath.Join(dir, "policies.yaml"), []byte(CalicoYAML(rules)), 0o644); err != nil {
			return "", err
		}
		text = "include = [\"policies.yaml\"]\n" + NfgateTOML(nil, t)
	}
	return main, os.WriteFile(main, []byte(text), 0o644)
}

// CalicoYAML renders rules as Calico v3 GlobalNetworkPolicy manifests (what
// `calicoctl get -o yaml` holds), in the same policies and order as NfgateTOML.
func CalicoYAML(rules []Rule) string {
	var b strings.Builder
	for p := 0; p*maxRulesPerPol < len(rules); p++ {
		end := min((p+1)*maxRulesPerPol, len(rules))
		fmt.Fprintf(&b, "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: bench-%03d\nspec:\n  order: %d\n  selector: role == 'servers'\n  applyOnForward: true\n  types: [Egress]\n  egress:\n", p, p+1)
		for _, r := range rules[p*maxRulesPerPol : end] {
			act := "Deny"
			if r.Allow {
				act = "Allow"
			}
			fmt.Fprintf(&b, "  - action: %s\n    protocol: %s\n", act, r.Proto)
			if r.Src.IsValid() {
				fmt.Fprintf(&b, "    source: {nets: [%s]}\n", r.Src)
			}
			var dst []string
			if r.Dst.IsValid() {
				dst = append(dst, fmt.Sprintf("nets: [%s]", r.Dst))
			}
			if len(r.Ports) > 0 {
				var ps []string
				for _, pr := range r.Ports {
					if pr[0] == pr[1] {
						ps = append(ps, fmt.Sprint(pr[0]))
					} else {
						ps = append(ps, fmt.Sprintf("'%d:%d'", pr[0], pr[1]))
					}
				}
				dst = append(dst, "ports: ["+strings.Join(ps, ", ")+"]")
			}
			if len(dst) > 0 {
				fmt.Fprintf(&b, "    destination: {%s}\n", strings.Join(dst, ", "))
			}
		}
	}
	return b.String()
}

// IptablesLinear renders rules as what Calico's iptables dataplane
// amounts to for one endpoint, flattened: in FORWARD, established and
// related flows first, then one rule per Calico rule in order for traffic
// leaving outIf, then the default deny. The result is iptables-restore input
// for the filter table.
func IptablesLinear(rules []Rule, outIf string) string {
	var b strings.Builder
	b.WriteString("*filter\n:FORWARD ACCEPT [0:0]\n")
	b.WriteString("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n")
	for _, r := range rules {
		fmt.Fprintf(&b, "-A FORWARD -o %s -p %s", outIf, strings.ToLower(r.Proto))
		if r.Src.IsValid() {
			fmt.Fprintf(&b, " -s %s", r.Src)
		}
		if r.Dst.IsValid() {
			fmt.Fprintf(&b, " -d %s", r.Dst)
		}
		switch {
		case len(r.Ports) == 1:
			fmt.Fprintf(&b, " --dport %s", portSpec(r.Ports[0]))
		case len(r.Ports) > 1:
			var ps []string
			for _, pr := range r.Ports {
				ps = append(ps, portSpec(pr))
			}
			fmt.Fprintf(&b, " -m multiport --dports %s", strings.Join(ps, ","))
		}
		if r.Allow {
			b.WriteString(" -j ACCEPT\n")
		} else {
			b.WriteString(" -j DROP\n")
		}
	}
	fmt.Fprintf(&b, "-A FORWARD -o %s -j DROP\nCOMMIT\n", outIf)
	return b.String()
}

func portSpec(p [2]uint16) string {
	if p[0] == p[1] {
		return fmt.Sprint(p[0])
	}
	return fmt.Sprintf("%d:%d", p[0], p[1])
}
