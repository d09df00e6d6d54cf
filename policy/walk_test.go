package policy_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	. "github.com/nfgate/nfgate/policy/policytest"
)

// stagesOf renders every stage of a trace as "stage/reason@iface" and the final verdict.
func stagesOf(prog *policy.Program, tr policy.Trace) string {
	var b strings.Builder
	for _, s := range tr.Stages {
		d := prog.Describe(s.Decision)
		b.WriteString(s.Stage.String() + "/" + d.Verdict + "/" + d.Reason + "@" + s.Interface + " ")
	}
	return b.String() + tr.Final.String()
}

// Spec §11: the stage sequence Walk follows.
func TestWalkStageSequence(t *testing.T) {
	heps := []policy.HostEndpoint{hep("gw.eth0", "eth0", "side=out"), hep("gw.eth1", "eth1", "side=in"), hep("gw.lo", "lo", "side=lo")}
	cfg := &policy.Config{Settings: noFailsafes(), HostEndpoints: heps, Policies: []policy.GlobalNetworkPolicy{
		gnp("dnt-web", "side == 'out'", dnt, in(Allow(P("TCP"), DstPorts("80")), Allow(P("TCP"), SrcPorts("80"))), out(Allow(P("TCP"), DstPorts("8080")))),
		gnp("eth1-fwd", "side == 'in'", aof, out(Deny(P("TCP"), DstPorts("80")), Allow())),
		gnp("local", "side == 'in' || side == 'lo'", in(Allow(P("TCP"), DstPorts("9090"))), out(Allow(P("TCP"), DstPorts("9090", "8080")))),
	}}
	prog, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		path policy.Path
		pkt  classify.Packet
		want string
	}{
		// Felix's mangle PREROUTING ACCEPTs a packet carrying the accept
		// mark before its pre-DNAT dispatch (felix/rules/static.go
		// StaticManglePreroutingChain), on every interface, with or
		// without pre-DNAT policy.
		{"DNT allow: mangle PREROUTING accepts on the mark, the in-HEP forward chain is skipped, not the out-HEP's",
			path("eth0>eth1"), TCP("198.18.9.9", 40000, "198.19.9.9", 80),
			"untracked/ACCEPT/rule@eth0 preDNAT/ACCEPT/earlier-stage@eth0 forward/DROP/rule@eth1 DROP"},
		// The packet was NOTRACKed: the out-HEP's conntrack rules see
		// UNTRACKED, not the flow's ESTABLISHED state, and policy decides.
		{"DNT-allowed packet of an established flow is untracked downstream",
			path("eth0>eth1"), CT(TCP("198.18.9.9", 40000, "198.19.9.9", 80), classify.CTEstablished),
			"untracked/ACCEPT/rule@eth0 preDNAT/ACCEPT/earlier-stage@eth0 forward/DROP/rule@eth1 DROP"},
		{"NOTRACKed packets are never DNAT'd",
			withDNAT(path("eth0>eth1"), "198.19.8.8", 443), TCP("198.18.9.9", 40000, "198.18.0.1", 80),
			"untracked/ACCEPT/rule@eth0 preDNAT/ACCEPT/earlier-stage@eth0 forward/DROP/rule@eth1 DROP"},
		{"DNT allow to the host",
			path("eth0>local"), TCP("198.18.9.9", 40000, "198.18.0.1", 80),
			"untracked/ACCEPT/rule@eth0 preDNAT/ACCEPT/earlier-stage@eth0 input/ACCEPT/earlier-stage@eth0 ACCEPT"},
		{"DNT ingress without a match: no mark, mangle PREROUTING has nothing to accept",
			path("eth0>local"), TCP("198.18.9.9", 40000, "198.18.0.1", 81),
			"untracked/NONE/no-match@eth0 input/DROP/no-profile@eth0 DROP"},
		{"raw OUTPUT uses the pre-DNAT route, filter the final out-interface",
			policy.Path{FromLocal: true, Out: ifaces["eth1"], OutBeforeDNAT: ifaces["eth0"], DNATAddr: netip.MustParseAddr("198.19.8.8")},
			TCP("198.18.0.1", 40000, "198.18.9.9", 9090),
			"untracked/NONE/no-match@eth0 output/NONE/rule@eth1 NONE"},
		{"DNT egress allow: NOTRACK, no DNAT, filter OUTPUT accepts on the mark",
			policy.Path{FromLocal: true, Out: ifaces["eth1"], OutBeforeDNAT: ifaces["eth0"], DNATAddr: netip.MustParseAddr("198.19.8.8")},
			TCP("198.18.0.1", 40000, "198.18.9.9", 8080),
			"untracked/ACCEPT/rule@eth0 output/ACCEPT/earlier-stage@eth1 ACCEPT"},
		{"local to local: egress then ingress of the lo endpoint",
			path("local>local"), TCP("127.0.0.1", 40000, "127.0.0.1", 9090),
			"output/ACCEPT/rule@lo input/ACCEPT/rule@lo ACCEPT"},
		{"local to local denied on ingress",
			path("local>local"), TCP("127.0.0.1", 40000, "127.0.0.1", 8080),
			"output/ACCEPT/rule@lo input/DROP/end-of-tier@lo DROP"},
	} {
		if got := stagesOf(prog, prog.Walk(c.path, c.pkt)); got != c.want {
			t.Errorf("%s:\n got  %s\n want %s", c.name, got, c.want)
		}
	}
}

func withDNAT(p policy.Path, addr string, port uint16) policy.Path {
	p.DNATAddr, p.DNATPort = netip.MustParseAddr(addr), port
	return p
}

// Workload interfaces (interfacePrefix, default cali). nfgate knows no
// WorkloadEndpoints, so to Felix every such interface is an unknown one:
// its dispatch chains end in "Unknown interface" DROP (felix/rules/dispatch.go).
// Checked on the real Felix v3.32.1 (issue 11, second round):
//   - to the host: cali-INPUT's first rule sends every packet from cali+
//     to cali-wl-to-host, whose dispatch drops it; DefaultEndpointToHostAction
//     (after the dispatch) is never reached, ESTABLISHED packets included;
//   - forwarded from or to it: cali-FORWARD's -i/-o cali+ dispatch drops it,
//     after the in-interface's host endpoint forward chain (whose conntrack
//     rule ACCEPTs an established flow, and whose policy may DROP first);
//   - from the host to it: cali-OUTPUT RETURNs before any host endpoint:
//     NONE (the host's OUTPUT rules decide).
func TestWalkWorkloadInterface(t *testing.T) {
	newTCP := TCP("198.18.9.9", 1, "198.18.0.1", 80)
	icmp6 := func(typ uint8) classify.Packet {
		return ICMP("fe80::2", "fe80::1", typ, 0)
	}
	est := CT(newTCP, classify.CTEstablished)
	allowFwd := gnp("fwd-allow", "all()", aof, in(Allow()), out(Allow()))
	denyFwd := gnp("fwd-deny", "all()", aof, in(Deny()), out(Deny()))
	for _, c := range []struct {
		name   string
		action policy.Action
		heps   []policy.HostEndpoint
		pols   []policy.GlobalNetworkPolicy
		path   string
		pkt    classify.Packet
		want   string
	}{
		{"to host, DefaultEndpointToHostAction Drop", policy.Deny, nil, nil, "cali1>local", newTCP, "input/DROP/unknown-workload-interface@cali1 DROP"},
		{"to host, Accept is never reached", policy.Allow, nil, nil, "cali1>local", newTCP, "input/DROP/unknown-workload-interface@cali1 DROP"},
		{"to host, Return is never reached", policy.Pass, nil, nil, "cali1>local", newTCP, "input/DROP/unknown-workload-interface@cali1 DROP"},
		{"to host, established", policy.Allow, []policy.HostEndpoint{hep("all", "*")}, nil, "cali1>local", est, "input/DROP/unknown-workload-interface@cali1 DROP"},
		{"forwarded from it", policy.Allow, nil, nil, "cali1>eth0", newTCP, "forward/DROP/unknown-workload-interface@cali1 DROP"},
		{"forwarded from it, * endpoint allows", policy.Allow, []policy.HostEndpoint{hep("all", "*")}, []policy.GlobalNetworkPolicy{allowFwd}, "cali1>eth0", newTCP,
			"forward/DROP/unknown-workload-interface@cali1 DROP"},
		{"forwarded from it, * endpoint denies first", policy.Allow, []policy.HostEndpoint{hep("all", "*")}, []policy.GlobalNetworkPolicy{denyFwd}, "cali1>eth0", newTCP,
			"forward/DROP/rule@cali1 DROP"},
		{"forwarded from it, established, * endpoint", policy.Allow, []policy.HostEndpoint{hep("all", "*")}, nil, "cali1>eth0", est, "forward/ACCEPT/conntrack@cali1 ACCEPT"},
		{"forwarded from it, established, no endpoint", policy.Allow, nil, nil, "cali1>eth0", est, "forward/DROP/unknown-workload-interface@cali1 DROP"},
		{"forwarded to it", policy.Allow, nil, nil, "eth0>cali1", newTCP, "forward/DROP/unknown-workload-interface@cali1 DROP"},
		{"forwarded to it, in-endpoint allows", policy.Allow, []policy.HostEndpoint{hep("out", "eth0")}, []policy.GlobalNetworkPolicy{allowFwd}, "eth0>cali1", newTCP,
			"forward/DROP/unknown-workload-interface@cali1 DROP"},
		{"forwarded to it, in-endpoint denies first", policy.Allow, []policy.HostEndpoint{hep("out", "eth0")}, []policy.GlobalNetworkPolicy{denyFwd}, "eth0>cali1", newTCP,
			"forward/DROP/rule@eth0 DROP"},
		{"forwarded to it, established through an endpoint", policy.Allow, []policy.HostEndpoint{hep("out", "eth0")}, nil, "eth0>cali1", est, "forward/ACCEPT/conntrack@eth0 ACCEPT"},
		{"from the host to it", policy.Allow, []policy.HostEndpoint{hep("all", "*")}, nil, "local>cali1", newTCP, "output/NONE/not-policed@cali1 NONE"},
		// Felix v3.32.1 accepts ICMPv6 listener, router-solicitation and
		// neighbour messages from it before the workload dispatch (a
		// neighbour solicitation counted on that rule; echo requests on
		// "Unknown interface").
		{"to host, ICMPv6 neighbour solicitation", policy.Deny, nil, nil, "cali1>local", icmp6(135), "input/ACCEPT/workload-icmpv6@cali1 ACCEPT"},
		{"to host, ICMPv6 router solicitation", policy.Deny, nil, nil, "cali1>local", icmp6(133), "input/ACCEPT/workload-icmpv6@cali1 ACCEPT"},
		{"to host, ICMPv6 echo request", policy.Allow, nil, nil, "cali1>local", icmp6(128), "input/DROP/unknown-workload-interface@cali1 DROP"},
		{"to host, ICMPv6 router advertisement", policy.Allow, nil, nil, "cali1>local", icmp6(134), "input/DROP/unknown-workload-interface@cali1 DROP"},
	} {
		st := noFailsafes()
		st.DefaultEndpointToHostAction = c.action
		prog, err := policy.Compile(&policy.Config{Settings: st, HostEndpoints: c.heps, Policies: c.pols})
		if err != nil {
			t.Fatal(err)
		}
		if got := stagesOf(prog, prog.Walk(path(c.path), c.pkt)); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}

// Locally originated traffic that nat OUTPUT DNATs is policed in mangle
// POSTROUTING, where Calico's Allow only returns: the verdict is NONE (the
// host's filter OUTPUT rules decide), while a Deny is a real DROP (issue 11
// item 9; explain used to report ACCEPT).
func TestWalkDNATedLocalOutput(t *testing.T) {
	cfg := &policy.Config{Settings: defaults(), HostEndpoints: []policy.HostEndpoint{hep("gw.eth1", "eth1", "side=in")},
		Policies: []policy.GlobalNetworkPolicy{gnp("out", "side == 'in'", out(Allow(P("TCP"), DstPorts("443")), Deny(P("TCP"), DstPorts("80"))))}}
	prog, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dnat := policy.Path{FromLocal: true, Out: ifaces["eth1"], DNATAddr: netip.MustParseAddr("198.19.8.8")}
	plain := policy.Path{FromLocal: true, Out: ifaces["eth1"]}
	for _, c := range []struct {
		name string
		path policy.Path
		pkt  classify.Packet
		want string
		post bool
	}{
		{"DNAT'd, allowed: NONE", dnat, TCP("198.19.0.1", 40000, "198.18.9.9", 443), "output/NONE/rule@eth1 NONE", true},
		{"DNAT'd, denied: DROP", dnat, TCP("198.19.0.1", 40000, "198.18.9.9", 80), "output/DROP/rule@eth1 DROP", true},
		{"DNAT'd, end of tier: DROP", dnat, TCP("198.19.0.1", 40000, "198.18.9.9", 25), "output/DROP/end-of-tier@eth1 DROP", true},
		{"DNAT'd, failsafe: NONE", dnat, UDP("198.19.0.1", 40000, "198.18.9.9", 53), "output/NONE/failsafe@eth1 NONE", true},
		{"DNAT'd, established: NONE", dnat, CT(TCP("198.19.0.1", 40000, "198.18.9.9", 25), classify.CTEstablished), "output/NONE/conntrack@eth1 NONE", true},
		{"not DNAT'd, allowed: ACCEPT in filter OUTPUT", plain, TCP("198.19.0.1", 40000, "198.18.9.9", 443), "output/ACCEPT/rule@eth1 ACCEPT", false},
	} {
		tr := prog.Walk(c.path, c.pkt)
		if got := stagesOf(prog, tr); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
		if last := tr.Stages[len(tr.Stages)-1]; last.Postrouting != c.post {
			t.Errorf("%s: Postrouting %v, want %v", c.name, last.Postrouting, c.post)
		}
	}
}
