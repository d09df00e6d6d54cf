package conformance

import (
	"net/netip"
	"testing"

	"github.com/nfgate/nfgate/policy"
)

// The classifier names issue 11's items from the rule that decided on
// either side, and the recorded findings from the stage and path.
func TestClassify(t *testing.T) {
	tcp := &Proto{Name: "TCP"}
	c := &Case{Name: "t", Res: Resources{Policies: []GNP{
		{Meta: Meta{Name: "both"}, Spec: GNPSpec{Ingress: []Rule{{Action: "Allow", Protocol: tcp,
			Destination: &Entity{Ports: []Port{{Lo: 80, Hi: 80}}, NotPorts: []Port{{Lo: 81, Hi: 81}}}}}}},
		{Meta: Meta{Name: "named"}, Spec: GNPSpec{Egress: []Rule{{Action: "Deny", Destination: &Entity{Ports: []Port{{Name: "dns"}}}}}}},
		{Meta: Meta{Name: "ns"}, Spec: GNPSpec{NamespaceSelector: "!has(team)", Ingress: []Rule{{Action: "Deny"}}}},
	}}}
	local := &Probe{Origin: FromClient, Packet: Packet{Src: clientIP4, Dst: netip.MustParseAddr("198.18.1.1"), Proto: protoTCP, SPort: 1, DPort: 9000}}
	dnat := &Probe{Origin: FromGW, Packet: Packet{Src: netip.MustParseAddr("198.18.1.1"), Dst: netip.MustParseAddr("198.18.3.10"), Proto: protoTCP, SPort: 1, DPort: 9000}}
	foreign := &Probe{Origin: FromGW, Packet: Packet{Src: netip.MustParseAddr("198.18.9.9"), Dst: netip.MustParseAddr("198.18.3.10"), Proto: protoTCP, SPort: 1, DPort: 9000}}
	for _, tc := range []struct {
		name  string
		probe *Probe
		d     Disagreement
		r     Result
		want  string
	}{
		{"explain decided by a ports+notPorts rule", local, Disagreement{Stage: "input", Felix: vDrop, Explain: vAccept, Live: vAccept},
			Result{Decided: map[string]Decided{"input": {policy.Description{Policy: "both", Rule: 0}, policy.Ingress}}}, causeItem1},
		{"Felix decided by a named port without protocol", local, Disagreement{Stage: "output", Felix: vDrop, Explain: vAccept, Live: vAccept},
			Result{FChain: map[string]string{"filter OUTPUT": "cali-po-gnp/named"}}, causeItem2},
		{"Felix decided by a policy with a namespace selector", local, Disagreement{Stage: "input", Felix: vDrop, Explain: vAccept, Live: vAccept},
			Result{FChain: map[string]string{"filter INPUT": "cali-pi-gnp/ns"}}, causeItem3},
		{"DNAT'd local output", dnat, Disagreement{Stage: "output", Felix: vNone, Explain: vAccept, Live: vNone}, Result{}, causeItem9},
		{"pre-DNAT after an untracked Allow", local, Disagreement{Stage: "preDNAT", Felix: vAccept, Explain: vNone, Live: vNone},
			Result{Felix: Verdicts{"untracked-in": vAccept}, Explain: Verdicts{"untracked-in": vAccept}, Live: Verdicts{"untracked-in": vAccept}}, causeMangleAcceptMark},
		{"nothing known", local, Disagreement{Stage: "forward", Felix: vDrop, Explain: vAccept, Live: vAccept}, Result{}, causeUnclassified},
	} {
		tc.d.Probe, tc.r.Probe = tc.probe, tc.probe
		tc.r.Path = tc.probe.Path()
		classifyCause(c, &tc.d, &tc.r)
		if tc.d.Cause != tc.want {
			t.Errorf("%s: cause %q, want %q", tc.name, tc.d.Cause, tc.want)
		}
	}
	// new-dnat-output-foreign-source is fixed (the live daemon polices
	// DNAT'd local output from a foreign address): such a disagreement is
	// unclassified again, and fails the sample.
	d := Disagreement{Stage: "output", Felix: vDrop, Explain: vDrop, Live: vNone, Probe: foreign}
	r := Result{Probe: foreign, Path: foreign.Path()}
	if classifyCause(&Case{Name: "t"}, &d, &r); d.Cause != causeUnclassified {
		t.Errorf("DNAT'd local output from a foreign address, live NONE: cause %q, want %q", d.Cause, causeUnclassified)
	}
	if !pendingCause(causeItem1+"+"+causeItem4) || pendingCause(causeUnclassified) {
		t.Error("pendingCause: item causes are pending, unclassified is not")
	}
}
