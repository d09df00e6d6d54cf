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

// A named port in a rule without a protocol means the endpoints' TCP ports
// of that name only (Felix rule_scanner.go: namedPortProto defaults to TCP,
// ipsetmember "named ports default to TCP if protocol isn't specified").
// Spec §6 says ProtocolAny; the source says otherwise.
func TestNamedPortDefaultsToTCP(t *testing.T) {
	for _, c := range []struct {
		name string
		rule policy.Rule
		pkt  classify.Packet
		want string
	}{
		{"named port, no protocol, TCP", Allow(DstPorts("web")), edgeTCP, "ACCEPT rule p"},
		{"named port, no protocol, UDP named port", Allow(DstPorts("dns")), UDP("198.18.5.5", 40000, "198.18.0.9", 53), "DROP end-of-tier"},
		{"named port, protocol UDP", Allow(P("UDP"), DstPorts("dns")), UDP("198.18.5.5", 40000, "198.18.0.9", 53), "ACCEPT rule p"},
		{"named notPorts, no protocol, UDP named port is not excluded", Allow(DstNotPorts("dns")), UDP("198.18.5.5", 40000, "198.18.0.9", 53), "ACCEPT rule p"},
	} {
		localBoth(t, c.name, edgeConfig(c.rule), c.pkt, c.want)
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
