package policy_test

import (
	"net/netip"
	"testing"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/oracle"
	. "github.com/nfgate/nfgate/policy/policytest"
)

// evaluator is what the compiled Program and the oracle both implement.
type evaluator interface {
	Untracked(policy.EndpointID, policy.Dir, *classify.Packet) policy.Decision
	PreDNAT(policy.EndpointID, *classify.Packet) policy.Decision
	Local(policy.EndpointID, policy.Dir, *classify.Packet) policy.Decision
	Forward(in, out policy.EndpointID, accepted bool, pkt *classify.Packet) policy.Decision
}

// stageOf evaluates endpoint 0 at a named stage.
func stageOf(e evaluator, stage string, k *classify.Packet) policy.Decision {
	switch stage {
	case "raw-in":
		return e.Untracked(0, policy.Ingress, k)
	case "raw-out":
		return e.Untracked(0, policy.Egress, k)
	case "mangle-in":
		return e.PreDNAT(0, k)
	case "input":
		return e.Local(0, policy.Ingress, k)
	case "output", "mangle-out": // filter OUTPUT and DNAT'd mangle POSTROUTING share the chain
		return e.Local(0, policy.Egress, k)
	case "forward-in":
		return e.Forward(0, policy.NoEndpoint, false, k)
	case "forward-out":
		return e.Forward(policy.NoEndpoint, 0, false, k)
	}
	panic(stage)
}

// Spec §4, stage by stage, compiled and oracle alike. The endpoint denies
// everything at every stage, so whatever is accepted is a failsafe.
func TestFailsafes(t *testing.T) {
	st := defaults()
	st.FailsafeInbound = []policy.ProtoPort{{Protocol: 6, Port: 22}, {Protocol: 17, Port: 68, Net: netip.MustParsePrefix("198.18.1.0/24")},
		{Protocol: 6, Port: 2222, Net: netip.MustParsePrefix("2001:db8:1::/48")}}
	st.FailsafeOutbound = []policy.ProtoPort{{Protocol: 17, Port: 53}, {Protocol: 6, Port: 443, Net: netip.MustParsePrefix("198.19.0.0/16")}}
	cfg := &policy.Config{Settings: st, HostEndpoints: []policy.HostEndpoint{hep("gw.eth0", "eth0")}, Policies: []policy.GlobalNetworkPolicy{
		gnp("deny", "all()", aof, in(Deny()), out(Deny())),
		gnp("pre-deny", "all()", preDNAT, in(Deny())),
		gnp("dnt-deny", "all()", dnt, in(Deny()), out(Deny())),
	}}
	prog, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	orc := oracle.New(prog)
	const fs, no = "ACCEPT failsafe", "DROP rule"
	for _, c := range []struct {
		stage string
		pkt   classify.Packet
		want  string
	}{
		// Inbound entries: protocol + destination port, any source unless a net is given.
		{"input", TCP("198.18.9.9", 40000, "198.18.0.1", 22), fs},
		{"input", TCP("2001:db8::9", 40000, "2001:db8::1", 22), fs},
		{"input", UDP("198.18.9.9", 40000, "198.18.0.1", 22), no},
		{"input", TCP("198.18.9.9", 22, "198.18.0.1", 40000), no},
		{"input", UDP("198.18.1.9", 40000, "198.18.0.1", 68), fs},
		{"input", UDP("198.18.2.9", 40000, "198.18.0.1", 68), no},
		// An entry with a net applies only to that family: a v4-mapped IPv6
		// source is not in a v4 net, and an IPv6 packet never matches it.
		{"input", UDP("::ffff:198.18.1.9", 40000, "2001:db8::1", 68), no},
		{"input", TCP("2001:db8:1::9", 40000, "2001:db8::1", 2222), fs},
		{"input", TCP("198.18.1.9", 40000, "198.18.0.1", 2222), no},
		// Outbound entries: protocol + destination port (+ destination net).
		{"output", UDP("198.18.0.1", 40000, "198.18.9.9", 53), fs},
		{"output", TCP("198.18.0.1", 40000, "198.19.9.9", 443), fs},
		{"output", TCP("198.18.0.1", 40000, "198.18.9.9", 443), no},
		{"output", TCP("198.18.0.1", 40000, "198.18.9.9", 22), no},
		{"mangle-out", UDP("198.18.0.1", 40000, "198.18.9.9", 53), fs},
		// Pre-DNAT (mangle) uses the inbound list, without reply rules.
		{"mangle-in", TCP("198.18.9.9", 40000, "198.18.0.1", 22), fs},
		{"mangle-in", UDP("198.18.9.9", 53, "198.18.0.1", 40000), no},
		// Raw adds reply rules: inbound packets from an outbound failsafe's
		// port (+ its net as source), outbound packets from an inbound one.
		{"raw-in", TCP("198.18.9.9", 40000, "198.18.0.1", 22), fs},
		{"raw-in", UDP("198.18.9.9", 53, "198.18.0.1", 40000), fs},
		{"raw-in", TCP("198.19.9.9", 443, "198.18.0.1", 40000), fs},
		{"raw-in", TCP("198.18.9.9", 443, "198.18.0.1", 40000), no},
		{"raw-out", UDP("198.18.0.1", 40000, "198.18.9.9", 53), fs},
		{"raw-out", TCP("198.18.0.1", 22, "198.18.9.9", 40000), fs},
		{"raw-out", UDP("198.18.0.1", 68, "198.18.1.9", 40000), fs},
		{"raw-out", UDP("198.18.0.1", 68, "198.18.2.9", 40000), no},
		{"input", UDP("198.18.9.9", 53, "198.18.0.1", 40000), no},
		// Never for forwarded traffic.
		{"forward-in", TCP("198.18.9.9", 40000, "198.19.0.9", 22), no},
		{"forward-out", UDP("198.19.0.9", 40000, "198.18.9.9", 53), no},
		// Conntrack rules run first: INVALID is dropped even on a failsafe
		// port (not in raw, which has no conntrack rules); fragments carry no
		// ports and never match.
		{"input", CT(TCP("198.18.9.9", 40000, "198.18.0.1", 22), classify.CTInvalid), "DROP conntrack"},
		{"mangle-in", CT(TCP("198.18.9.9", 40000, "198.18.0.1", 22), classify.CTInvalid), "DROP conntrack"},
		{"raw-in", CT(TCP("198.18.9.9", 40000, "198.18.0.1", 22), classify.CTInvalid), fs},
		{"input", Fragment(TCP("198.18.9.9", 40000, "198.18.0.1", 22)), no},
	} {
		for _, ev := range []struct {
			who string
			e   evaluator
		}{{"compiled", prog}, {"oracle", orc}} {
			pkt := c.pkt
			d := stageOf(ev.e, c.stage, &pkt)
			got := d.Verdict.String() + " " + d.Reason.String()
			if got != c.want {
				t.Errorf("%s %s %s: got %q, want %q", ev.who, c.stage, fmtPkt(c.pkt), got, c.want)
			}
			// A failsafe accepts in its table only: no accept-mark, so
			// later stages still run.
			if d.Reason == policy.ReasonFailsafe && d.AcceptMark {
				t.Errorf("%s %s %s: failsafe set the accept-mark", ev.who, c.stage, fmtPkt(c.pkt))
			}
		}
	}
}
