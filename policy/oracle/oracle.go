// Package oracle is a plain, in-order evaluator of nfgate's policy model,
// written straight from the reference decision procedure (docs spec §11) with
// no decision trees and no precomputed address sets. It shares only the
// resolved model (endpoints, labels, sorted plans) with the compiled
// policy.Program, and gives the same Decision for every stage: tests, fuzzing
// and benchmarks compare the two.
package oracle

import (
	"net/netip"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/selector"
)

// Oracle evaluates a Program's resolved model rule by rule.
type Oracle struct {
	p    *policy.Program
	cfg  *policy.Config
	sels map[*policy.EntityRule]*selector.Selector
}

// New returns an oracle over p's configuration and resolved endpoints.
// An Oracle is not safe for concurrent use.
func New(p *policy.Program) *Oracle {
	return &Oracle{p: p, cfg: p.Config(), sels: map[*policy.EntityRule]*selector.Selector{}}
}

func dec(v policy.Verdict, r policy.Reason, ep policy.EndpointID) policy.Decision {
	return policy.Decision{Verdict: v, Reason: r, Endpoint: ep, Tier: policy.NoIndex, Policy: policy.NoIndex, Rule: policy.NoIndex}
}

func family(pkt *classify.Packet) uint8 {
	switch pkt.Family {
	case classify.IPv4:
		if (pkt.Src.Is4() || pkt.Src.Is4In6()) && (pkt.Dst.Is4() || pkt.Dst.Is4In6()) {
			return 4
		}
	case classify.IPv6:
		if pkt.Src.Is6() && pkt.Dst.Is6() {
			return 6
		}
	}
	return 0
}

func usable(pkt *classify.Packet) bool {
	return pkt.Class != classify.Malformed && family(pkt) != 0
}

func famOf(a netip.Addr) uint8 {
	if a.Is4() {
		return 4
	}
	return 6
}

// ruleVersion: ipVersion, else inferred from the protocol names ICMP/ICMPv6.
func ruleVersion(r *policy.Rule) uint8 {
	if r.IPVersion != 0 {
		return r.IPVersion
	}
	if r.Protocol != nil && r.Protocol.Named {
		switch r.Protocol.Num {
		case 1:
			return 4
		case 58:
			return 6
		}
	}
	return 0
}

func (o *Oracle) match(r *policy.Rule, pkt *classify.Packet) bool {
	fam := family(pkt)
	if v := ruleVersion(r); v != 0 && v != fam {
		return false
	}
	// A net list holding only nets of the other family means the rule is
	// not rendered for this family at all.
	for _, nets := range [][]netip.Prefix{r.Source.Nets, r.Source.NotNets, r.Destination.Nets, r.Destination.NotNets} {
		if len(nets) == 0 {
			continue
		}
		ok := false
		for _, n := range nets {
			if famOf(n.Addr()) == fam {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	if r.Protocol != nil && pkt.Proto != r.Protocol.Num {
		return false
	}
	if r.NotProtocol != nil && pkt.Proto == r.NotProtocol.Num {
		return false
	}
	// icmp: {} and notICMP: {} (no type) render no ICMP match at all.
	if m := r.ICMP; m != nil && m.HasType {
		if !pkt.HasICMP() || pkt.ICMPType != m.Type {
			return false
		}
		if m.HasCode && pkt.ICMPCode != m.Code {
			return false
		}
	}
	if m := r.NotICMP; m != nil && m.HasType {
		// "! --icmp-type t[/c]": an ICMP packet without that type[/code];
		// the kernel's icmp match fails on a fragment before negating.
		if !pkt.HasICMP() {
			return false
		}
		if pkt.ICMPType == m.Type && (!m.HasCode || pkt.ICMPCode == m.Code) {
			return false
		}
	}
	src, dst := pkt.Src, pkt.Dst
	if fam == 4 {
		src, dst = src.Unmap(), dst.Unmap()
	}
	return o.entity(&r.Source, r.Protocol, src, pkt, pkt.SrcPort) &&
		o.entity(&r.Destination, r.Protocol, dst, pkt, pkt.DstPort)
}

func (o *Oracle) entity(e *policy.EntityRule, ruleProto *policy.Protocol, addr netip.Addr, pkt *classify.Packet, port uint16) bool {
	if e.Services != nil {
		return false // a Kubernetes service's endpoints: none on a gateway
	}
	if len(e.Nets) > 0 {
		in := false
		for _, n := range e.Nets {
			if n.Contains(addr) {
				in = true
			}
		}
		if !in {
			return false
		}
	}
	for _, n := range e.NotNets {
		if n.Contains(addr) {
			return false
		}
	}
	// The positive selector Calico's conversion builds (selector, namespace
	// and service account parts), with notSelector folded in when there is
	// one; a notSelector alone excludes what it selects.
	posSel := o.positive(e)
	pos := func(l map[string]string) bool {
		return posSel.Evaluate(l) && (e.NotSelector == nil || !e.NotSelector.Evaluate(l))
	}
	if posSel != nil {
		if !o.selected(addr, pos) {
			return false
		}
	} else if e.NotSelector != nil {
		if o.selected(addr, e.NotSelector.Evaluate) {
			return false
		}
	}
	named := func(name string) bool {
		return pkt.HasPorts() && o.namedPort(name, posSel != nil, pos, ruleProto, addr, pkt.Proto, port)
	}
	// ports: one of them matches; a numeric match (-m multiport) never
	// matches a packet without ports.
	if len(e.Ports) > 0 {
		hit := false
		for _, pt := range e.Ports {
			if pt.Name == "" {
				hit = hit || pkt.HasPorts() && port >= pt.Min && port <= pt.Max
			} else {
				hit = hit || named(pt.Name)
			}
		}
		if !hit {
			return false
		}
	}
	// notPorts, ANDed with ports: a negated numeric match never matches a
	// packet without ports either; a negated named-port ipset match does,
	// since such a packet is never a member of an ip,port set.
	for _, pt := range e.NotPorts {
		if pt.Name == "" {
			if !pkt.HasPorts() || port >= pt.Min && port <= pt.Max {
				return false
			}
		} else if named(pt.Name) {
			return false
		}
	}
	return true
}

// positive returns e's positive selector as Calico's datastore conversion
// builds it (policy.EndpointSelector), computed once per entity rule.
func (o *Oracle) positive(e *policy.EntityRule) *selector.Selector {
	if s, ok := o.sels[e]; ok {
		return s
	}
	s, err := policy.EndpointSelector(e)
	if err != nil {
		panic(err) // Compile already computed it without error
	}
	o.sels[e] = s
	return s
}

// selected reports whether addr belongs to a host endpoint (its expectedIPs)
// or a network set, global or namespaced (its nets), whose labels satisfy
// pred.
func (o *Oracle) selected(addr netip.Addr, pred func(selector.Labels) bool) bool {
	for i, h := range o.allHosts() {
		if !pred(o.labels(i, h)) {
			continue
		}
		for _, ip := range h.ExpectedIPs {
			if ip.Unmap().WithZone("") == addr {
				return true
			}
		}
	}
	for i := range o.cfg.NetworkSets {
		ns := &o.cfg.NetworkSets[i]
		if !pred(policy.NetworkSetLabels(o.cfg, ns)) {
			continue
		}
		for _, n := range ns.Nets {
			if n.Contains(addr) {
				return true
			}
		}
	}
	return false
}

// namedPort reports whether (addr, proto, port) is a member of the named
// port's IP set: a port called name, of a host endpoint the side's positive
// selector selects (every endpoint without one), at one of its expectedIPs,
// whose protocol the rule allows: any protocol when the rule has none
// (Felix ipsetmember.ProtocolAny), else the rule's (UDP, SCTP, else TCP).
func (o *Oracle) namedPort(name string, hasPos bool, pos func(selector.Labels) bool, ruleProto *policy.Protocol, addr netip.Addr, proto uint8, port uint16) bool {
	for i, h := range o.allHosts() {
		if hasPos && !pos(o.labels(i, h)) {
			continue
		}
		for _, ep := range h.Ports {
			if ep.Name != name || ep.Protocol != proto || ep.Port != port {
				continue
			}
			if ruleProto != nil {
				want := uint8(classify.ProtoTCP)
				if ruleProto.Num == classify.ProtoUDP || ruleProto.Num == 132 {
					want = ruleProto.Num
				}
				if ep.Protocol != want {
					continue
				}
			}
			for _, ip := range h.ExpectedIPs {
				if ip.Unmap().WithZone("") == addr {
					return true
				}
			}
		}
	}
	return false
}

type outcome uint8

const (
	none outcome = iota
	allow
	deny
)

// evalTiers is §11 evalTiers, reporting the deciding rule.
func (o *Oracle) evalTiers(pl *policy.Plan, dir policy.Dir, pkt *classify.Packet, defaultDrop bool, ep policy.EndpointID) (outcome, policy.Decision) {
	logged := false
	for ti := range pl.Tiers {
		t := &pl.Tiers[ti]
		pols := t.Policies(dir)
		if len(pols) == 0 {
			continue
		}
		passed, enforced := false, false
	policies:
		for _, pi := range pols {
			pol := &o.cfg.Policies[pi]
			if pol.Staged {
				continue // a staged policy's chain is never jumped to
			}
			enforced = true
			rules := pol.Ingress
			if dir == policy.Egress {
				rules = pol.Egress
			}
			for ri := range rules {
				r := &rules[ri]
				if !o.match(r, pkt) {
					continue
				}
				d := policy.Decision{Reason: policy.ReasonRule, Endpoint: ep, Tier: t.Tier, Policy: pi, Rule: int32(ri), Dir: dir, Logged: logged}
				switch r.Action {
				case policy.Log:
					logged = true
					continue
				case policy.Allow:
					d.Verdict = policy.Accept
					return allow, d
				case policy.Deny:
					d.Verdict = policy.Drop
					return deny, d
				case policy.Pass:
					passed = true
					break policies
				}
			}
		}
		// Felix drops at the end of a tier only when one of its policies
		// in this direction is not staged.
		if !passed && enforced && defaultDrop && t.DefaultAction != policy.TierPass {
			d := dec(policy.Drop, policy.ReasonEndOfTier, ep)
			d.Tier, d.Logged = t.Tier, logged
			return deny, d
		}
	}
	d := dec(policy.None, policy.ReasonNoMatch, ep)
	d.Logged = logged
	return none, d
}

func (o *Oracle) evalProfiles(e *policy.Endpoint, dir policy.Dir, pkt *classify.Packet, logged bool) policy.Decision {
	for _, pi := range e.Profiles {
		pr := &o.cfg.Profiles[pi]
		rules := pr.Ingress
		if dir == policy.Egress {
			rules = pr.Egress
		}
	rules:
		for ri := range rules {
			r := &rules[ri]
			if !o.match(r, pkt) {
				continue
			}
			d := policy.Decision{Reason: policy.ReasonProfile, Endpoint: e.ID, Tier: policy.NoIndex, Policy: pi, Rule: int32(ri), Dir: dir, Logged: logged}
			switch r.Action {
			case policy.Log:
				logged = true
			case policy.Allow:
				d.Verdict = policy.Accept
				return d
			case policy.Deny:
				d.Verdict = policy.Drop
				return d
			case policy.Pass:
				break rules
			}
		}
	}
	d := dec(policy.Drop, policy.ReasonNoProfile, e.ID)
	d.Logged = logged
	return d
}

func (o *Oracle) endpoint(ep policy.EndpointID) *policy.Endpoint { return o.p.Endpoint(ep) }

func established(pkt *classify.Packet) bool {
	return pkt.CT == classify.CTEstablished || pkt.CT == classify.CTRelated
}

func (o *Oracle) invalid(pkt *classify.Packet) bool {
	return pkt.CT == classify.CTInvalid && !o.cfg.Settings.DisableConntrackInvalidCheck
}

// failsafe: inbound entries match protocol + destination port (+ source net),
// outbound ones protocol + destination port (+ destination net). raw adds the
// reply rules: the other list on the source port.
func (o *Oracle) failsafe(dir policy.Dir, pkt *classify.Packet, raw bool) bool {
	if !pkt.HasPorts() {
		return false
	}
	s := &o.cfg.Settings
	hit := func(list []policy.ProtoPort, port uint16, addr netip.Addr) bool {
		for _, fs := range list {
			if fs.Protocol != pkt.Proto || fs.Port != port {
				continue
			}
			if !fs.Net.IsValid() {
				return true
			}
			// A net is rendered only into its own family's table.
			if fs.Net.Addr().Is4() && family(pkt) == 4 && fs.Net.Contains(addr.Unmap()) {
				return true
			}
			if !fs.Net.Addr().Is4() && family(pkt) == 6 && fs.Net.Contains(addr) {
				return true
			}
		}
		return false
	}
	if dir == policy.Ingress {
		return hit(s.FailsafeInbound, pkt.DstPort, pkt.Src) || (raw && hit(s.FailsafeOutbound, pkt.SrcPort, pkt.Src))
	}
	return hit(s.FailsafeOutbound, pkt.DstPort, pkt.Dst) || (raw && hit(s.FailsafeInbound, pkt.SrcPort, pkt.Dst))
}

// Untracked mirrors policy.Program.Untracked.
func (o *Oracle) Untracked(ep policy.EndpointID, dir policy.Dir, pkt *classify.Packet) policy.Decision {
	e := o.endpoint(ep)
	if e == nil || e.Plan(policy.PlanUntracked).Empty() {
		return dec(policy.None, policy.ReasonNotPoliced, ep)
	}
	if !usable(pkt) {
		return dec(policy.Drop, policy.ReasonMalformed, ep)
	}
	if o.failsafe(dir, pkt, true) {
		return dec(policy.Accept, policy.ReasonFailsafe, ep)
	}
	r, d := o.evalTiers(e.Plan(policy.PlanUntracked), dir, pkt, false, ep)
	d.AcceptMark = r == allow
	return d
}

// PreDNAT mirrors policy.Program.PreDNAT.
func (o *Oracle) PreDNAT(ep policy.EndpointID, pkt *classify.Packet) policy.Decision {
	e := o.endpoint(ep)
	if e == nil || e.Plan(policy.PlanPreDNAT).Empty() {
		return dec(policy.None, policy.ReasonNotPoliced, ep)
	}
	if established(pkt) {
		return dec(policy.None, policy.ReasonConntrack, ep)
	}
	if !usable(pkt) {
		return dec(policy.Drop, policy.ReasonMalformed, ep)
	}
	if o.invalid(pkt) {
		return dec(policy.Drop, policy.ReasonConntrack, ep)
	}
	if o.failsafe(policy.Ingress, pkt, false) {
		return dec(policy.Accept, policy.ReasonFailsafe, ep)
	}
	r, d := o.evalTiers(e.Plan(policy.PlanPreDNAT), policy.Ingress, pkt, false, ep)
	d.AcceptMark = r == allow
	return d
}

// Local mirrors policy.Program.Local (§11 normalChain).
func (o *Oracle) Local(ep policy.EndpointID, dir policy.Dir, pkt *classify.Packet) policy.Decision {
	e := o.endpoint(ep)
	if e == nil {
		return dec(policy.None, policy.ReasonNotPoliced, ep)
	}
	if established(pkt) {
		return dec(policy.Accept, policy.ReasonConntrack, ep)
	}
	if !usable(pkt) {
		return dec(policy.Drop, policy.ReasonMalformed, ep)
	}
	if o.invalid(pkt) {
		return dec(policy.Drop, policy.ReasonConntrack, ep)
	}
	if o.failsafe(dir, pkt, false) {
		return dec(policy.Accept, policy.ReasonFailsafe, ep)
	}
	r, d := o.evalTiers(e.Plan(policy.PlanNormal), dir, pkt, true, ep)
	if r != none {
		return d
	}
	return o.evalProfiles(e, dir, pkt, d.Logged)
}

type fwd uint8

const (
	fwdNone fwd = iota
	fwdAcceptMark
	fwdAcceptNow
	fwdDrop
)

// forwardChain is §11 forwardChain.
func (o *Oracle) forwardChain(ep policy.EndpointID, dir policy.Dir, pkt *classify.Packet) (fwd, policy.Decision) {
	e := o.endpoint(ep)
	if established(pkt) {
		return fwdAcceptNow, dec(policy.Accept, policy.ReasonConntrack, ep)
	}
	if !usable(pkt) {
		return fwdDrop, dec(policy.Drop, policy.ReasonMalformed, ep)
	}
	if o.invalid(pkt) {
		return fwdDrop, dec(policy.Drop, policy.ReasonConntrack, ep)
	}
	if e.Plan(policy.PlanForward).Empty() {
		d := dec(policy.Accept, policy.ReasonDefaultAllowForward, ep)
		d.AcceptMark = true
		return fwdAcceptMark, d
	}
	switch r, d := o.evalTiers(e.Plan(policy.PlanForward), dir, pkt, true, ep); r {
	case allow:
		d.AcceptMark = true
		return fwdAcceptMark, d
	case deny:
		return fwdDrop, d
	default:
		return fwdNone, d
	}
}

// Forward mirrors policy.Program.Forward (§11 FORWARD).
func (o *Oracle) Forward(in, out policy.EndpointID, accepted bool, pkt *classify.Packet) policy.Decision {
	mark := accepted
	d := dec(policy.None, policy.ReasonNotPoliced, policy.NoEndpoint)
	if accepted {
		d = dec(policy.Accept, policy.ReasonEarlierStage, policy.NoEndpoint)
	}
	logged := false
	if !accepted && o.endpoint(in) != nil {
		r, di := o.forwardChain(in, policy.Ingress, pkt)
		if r == fwdAcceptNow || r == fwdDrop {
			return di
		}
		mark = r == fwdAcceptMark
		logged = di.Logged
		d = di
	}
	if o.endpoint(out) != nil {
		r, do := o.forwardChain(out, policy.Egress, pkt)
		do.Logged = do.Logged || logged
		if r == fwdAcceptNow || r == fwdDrop {
			return do
		}
		mark = r == fwdAcceptMark
		d = do
	}
	d.Logged = d.Logged || logged
	d.AcceptMark = mark
	d.Verdict = policy.None
	if mark {
		d.Verdict = policy.Accept
	}
	return d
}

// allHosts lists this node's host endpoints, then other nodes': rule
// selectors see both (Calico builds IP sets from every node's endpoints).
func (o *Oracle) allHosts() []*policy.HostEndpoint {
	out := make([]*policy.HostEndpoint, 0, len(o.cfg.HostEndpoints)+len(o.cfg.RemoteHostEndpoints))
	for i := range o.cfg.HostEndpoints {
		out = append(out, &o.cfg.HostEndpoints[i])
	}
	for i := range o.cfg.RemoteHostEndpoints {
		out = append(out, &o.cfg.RemoteHostEndpoints[i])
	}
	return out
}

// labels returns the labels of allHosts()[i].
func (o *Oracle) labels(i int, h *policy.HostEndpoint) map[string]string {
	if i < len(o.cfg.HostEndpoints) {
		return o.p.Endpoints()[i].Labels
	}
	return policy.HostEndpointLabels(o.cfg, h)
}
