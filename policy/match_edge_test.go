package policy_test

import (
	"fmt"
	"testing"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/oracle"
	. "github.com/nfgate/nfgate/policy/policytest"
)

// localBoth evaluates eth0's normal ingress chain with the compiled program
// and the oracle; both must give want ("VERDICT reason [policy]").
func localBoth(t *testing.T, name string, cfg *policy.Config, pkt classify.Packet, want string) {
	t.Helper()
	prog, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	orc := oracle.New(prog)
	for _, ev := range []struct {
		who string
		d   policy.Decision
	}{{"compiled", prog.Local(0, policy.Ingress, &pkt)}, {"oracle", orc.Local(0, policy.Ingress, &pkt)}} {
		desc := prog.Describe(ev.d)
		got := fmt.Sprintf("%s %s", desc.Verdict, desc.Reason)
		if desc.Policy != "" {
			got += " " + desc.Policy
		}
		if got != want {
			t.Errorf("%s (%s): got %q, want %q", name, ev.who, got, want)
		}
	}
}

// edgeConfig: gw.eth0 with one ingress rule; another node's endpoint srv
// (198.18.0.9) declares TCP port "web" 8080 and UDP port "dns" 53.
func edgeConfig(r policy.Rule) *policy.Config {
	srv := hep("srv", "eth9")
	srv.Node, srv.ExpectedIPs = "other", Addrs("198.18.0.9")
	srv.Ports = []policy.EndpointPort{{Name: "web", Protocol: 6, Port: 8080}, {Name: "dns", Protocol: 17, Port: 53}}
	return &policy.Config{Settings: noFailsafes(), HostEndpoints: []policy.HostEndpoint{hep("gw.eth0", "eth0")},
		RemoteHostEndpoints: []policy.HostEndpoint{srv}, Policies: []policy.GlobalNetworkPolicy{gnp("p", "all()", in(r))}}
}

var edgeTCP = TCP("198.18.5.5", 40000, "198.18.0.9", 8080)

// icmp: {} and notICMP: {} (no type) render no ICMP match (Felix
// rule_convert.go needs ICMPType): only the protocol counts. With a type,
// the kernel's icmp match never matches a fragment, negated or not.
func TestEmptyICMP(t *testing.T) {
	for _, c := range []struct {
		name string
		rule policy.Rule
		pkt  classify.Packet
		want string
	}{
		{"icmp {} matches any ICMP", Allow(P("ICMP"), ICMPEmpty()), ICMP("198.18.5.5", "198.18.0.1", 3, 4), "ACCEPT rule p"},
		{"icmp {} matches an ICMP fragment", Allow(P("ICMP"), ICMPEmpty()), Fragment(ICMP("198.18.5.5", "198.18.0.1", 3, 4)), "ACCEPT rule p"},
		{"notICMP {} matches any ICMP", Allow(P("ICMP"), NotICMPEmpty()), ICMP("198.18.5.5", "198.18.0.1", 8, 0), "ACCEPT rule p"},
		{"icmp type vs fragment", Allow(P("ICMP"), ICMPType(8)), Fragment(ICMP("198.18.5.5", "198.18.0.1", 8, 0)), "DROP end-of-tier"},
		{"notICMP type vs fragment", Allow(P("ICMP"), NotICMPType(8)), Fragment(ICMP("198.18.5.5", "198.18.0.1", 0, 0)), "DROP end-of-tier"},
	} {
		localBoth(t, c.name, edgeConfig(c.rule), c.pkt, c.want)
	}
}

// A named port in a rule without a protocol matches the endpoint port of
// that name whatever its protocol, on that protocol (Felix rule_scanner.go:
// namedPortProto := ipsetmember.ProtocolAny; each IP set member carries the
// endpoint port's protocol). With a protocol, only ports of that protocol.
// (issue 11 item 2; nfgate used to take TCP ports only.)
func TestNamedPortWithoutProtocol(t *testing.T) {
	dns := UDP("198.18.5.5", 40000, "198.18.0.9", 53)
	for _, c := range []struct {
		name string
		rule policy.Rule
		pkt  classify.Packet
		want string
	}{
		{"named port, no protocol, TCP port", Allow(DstPorts("web")), edgeTCP, "ACCEPT rule p"},
		{"named port, no protocol, UDP port", Allow(DstPorts("dns")), dns, "ACCEPT rule p"},
		{"named port, no protocol, UDP port is not TCP", Allow(DstPorts("dns")), TCP("198.18.5.5", 40000, "198.18.0.9", 53), "DROP end-of-tier"},
		{"named port, protocol UDP", Allow(P("UDP"), DstPorts("dns")), dns, "ACCEPT rule p"},
		{"named port, protocol TCP, UDP port", Allow(P("TCP"), DstPorts("dns")), dns, "DROP end-of-tier"},
		{"named port, protocol 17", Allow(P("17"), DstPorts("dns")), dns, "ACCEPT rule p"},
		{"named notPorts, no protocol, excludes the UDP port", Allow(DstNotPorts("dns")), dns, "DROP end-of-tier"},
		{"named notPorts, no protocol, other protocol passes", Allow(DstNotPorts("dns")), TCP("198.18.5.5", 40000, "198.18.0.9", 53), "ACCEPT rule p"},
		{"named notPorts, protocol TCP, UDP port not excluded", Allow(P("UDP"), DstNotPorts("web")), dns, "ACCEPT rule p"},
	} {
		localBoth(t, c.name, edgeConfig(c.rule), c.pkt, c.want)
	}
}

// The HEP example: a named port without protocol on this node's own
// endpoint, UDP 161 ("mgmt") and UDP 53 ("dns").
func TestNamedPortOwnEndpointProtocol(t *testing.T) {
	gw := hep("gw.eth0", "eth0")
	gw.Node, gw.ExpectedIPs = "gw", Addrs("198.18.0.1")
	gw.Ports = []policy.EndpointPort{{Name: "mgmt", Protocol: 17, Port: 161}, {Name: "dns", Protocol: 17, Port: 53}}
	cfg := &policy.Config{Settings: noFailsafes(), HostEndpoints: []policy.HostEndpoint{gw},
		Policies: []policy.GlobalNetworkPolicy{gnp("p", "all()", in(Deny(DstPorts("mgmt")), Allow(DstPorts("dns"))))}}
	localBoth(t, "Deny mgmt drops UDP/161", cfg, UDP("198.18.5.5", 40000, "198.18.0.1", 161), "DROP rule p")
	localBoth(t, "Allow dns accepts UDP/53", cfg, UDP("198.18.5.5", 40000, "198.18.0.1", 53), "ACCEPT rule p")
	localBoth(t, "other UDP reaches the end of the tier", cfg, UDP("198.18.5.5", 40000, "198.18.0.1", 162), "DROP end-of-tier")
}

// All fields of an entity rule are ANDed, a field and its negation
// included (issue 11 item 1; nfgate used to drop ports when notPorts was
// set).
func TestEntityRuleFieldsAreANDed(t *testing.T) {
	in := func(port uint16) classify.Packet { return TCP("198.18.5.5", 40000, "198.18.0.9", port) }
	src := func(a string) classify.Packet { return TCP(a, 40000, "198.18.0.9", 80) }
	web := []policy.Port{{Name: "web"}}
	for _, c := range []struct {
		name string
		rule policy.Rule
		pkt  classify.Packet
		want string
	}{
		// ports + notPorts (the example)
		{"ports and notPorts: in ports, not excluded", Allow(P("TCP"), DstPorts("7000:7100", "443"), DstNotPorts("7050")), in(7000), "ACCEPT rule p"},
		{"ports and notPorts: 443", Allow(P("TCP"), DstPorts("7000:7100", "443"), DstNotPorts("7050")), in(443), "ACCEPT rule p"},
		{"ports and notPorts: excluded", Allow(P("TCP"), DstPorts("7000:7100", "443"), DstNotPorts("7050")), in(7050), "DROP end-of-tier"},
		{"ports and notPorts: outside ports", Allow(P("TCP"), DstPorts("7000:7100", "443"), DstNotPorts("7050")), in(9000), "DROP end-of-tier"},
		{"ports and notPorts: named in ports, numeric exclusion", Allow(P("TCP"), func(r *policy.Rule) { r.Destination.Ports = web }, DstNotPorts("8080")), edgeTCP, "DROP end-of-tier"},
		{"ports and named notPorts", Allow(P("TCP"), DstPorts("8000:9000"), DstNotPorts("web")), edgeTCP, "DROP end-of-tier"},
		{"ports and named notPorts: other port", Allow(P("TCP"), DstPorts("8000:9000"), DstNotPorts("web")), in(8081), "ACCEPT rule p"},
		{"source ports and notPorts", Allow(P("TCP"), SrcPorts("40000:40010"), SrcNotPorts("40000")), in(80), "DROP end-of-tier"},
		// nets + notNets
		{"nets and notNets: inside", Allow(SrcNets("198.18.0.0/16"), SrcNotNets("198.18.5.0/24")), src("198.18.6.1"), "ACCEPT rule p"},
		{"nets and notNets: excluded", Allow(SrcNets("198.18.0.0/16"), SrcNotNets("198.18.5.0/24")), src("198.18.5.1"), "DROP end-of-tier"},
		// selector + notSelector (srv is role=srv, other is role=srv,bad)
		{"selector and notSelector: selected", Allow(DstSel("role == 'srv'"), func(r *policy.Rule) { r.Destination.NotSelector = Sel("has(bad)") }), edgeTCP, "ACCEPT rule p"},
		{"selector and notSelector: excluded", Allow(DstSel("role == 'srv'"), func(r *policy.Rule) { r.Destination.NotSelector = Sel("has(bad)") }), TCP("198.18.5.5", 40000, "198.18.0.10", 8080), "DROP end-of-tier"},
		// selector + nets
		{"selector and nets", Allow(DstSel("role == 'srv'"), DstNets("198.18.0.10/32")), edgeTCP, "DROP end-of-tier"},
		// protocol + notProtocol
		{"protocol and notProtocol", Allow(P("TCP"), NotP("TCP")), edgeTCP, "DROP end-of-tier"},
		// icmp + notICMP
		{"icmp and notICMP: type matches, code excluded", Allow(P("ICMP"), ICMPType(3), func(r *policy.Rule) { r.NotICMP = &policy.ICMPMatch{Type: 3, HasType: true, Code: 4, HasCode: true} }), ICMP("198.18.5.5", "198.18.0.9", 3, 4), "DROP end-of-tier"},
		{"icmp and notICMP: other code", Allow(P("ICMP"), ICMPType(3), func(r *policy.Rule) { r.NotICMP = &policy.ICMPMatch{Type: 3, HasType: true, Code: 4, HasCode: true} }), ICMP("198.18.5.5", "198.18.0.9", 3, 1), "ACCEPT rule p"},
		// source and destination
		{"source and destination", Allow(P("TCP"), SrcNets("198.18.9.0/24"), DstPorts("8080")), edgeTCP, "DROP end-of-tier"},
	} {
		cfg := edgeConfig(c.rule)
		other := hep("other", "eth9", "role=srv", "bad=")
		other.Node, other.ExpectedIPs = "other", Addrs("198.18.0.10")
		cfg.RemoteHostEndpoints[0].Labels = Labels("role=srv")
		cfg.RemoteHostEndpoints = append(cfg.RemoteHostEndpoints, other)
		localBoth(t, c.name, cfg, c.pkt, c.want)
		for _, limit := range []int{1} { // the exact slow matcher too
			restore := policy.SetMaxRectsPerRule(limit)
			localBoth(t, c.name+" (slow path)", cfg, c.pkt, c.want)
			restore()
		}
	}
}

// Packets that lack the fields a rule asks about (spec §6): the kernel's
// tcp/udp/multiport matches never match a non-first fragment, even negated;
// an ipset ip,port lookup that cannot read a port (fragment, port-less
// protocol) is a non-member, so a negated named-port match does match.
func TestKernelMatchEdges(t *testing.T) {
	for _, c := range []struct {
		name string
		rule policy.Rule
		pkt  classify.Packet
		want string
	}{
		{"ports vs fragment", Allow(P("TCP"), DstPorts("8080")), Fragment(edgeTCP), "DROP end-of-tier"},
		{"numeric notPorts vs fragment", Allow(P("TCP"), DstNotPorts("22")), Fragment(edgeTCP), "DROP end-of-tier"},
		{"numeric and named notPorts vs fragment", Allow(P("TCP"), DstNotPorts("22", "web")), Fragment(edgeTCP), "DROP end-of-tier"},
		{"named notPorts vs fragment", Allow(P("TCP"), DstNotPorts("web")), Fragment(edgeTCP), "ACCEPT rule p"},
		{"named notPorts, no protocol, vs GRE", Allow(DstNotPorts("web")), RawIP("198.18.5.5", 47, "198.18.0.9"), "ACCEPT rule p"},
		{"named notPorts, no protocol, vs ICMP", Allow(DstNotPorts("web")), ICMP("198.18.5.5", "198.18.0.9", 8, 0), "ACCEPT rule p"},
		{"source named notPorts vs fragment", Allow(P("TCP"), SrcNotPorts("web")), Fragment(edgeTCP), "ACCEPT rule p"},
		{"named ports vs fragment", Allow(P("TCP"), DstPorts("web")), Fragment(edgeTCP), "DROP end-of-tier"},
		{"protocol only vs fragment", Allow(P("TCP"), SrcNets("198.18.0.0/16")), Fragment(edgeTCP), "ACCEPT rule p"},
	} {
		localBoth(t, c.name, edgeConfig(c.rule), c.pkt, c.want)
	}
}
