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
		{"DNT allow skips pre-DNAT and the in-HEP forward chain, not the out-HEP's",
			path("eth0>eth1"), TCP("198.18.9.9", 40000, "198.19.9.9", 80),
			"untracked/ACCEPT/rule@eth0 forward/DROP/rule@eth1 DROP"},
		// The packet was NOTRACKed: the out-HEP's conntrack rules see
		// UNTRACKED, not the flow's ESTABLISHED state, and policy decides.
		{"DNT-allowed packet of an established flow is untracked downstream",
			path("eth0>eth1"), CT(TCP("198.18.9.9", 40000, "198.19.9.9", 80), classify.CTEstablished),
			"untracked/ACCEPT/rule@eth0 forward/DROP/rule@eth1 DROP"},
		{"NOTRACKed packets are never DNAT'd",
			withDNAT(path("eth0>eth1"), "198.19.8.8", 443), TCP("198.18.9.9", 40000, "198.18.0.1", 80),
			"untracked/ACCEPT/rule@eth0 forward/DROP/rule@eth1 DROP"},
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

// Workload interface to host: DefaultEndpointToHostAction, before any
// accept-mark check (spec §2.1 INPUT). Return lets the host's rules decide.
func TestWalkWorkloadToHost(t *testing.T) {
	for _, c := range []struct {
		action policy.Action
		want   string
	}{
		{policy.Deny, "input/DROP/workload-to-host@cali1 DROP"},
		{policy.Allow, "input/ACCEPT/workload-to-host@cali1 ACCEPT"},
		{policy.Pass, "input/NONE/workload-to-host@cali1 NONE"}, // "Return"
	} {
		st := noFailsafes()
		st.DefaultEndpointToHostAction = c.action
		prog, _ := policy.Compile(&policy.Config{Settings: st, HostEndpoints: []policy.HostEndpoint{hep("all", "*")}})
		if got := stagesOf(prog, prog.Walk(path("cali1>local"), TCP("198.18.9.9", 1, "198.18.0.1", 80))); got != c.want {
			t.Errorf("%v: got %s, want %s", c.action, got, c.want)
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
