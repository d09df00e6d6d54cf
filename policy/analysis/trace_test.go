package analysis_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/analysis"
)

// A trace's stage lines become flows: a preDNAT line and a forward line
// of one connection are one flow with its DNAT; an input line is a local
// flow; an output line a locally originated one; a flow with only a
// preDNAT line is delivered locally when its destination is the
// gateway's.
func TestFlowsFromTrace(t *testing.T) {
	trace := `{"type":"reload","gen":1}
{"type":"verdict","stage":"preDNAT","in":"ext0","proto":"tcp","src":"198.18.0.2","dst":"198.18.0.1","sport":41003,"dport":30080,"ct":"new","verdict":"ACCEPT"}
{"type":"verdict","stage":"forward","in":"ext0","out":"app0","proto":"tcp","src":"198.18.0.2","dst":"198.18.1.10","sport":41003,"dport":80,"ct":"new","verdict":"ACCEPT"}
{"type":"verdict","stage":"input","in":"app0","proto":"udp","src":"198.18.1.10","dst":"198.18.1.1","sport":5353,"dport":53,"ct":"new","verdict":"DROP"}
{"type":"verdict","stage":"output","out":"mnt0","proto":"icmp","src":"198.18.2.1","dst":"198.18.2.10","icmp_type":8,"icmp_code":0,"ct":"new","verdict":"ACCEPT"}
{"type":"verdict","stage":"preDNAT","in":"ext0","proto":"tcp","src":"198.18.0.2","dst":"198.18.0.1","sport":41004,"dport":8080,"ct":"new","verdict":"DROP"}
{"type":"verdict","stage":"preDNAT","in":"ext0","proto":"tcp","src":"198.18.0.2","dst":"198.18.0.1","sport":41004,"dport":8080,"ct":"new","verdict":"DROP","note":"deny-cache"}
{"type":"verdict","stage":"forward","in":"app0","out":"mnt0","proto":"tcp","src":"198.18.1.10","dst":"198.18.2.10","verdict":"DROP","note":"malformed:truncated-l4"}
`
	iface := func(n string) policy.Interface { return policy.Interface{Name: n} }
	local := func(a netip.Addr) bool { return a == netip.MustParseAddr("198.18.0.1") }
	flows, st, err := analysis.FlowsFromTrace(strings.NewReader(trace), iface, local)
	if err != nil {
		t.Fatal(err)
	}
	if st.Verdicts != 6 || st.Skipped != 1 || len(flows) != 4 {
		t.Fatalf("stats %+v, %d flows", st, len(flows))
	}
	f := flows[0]
	if f.Path.In.Name != "ext0" || f.Path.Out.Name != "app0" || f.Pkt.Dst != netip.MustParseAddr("198.18.0.1") || f.Pkt.DstPort != 30080 ||
		f.Path.DNATAddr != netip.MustParseAddr("198.18.1.10") || f.Path.DNATPort != 80 || f.Count != 2 {
		t.Errorf("DNAT'd flow: %+v", f)
	}
	if f := flows[1]; !f.Path.ToLocal || f.Path.In.Name != "app0" || f.Pkt.DstPort != 53 {
		t.Errorf("input flow: %+v", f)
	}
	if f := flows[2]; !f.Path.FromLocal || f.Path.Out.Name != "mnt0" || !f.Pkt.HasICMP() || f.Pkt.ICMPType != 8 {
		t.Errorf("output flow: %+v", f)
	}
	if f := flows[3]; !f.Path.ToLocal || f.Guessed == "" || f.Count != 2 {
		t.Errorf("preDNAT-only flow: %+v", f)
	}
}
