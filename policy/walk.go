package policy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/nfgate/nfgate/classify"
)

// Path says where a synthetic packet enters and leaves the host, for Walk.
type Path struct {
	In  Interface // arrival interface (unused when FromLocal, unless ToLocal too)
	Out Interface // leaving interface (unused when ToLocal, unless FromLocal too)
	// OutBeforeDNAT is the route of locally originated traffic before nat
	// OUTPUT rewrote its destination (used for the raw OUTPUT dispatch).
	// Empty Name means Out.
	OutBeforeDNAT Interface
	FromLocal     bool // originated by the host
	ToLocal       bool // delivered to the host (with FromLocal: local to local, In is usually lo)
	// DNATAddr, if valid, is the address nat PREROUTING/OUTPUT rewrites the
	// destination to; DNATPort, if not 0, the new destination port.
	DNATAddr netip.Addr
	DNATPort uint16
}

// StageTrace is one stage a packet passed.
type StageTrace struct {
	Stage     Stage
	Interface string // interface whose endpoint binding decided the chain
	Decision  Decision
	Packet    classify.Packet // the tuple this stage matched on
	// Postrouting: an output stage judged in mangle POSTROUTING, as Calico
	// polices locally originated traffic that nat OUTPUT DNAT'd. There an
	// Allow only returns (the verdict is NONE: the host's filter OUTPUT
	// rules have already decided) and a Deny is a DROP, never a REJECT.
	Postrouting bool
}

// Trace is every stage a packet passed, in kernel order, and the outcome.
type Trace struct {
	Stages []StageTrace
	// Final is DROP if any stage dropped; otherwise NONE if a filter stage
	// (input, forward, output) left the packet to the host's own rules;
	// otherwise ACCEPT.
	Final Verdict
}

func (t *Trace) add(st Stage, ifc string, d Decision, pkt *classify.Packet) bool {
	t.Stages = append(t.Stages, StageTrace{Stage: st, Interface: ifc, Decision: d, Packet: *pkt})
	return d.Verdict == Drop
}

// addPostrouting adds the output stage of DNAT'd local traffic.
func (t *Trace) addPostrouting(ifc string, d Decision, pkt *classify.Packet) bool {
	if d.Verdict == Accept {
		d.Verdict, d.AcceptMark = None, false
	}
	t.Stages = append(t.Stages, StageTrace{Stage: StageOutput, Interface: ifc, Decision: d, Packet: *pkt, Postrouting: true})
	return d.Verdict == Drop
}

func (t *Trace) finish() Trace {
	t.Final = Accept
	for _, s := range t.Stages {
		switch {
		case s.Decision.Verdict == Drop:
			t.Final = Drop
			return *t
		case s.Decision.Verdict == None && (s.Stage == StageInput || s.Stage == StageOutput || s.Stage == StageForward):
			t.Final = None
		}
	}
	return *t
}

func (path *Path) dnat(pkt *classify.Packet) {
	if path.DNATAddr.IsValid() {
		pkt.Dst = path.DNATAddr
		if path.DNATPort != 0 && pkt.HasPorts() {
			pkt.DstPort = path.DNATPort
		}
	}
}

// Walk passes a synthetic packet through every stage exactly as the kernel
// hooks would, using the same compiled evaluation the engine uses:
// untracked (raw), pre-DNAT (mangle), DNAT, then filter INPUT, FORWARD or
// OUTPUT (with the out-interface's endpoint after DNAT), carrying the
// accept-mark between stages (spec §2, §3.2, §11).
func (p *Program) Walk(path Path, pkt classify.Packet) Trace {
	var t Trace
	pk := pkt
	dnatDone := false
	if path.FromLocal {
		b0ifc := path.OutBeforeDNAT
		if b0ifc.Name == "" {
			b0ifc = path.Out
		}
		b0 := p.Bind(b0ifc)
		outAccepted := false
		if b0.Untracked != NoEndpoint {
			d := p.Untracked(b0.Untracked, Egress, &pk)
			if t.add(StageUntracked, b0ifc.Name, d, &pk) {
				return t.finish()
			}
			outAccepted = d.AcceptMark
		}
		if !outAccepted {
			// NOTRACKed packets bypass the nat table.
			path.dnat(&pk)
			dnatDone = true
		}
		bo := p.Bind(path.Out)
		var d Decision
		switch {
		case outAccepted:
			d = decision(Accept, ReasonEarlierStage, b0.Untracked)
		case bo.Workload:
			d = decision(None, ReasonNotPoliced, NoEndpoint) // host to workload is never policed
		default:
			d = p.Local(bo.Filter, Egress, &pk)
		}
		var dropped bool
		if path.DNATAddr.IsValid() && dnatDone && !bo.Workload {
			// filter OUTPUT skips ctstate DNAT; mangle POSTROUTING polices it.
			dropped = t.addPostrouting(path.Out.Name, d, &pk)
		} else {
			dropped = t.add(StageOutput, path.Out.Name, d, &pk)
		}
		if dropped || !path.ToLocal {
			return t.finish()
		}
		if outAccepted {
			pk.CT = classify.CTUntracked
		}
	}

	// Arrival on path.In: raw PREROUTING, mangle PREROUTING, DNAT.
	bi := p.Bind(path.In)
	accepted := false
	untracked := false
	if bi.Untracked != NoEndpoint {
		d := p.Untracked(bi.Untracked, Ingress, &pk)
		if t.add(StageUntracked, path.In.Name, d, &pk) {
			return t.finish()
		}
		accepted, untracked = d.AcceptMark, d.AcceptMark
		if untracked {
			// NOTRACKed: later stages see ctstate UNTRACKED whatever the flow's state.
			pk.CT = classify.CTUntracked
			// Calico's mangle PREROUTING ACCEPTs a packet carrying the
			// accept mark before its pre-DNAT dispatch, whether or not the
			// interface has pre-DNAT policy (felix/rules/static.go,
			// StaticManglePreroutingChain): the stage's verdict is ACCEPT.
			t.add(StagePreDNAT, path.In.Name, decision(Accept, ReasonEarlierStage, bi.Untracked), &pk)
		}
	}
	if !accepted && bi.PreDNAT != NoEndpoint {
		d := p.PreDNAT(bi.PreDNAT, &pk)
		if t.add(StagePreDNAT, path.In.Name, d, &pk) {
			return t.finish()
		}
		accepted = d.AcceptMark
	}
	if !untracked && !dnatDone {
		path.dnat(&pk)
	}

	if path.ToLocal {
		var d Decision
		switch {
		case bi.Workload && workloadICMPv6(&pk):
			// cali-wl-to-host accepts these before the dispatch, so that
			// neighbour discovery works (checked on Felix v3.32.1).
			d = decision(Accept, ReasonWorkloadICMPv6, NoEndpoint)
		case bi.Workload:
			// cali-INPUT's first rule: every packet from a workload
			// interface goes to the workload dispatch, which drops an
			// unknown interface's before DefaultEndpointToHostAction.
			d = decision(Drop, ReasonUnknownWorkload, NoEndpoint)
		case accepted:
			d = decision(Accept, ReasonEarlierStage, NoEndpoint)
		default:
			d = p.Local(bi.Filter, Ingress, &pk)
		}
		t.add(StageInput, path.In.Name, d, &pk)
		return t.finish()
	}
	bo := p.Bind(path.Out)
	if bi.Workload || bo.Workload {
		d, ifc := p.forwardWorkload(bi, bo, path, accepted, &pk)
		t.add(StageForward, ifc, d, &pk)
		return t.finish()
	}
	d := p.Forward(bi.ForwardIn, bo.Filter, accepted, &pk)
	ifc := path.In.Name
	if d.Endpoint != NoEndpoint && d.Endpoint == bo.Filter && d.Endpoint != bi.ForwardIn {
		ifc = path.Out.Name
	}
	t.add(StageForward, ifc, d, &pk)
	return t.finish()
}

// workloadICMPv6 reports whether pkt is one of the ICMPv6 messages Felix
// accepts from a workload interface to the host (rules/static.go
// ICMPv6Filter): multicast listener query, report and done, router
// solicitation, neighbour solicitation and advertisement.
func workloadICMPv6(pkt *classify.Packet) bool {
	if pkt.Family != classify.IPv6 || pkt.Proto != classify.ProtoICMPv6 || !pkt.HasICMP() {
		return false
	}
	switch pkt.ICMPType {
	case 130, 131, 132, 133, 135, 136:
		return true
	}
	return false
}

// forwardWorkload is cali-FORWARD for traffic from or to a workload
// interface: the in-interface's host endpoint forward chain runs first
// (unless an earlier stage accepted), and only its terminal results stand
// (a drop, or the conntrack ACCEPT of an established flow); then the
// workload dispatch drops the packet, as no workload endpoint is known.
// It returns the decision and the interface it is about.
func (p *Program) forwardWorkload(bi, bo Binding, path Path, accepted bool, pkt *classify.Packet) (Decision, string) {
	if !accepted && p.valid(bi.ForwardIn) {
		d := p.Forward(bi.ForwardIn, NoEndpoint, false, pkt)
		if d.Verdict == Drop || d.Verdict == Accept && d.Reason == ReasonConntrack {
			return d, path.In.Name
		}
	}
	if bi.Workload {
		return decision(Drop, ReasonUnknownWorkload, NoEndpoint), path.In.Name
	}
	return decision(Drop, ReasonUnknownWorkload, NoEndpoint), path.Out.Name
}

// Description is a Decision with names instead of indexes, for traces.
type Description struct {
	Verdict  string
	Reason   string
	Endpoint string // host endpoint name, "" when none
	Tier     string // "" when none
	Policy   string // policy or profile name, "" when none
	Profile  bool   // Policy names a profile
	Rule     int32  // rule index within the policy's direction, NoIndex when none
	Pos      Pos    // where the deciding rule (or policy) was defined, when known
	Logged   bool
}

// Describe names the endpoint, tier, policy and rule of a decision.
func (p *Program) Describe(d Decision) Description {
	out := Description{Verdict: d.Verdict.String(), Reason: d.Reason.String(), Rule: d.Rule, Logged: d.Logged}
	if e := p.Endpoint(d.Endpoint); e != nil {
		out.Endpoint = e.Name
	}
	if d.Tier >= 0 && int(d.Tier) < len(p.r.tiers) {
		out.Tier = p.r.tiers[d.Tier].Name
	}
	if d.Policy >= 0 {
		var rules []Rule
		if d.Reason == ReasonProfile {
			if int(d.Policy) < len(p.cfg.Profiles) {
				pr := &p.cfg.Profiles[d.Policy]
				out.Policy, out.Profile, out.Pos = pr.Name, true, pr.Pos
				rules = pickRules(pr.Ingress, pr.Egress, d)
			}
		} else if int(d.Policy) < len(p.cfg.Policies) {
			pol := &p.cfg.Policies[d.Policy]
			out.Policy, out.Pos = pol.Name, pol.Pos
			rules = pickRules(pol.Ingress, pol.Egress, d)
		}
		if d.Rule >= 0 && int(d.Rule) < len(rules) && rules[d.Rule].Pos.Line != 0 {
			out.Pos = rules[d.Rule].Pos
		}
	}
	return out
}

// pickRules chooses the rules of the decision's direction.
func pickRules(in, eg []Rule, d Decision) []Rule {
	if d.Dir == Egress {
		return eg
	}
	return in
}

func (d Description) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s)", d.Verdict, d.Reason)
	if d.Endpoint != "" {
		fmt.Fprintf(&b, " endpoint %s", d.Endpoint)
	}
	if d.Tier != "" {
		fmt.Fprintf(&b, " tier %s", d.Tier)
	}
	if d.Policy != "" {
		kind := "policy"
		if d.Profile {
			kind = "profile"
		}
		fmt.Fprintf(&b, " %s %s", kind, d.Policy)
	}
	if d.Rule >= 0 {
		fmt.Fprintf(&b, " rule %d", d.Rule)
	}
	if d.Pos.File != "" {
		fmt.Fprintf(&b, " at %s:%d", d.Pos.File, d.Pos.Line)
	}
	if d.Logged {
		b.WriteString(" [logged]")
	}
	return b.String()
}
