package netbench

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

// TestGeneratedPolicy: the generated configuration loads in nfgate, and the
// benchmark's traffic gets the verdict the harness relies on at every size.
func TestGeneratedPolicy(t *testing.T) {
	for _, n := range []int{10, 1000, 10000} {
		rules := Policy(n, 1)
		if len(rules) != n {
			t.Fatalf("Policy(%d): %d rules", n, len(rules))
		}
		topo := Topology{Node: "gw", ServerIf: "srv0", ServerIP: GWServerIP}
		for _, yaml := range []bool{false, true} {
			path, err := WriteConfig(t.TempDir(), rules, topo, yaml)
			if err != nil {
				t.Fatal(err)
			}
			checkGenerated(t, n, path)
		}
	}
}

// checkGenerated loads and compiles one generated configuration and checks
// the verdicts for the benchmark's traffic.
func checkGenerated(t *testing.T, n int, path string) {
	t.Helper()
	ld, err := config.Load(path)
	if err != nil {
		t.Fatalf("%d rules: %v", n, err)
	}
	prog, err := policy.Compile(ld.Policy)
	if err != nil {
		t.Fatalf("%d rules: %v", n, err)
	}
	out := prog.Bind(policy.Interface{Name: "srv0", Addrs: []netip.Addr{netip.MustParseAddr(GWServerIP)}})
	in := prog.Bind(policy.Interface{Name: "cli0", Addrs: []netip.Addr{netip.MustParseAddr(GWClientIP)}})
	for _, c := range []struct {
		proto uint8
		port  uint16
		want  policy.Verdict
	}{
		{classify.ProtoUDP, PortUDPEarly, policy.Accept},
		{classify.ProtoUDP, PortUDPDeep, policy.Accept},
		{classify.ProtoUDP, PortEchoEarly, policy.Accept},
		{classify.ProtoUDP, PortEchoDeep, policy.Accept},
		{classify.ProtoTCP, PortTCPEarly, policy.Accept},
		{classify.ProtoTCP, PortTCPDeep, policy.Accept},
		{classify.ProtoTCP, PortTCPStall, policy.Accept},
		{classify.ProtoTCP, PortIperf, policy.Accept},
		{classify.ProtoUDP, PortDenied, policy.Drop},
		{classify.ProtoTCP, PortDenied, policy.Drop},
	} {
		pkt := classify.Packet{Family: classify.IPv4, Proto: c.proto, Src: netip.MustParseAddr(ClientIP),
			Dst: netip.MustParseAddr(ServerIP), SrcPort: 40000, DstPort: c.port, Class: classify.OK, CT: classify.CTNew}
		d := prog.Forward(in.ForwardIn, out.Filter, false, &pkt)
		if d.Verdict != c.want {
			t.Errorf("%d rules: proto %d port %d: %v, want %v", n, c.proto, c.port, d.Verdict, c.want)
		}
	}
}

func TestIptablesLinear(t *testing.T) {
	rules := Policy(10, 1)
	got := IptablesLinear(rules, "srv0")
	lines := strings.Split(strings.TrimSpace(got), "\n")
	// *filter, policy line, established rule, 10 rules, default deny, COMMIT.
	if len(lines) != 15 {
		t.Fatalf("%d lines:\n%s", len(lines), got)
	}
	if !strings.Contains(lines[2], "ESTABLISHED -j ACCEPT") || lines[13] != "-A FORWARD -o srv0 -j DROP" {
		t.Errorf("order wrong:\n%s", got)
	}
	if !strings.Contains(lines[3], "-p udp -m multiport --dports 7000,7100 -j ACCEPT") {
		t.Errorf("first rule: %s", lines[3])
	}
}
