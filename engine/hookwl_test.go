package engine_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

// Workload interfaces (interfacePrefix, "cali") in the kernel rules, against
// explain (policy.Walk, checked on the real Felix v3.32.1): what such an
// interface sends to the host is dropped, every packet, established too,
// but ICMPv6 router and neighbour messages; what is forwarded from or to it
// is dropped unless the in-interface's host endpoint forward chain accepts
// it as established; what the host sends to it is NONE. None of it is
// queued: no verdict there depends on a packet's policy.
func TestWorkloadInterfacesInTheKernel(t *testing.T) {
	const endpoints = `
[gateway]
nodeName = "gw"
failsafeInboundHostPorts = "none"
failsafeOutboundHostPorts = "none"
defaultEndpointToHostAction = "Accept"
`
	named := `
[[hostEndpoint]]
name = "gw.eth0"
labels = { all = "yes" }
interfaceName = "eth0"
node = "gw"
`
	star := `
[[hostEndpoint]]
name = "gw.all"
labels = { all = "yes" }
interfaceName = "*"
node = "gw"
profiles = ["projectcalico-default-allow"]
`
	fwd := func(action string) string {
		return fmt.Sprintf(`
[[globalNetworkPolicy]]
name = "fwd"
selector = "all == 'yes'"
applyOnForward = true
types = ["Ingress", "Egress"]
[[globalNetworkPolicy.ingress]]
action = %q
[[globalNetworkPolicy.egress]]
action = %q
`, action, action)
	}
	ifaces := []engine.Iface{
		{Index: 2, Name: "eth0", Addrs: []netip.Addr{netip.MustParseAddr("198.18.0.1")}},
		{Index: 3, Name: "eth1", Addrs: []netip.Addr{netip.MustParseAddr("198.19.0.1")}},
		{Index: 4, Name: "cali0", Addrs: []netip.Addr{netip.MustParseAddr("198.18.9.1")}},
	}
	type path struct{ in, out string } // "local" for the host
	paths := []path{{"cali0", "local"}, {"cali0", "eth0"}, {"cali0", "eth1"}, {"eth0", "cali0"}, {"eth1", "cali0"}, {"local", "cali0"}}
	cts := []struct {
		name string
		ct   classify.CTState
		sim  string
	}{{"new", classify.CTNew, "NEW"}, {"established", classify.CTEstablished, "ESTABLISHED"}, {"related", classify.CTRelated, "RELATED"}}
	checked := 0
	for _, cfg := range []struct{ name, text string }{
		{"no endpoint", endpoints},
		{"named eth0, forward allow", endpoints + named + fwd("Allow")},
		{"* endpoint, forward allow", endpoints + star + fwd("Allow")},
		{"* endpoint, forward deny", endpoints + star + fwd("Deny")},
	} {
		ld, err := config.LoadBytes("nfgate.toml", []byte(cfg.text))
		if err != nil {
			t.Fatalf("%s: %v", cfg.name, err)
		}
		prog, err := policy.Compile(ld.Policy)
		if err != nil {
			t.Fatal(err)
		}
		unt, pre, filt := engine.PlanDispatch(prog, ld.Policy, ifaces)
		m, _ := engine.NewMarks(0x00ff0000)
		plan := &engine.HookPlan{Marks: m, QueueBase: 100, Queues: 1, InvalidDrop: true, Untracked: unt, PreDNAT: pre, Filter: filt,
			Workload: engine.WorkloadPatterns(ld.Policy)}
		bind := func(name string) policy.Interface {
			for _, i := range ifaces {
				if i.Name == name {
					return policy.Interface{Name: name, Addrs: i.Addrs}
				}
			}
			return policy.Interface{}
		}
		for _, fam := range []uint8{4, 6} {
			tabs := simLoad(engine.Render(plan, fam))
			for _, pa := range paths {
				for _, c := range cts {
					for _, icmp6 := range []int{0, 135} {
						if icmp6 != 0 && (fam != 6 || c.ct != classify.CTNew) {
							continue
						}
						pkt := classify.Packet{Family: classify.IPv4, Proto: classify.ProtoTCP, Src: netip.MustParseAddr("198.18.5.5"),
							Dst: netip.MustParseAddr("198.18.6.6"), SrcPort: 40000, DstPort: 80, Class: classify.OK, CT: c.ct}
						if fam == 6 {
							pkt.Family, pkt.Src, pkt.Dst = classify.IPv6, netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("2001:db8::6")
						}
						if icmp6 != 0 {
							pkt.Proto, pkt.SrcPort, pkt.DstPort, pkt.ICMPType = classify.ProtoICMPv6, 0, 0, uint8(icmp6)
						}
						wp := policy.Path{In: bind(pa.in), Out: bind(pa.out), ToLocal: pa.out == "local", FromLocal: pa.in == "local"}
						want := prog.Walk(wp, pkt).Final.String()
						cm := uint32(0)
						sp := &simPkt{ct: c.sim, in: pa.in, out: pa.out, connmark: &cm, icmp6: icmp6, srcLocal: pa.in == "local"}
						table, chain := "filter", "FORWARD"
						switch {
						case pa.out == "local":
							chain, sp.out = "INPUT", ""
						case pa.in == "local":
							chain, sp.in = "OUTPUT", ""
						}
						got := simHook(t, tabs, table, chain, sp)
						if got == "HOST" {
							got = "NONE"
						}
						name := fmt.Sprintf("%s: IPv%d %s>%s %s icmp6=%d", cfg.name, fam, pa.in, pa.out, c.name, icmp6)
						if got != want {
							t.Errorf("%s: kernel rules %s, explain %s", name, got, want)
						}
						checked++
					}
				}
			}
		}
	}
	t.Logf("%d workload-interface cases: kernel rules agree with explain", checked)
}
