package policy

import (
	"net/netip"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy/dtree"
	"github.com/nfgate/nfgate/policy/selector"
)

// A rule, for one address family, factored into independent set-valued
// parts (spec §6). Its match set is the product of the parts, so it expands
// into hyper-rectangles for the decision tree, or is matched part by part
// when the product is too large.

// maxRectsPerRule caps a rule's expansion; larger rules are matched in order
// by the exact slow matcher.
var maxRectsPerRule = 4096

// namedPort is one (address, protocol, port) member of a named-port set.
type namedPort struct {
	addr  u128
	proto uint8
	port  uint16
}

// side is a rule's source or destination for one family. Its parts are
// ANDed (spec Corrections 1): the address set, then, when the rule has
// ports, a port in the numeric ranges or a named-port member, then, when it
// has notPorts, a port outside the numeric notPorts and not a named-port
// member.
type side struct {
	addrs spans

	hasPorts bool
	ports    []rng       // numeric ports ranges
	named    []namedPort // named ports members: more alternatives

	hasNot bool
	// notAllowed is the complement of the numeric notPorts within
	// [0, 65535], or [0, NoPort] when notPorts has only named ports.
	notAllowed []rng
	notNamed   []namedPort // named notPorts members: exclusions
}

// frule is a factored rule: the rule matches a key iff every part matches.
type frule struct {
	protos []rng    // allowed protocols
	icmp   [][2]rng // allowed (type, code) pairs; NoICMP included in the wildcard
	src    side
	dst    side
}

var (
	anyAddrPortProto = rng{0, dtree.NoPort}
	anyICMP          = [2]rng{{0, dtree.NoICMP}, {0, dtree.NoICMP}}
)

// Shared, never modified, parts of frules: most rules have these, and an
// frule is built per rule and family at every compile.
var (
	allProtos = []rng{{0, 255}}
	oneProto  = func() (p [256][1]rng) {
		for i := range p {
			p[i][0] = rng{uint32(i), uint32(i)}
		}
		return p
	}()
	anyICMPs = [][2]rng{anyICMP}
)

// addrEntry is a labelled set of addresses a rule selector can select: a
// HostEndpoint (its expectedIPs, with its ports) or a GlobalNetworkSet.
type addrEntry struct {
	labels map[string]string
	spans  [2]spans // [0] IPv4, [1] IPv6
	ports  []EndpointPort
	addrs  []u128Fam // expectedIPs, for named ports
}

type u128Fam struct {
	a   u128
	fam uint8
}

func famIdx(fam uint8) int {
	if fam == 6 {
		return 1
	}
	return 0
}

// buildSide factors one entity rule for family fam; pos is its positive
// selector (EndpointSelector, nil when none). ok is false when the side can
// never match.
func buildSide(e *EntityRule, pos *selector.Selector, fam uint8, ruleProto *Protocol, entries []addrEntry) (side, bool) {
	s := side{addrs: fullSpans(fam)}
	if len(e.Nets) > 0 {
		s.addrs = s.addrs.intersect(prefixSpans(e.Nets, fam))
	}
	if len(e.NotNets) > 0 {
		s.addrs = s.addrs.intersect(prefixSpans(e.NotNets, fam).complement(fam))
	}
	// With a positive selector, notSelector narrows it (Felix
	// combineMatchesIfPossible); alone, it excludes what it selects.
	not := e.NotSelector
	selected := func(l map[string]string) bool {
		return pos.Evaluate(l) && (not == nil || !not.Evaluate(l))
	}
	if pos != nil {
		var sel spans
		for i := range entries {
			if selected(entries[i].labels) {
				sel = append(sel, entries[i].spans[famIdx(fam)]...)
			}
		}
		s.addrs = s.addrs.intersect(normalize(sel))
	} else if not != nil {
		var sel spans
		for i := range entries {
			if not.Evaluate(entries[i].labels) {
				sel = append(sel, entries[i].spans[famIdx(fam)]...)
			}
		}
		s.addrs = s.addrs.intersect(normalize(sel).complement(fam))
	}
	if len(s.addrs) == 0 {
		return s, false
	}

	// members lists the (address, protocol, port) members of the named
	// port's IP set: every selected endpoint's port of that name whose
	// protocol the rule allows, on its addresses of this family. Felix
	// filters named ports by the positive selector only, also for notPorts.
	proto, anyProto := namedPortProto(ruleProto)
	members := func(name string, out []namedPort) []namedPort {
		for i := range entries {
			en := &entries[i]
			if en.ports == nil || (pos != nil && !selected(en.labels)) {
				continue
			}
			for _, ep := range en.ports {
				if ep.Name != name || !anyProto && ep.Protocol != proto {
					continue
				}
				for _, a := range en.addrs {
					if a.fam == fam && s.addrs.contains(a.a) {
						out = append(out, namedPort{addr: a.a, proto: ep.Protocol, port: ep.Port})
					}
				}
			}
		}
		return out
	}
	if len(e.Ports) > 0 {
		s.hasPorts = true
		var numeric []rng
		for _, p := range e.Ports {
			if p.Name == "" {
				numeric = append(numeric, rng{uint32(p.Min), uint32(p.Max)})
			} else {
				s.named = members(p.Name, s.named)
			}
		}
		s.ports = normRanges(numeric)
		if len(s.ports) == 0 && len(s.named) == 0 {
			return s, false
		}
	}
	if len(e.NotPorts) > 0 {
		s.hasNot = true
		var numeric []rng
		for _, p := range e.NotPorts {
			if p.Name == "" {
				numeric = append(numeric, rng{uint32(p.Min), uint32(p.Max)})
			} else {
				s.notNamed = members(p.Name, s.notNamed)
			}
		}
		numeric = normRanges(numeric)
		if len(numeric) == 0 {
			// Only named notPorts: "! --match-set ip,port" also matches a
			// packet without ports (the kernel's ipset lookup fails, so it
			// is a non-member); a numeric "! --dports" never does.
			s.notAllowed = []rng{{0, dtree.NoPort}}
		} else {
			s.notAllowed = complementRanges(numeric, 65535)
		}
		if len(s.notAllowed) == 0 {
			return s, false
		}
	}
	if s.hasPorts && s.hasNot {
		// Drop what the notPorts exclude from the positive alternatives.
		var ports []rng
		for _, a := range s.ports {
			for _, b := range s.notAllowed {
				if r, ok := intersectRng(a, b); ok {
					ports = append(ports, r)
				}
			}
		}
		s.ports = ports
		named := s.named[:0:0]
		for _, n := range s.named {
			if inRanges(s.notAllowed, uint32(n.port)) && !s.notHit(n.addr, uint32(n.proto), uint32(n.port)) {
				named = append(named, n)
			}
		}
		s.named = named
		if len(s.ports) == 0 && len(s.named) == 0 {
			return s, false
		}
	}
	return s, true
}

// namedPortProto is the protocol of the endpoint ports a rule's named port
// selects: the rule's protocol (Felix ipsetmember.ProtocolFrom: UDP, SCTP,
// else TCP), or any protocol when the rule has none (rule_scanner.go:
// namedPortProto := ipsetmember.ProtocolAny); each member keeps the
// endpoint port's own protocol.
func namedPortProto(ruleProto *Protocol) (proto uint8, any bool) {
	if ruleProto == nil {
		return 0, true
	}
	switch ruleProto.Num {
	case classify.ProtoUDP, 132:
		return ruleProto.Num, false
	}
	return classify.ProtoTCP, false
}

// ruleFamily is the family a rule is restricted to by ipVersion, or inferred
// from the protocol name ICMP / ICMPv6 (spec §6); 0 for both.
func ruleFamily(r *Rule) uint8 {
	if r.IPVersion != 0 {
		return r.IPVersion
	}
	if r.Protocol != nil && r.Protocol.Named {
		switch r.Protocol.Num {
		case classify.ProtoICMP:
			return 4
		case classify.ProtoICMPv6:
			return 6
		}
	}
	return 0
}

// renderedFor reports whether Felix renders the rule for family fam: not if
// ipVersion says otherwise, nor if one of its net lists holds only nets of the
// other family (spec §6, FilterRuleToIPVersion).
func renderedFor(r *Rule, fam uint8) bool {
	if f := ruleFamily(r); f != 0 && f != fam {
		return false
	}
	for _, nets := range [...][]netip.Prefix{r.Source.Nets, r.Source.NotNets, r.Destination.Nets, r.Destination.NotNets} {
		if len(nets) == 0 {
			continue
		}
		ok := false
		for _, n := range nets {
			if n.IsValid() && prefixFamily(n) == fam {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// factor builds the factored form of r for family fam; sels holds the entity
// rules' positive selectors. ok is false when the rule can never match a
// packet of that family.
func factor(r *Rule, fam uint8, entries []addrEntry, sels map[*EntityRule]*selector.Selector) (f frule, ok bool) {
	if !renderedFor(r, fam) || r.Source.Services != nil || r.Destination.Services != nil {
		return f, false
	}
	f.protos = allProtos
	if r.Protocol != nil {
		f.protos = oneProto[r.Protocol.Num][:]
	}
	if r.NotProtocol != nil {
		n := uint32(r.NotProtocol.Num)
		var out []rng
		for _, p := range f.protos {
			if n < p[0] || n > p[1] {
				out = append(out, p)
				continue
			}
			if n > p[0] {
				out = append(out, rng{p[0], n - 1})
			}
			if n < p[1] {
				out = append(out, rng{n + 1, p[1]})
			}
		}
		f.protos = out
	}
	if len(f.protos) == 0 {
		return f, false
	}

	// icmp/notICMP without a type (icmp: {}) render no ICMP match at all
	// (Felix rule_convert.go: the match needs ICMPType); with a type, the
	// kernel's icmp match never matches a packet whose ICMP header it cannot
	// read, negated or not (NoICMP is outside every allowed range).
	f.icmp = anyICMPs
	if m := r.ICMP; m != nil && m.HasType {
		p := [2]rng{{uint32(m.Type), uint32(m.Type)}, {0, 255}}
		if m.HasCode {
			p[1] = rng{uint32(m.Code), uint32(m.Code)}
		}
		f.icmp = [][2]rng{p}
	}
	if m := r.NotICMP; m != nil && m.HasType {
		var allowed [][2]rng
		t := uint32(m.Type)
		for _, tr := range complementRanges([]rng{{t, t}}, 255) {
			allowed = append(allowed, [2]rng{tr, {0, 255}})
		}
		if m.HasCode {
			c := uint32(m.Code)
			for _, cr := range complementRanges([]rng{{c, c}}, 255) {
				allowed = append(allowed, [2]rng{{t, t}, cr})
			}
		}
		var out [][2]rng
		for _, a := range f.icmp {
			for _, b := range allowed {
				t, ok1 := intersectRng(a[0], b[0])
				c, ok2 := intersectRng(a[1], b[1])
				if ok1 && ok2 {
					out = append(out, [2]rng{t, c})
				}
			}
		}
		f.icmp = out
	}
	if len(f.icmp) == 0 {
		return f, false
	}

	var okS, okD bool
	f.src, okS = buildSide(&r.Source, sels[&r.Source], fam, r.Protocol, entries)
	f.dst, okD = buildSide(&r.Destination, sels[&r.Destination], fam, r.Protocol, entries)
	return f, okS && okD
}

// sideRect is one rectangle of a side: addresses × ports, restricted to protocols.
type sideRect struct {
	addr  [2]u128
	port  rng
	proto rng
}

// rects appends a side's rectangles to out; ok is false when the side cannot
// be expanded exactly (named notPorts) or would exceed limit rectangles.
func (s *side) rects(out []sideRect, limit int) ([]sideRect, bool) {
	anyProto := rng{0, 255}
	if len(s.notNamed) > 0 {
		return out, false
	}
	ports := s.ports
	switch {
	case !s.hasPorts && !s.hasNot:
		ports = []rng{anyAddrPortProto}
	case !s.hasPorts:
		ports = s.notAllowed
	}
	if len(s.addrs)*len(ports)+len(s.named) > limit {
		return out, false
	}
	for _, a := range s.addrs {
		for _, p := range ports {
			out = append(out, sideRect{addr: [2]u128{a.lo, a.hi}, port: p, proto: anyProto})
		}
	}
	for _, n := range s.named {
		out = append(out, sideRect{addr: [2]u128{n.addr, n.addr}, port: rng{uint32(n.port), uint32(n.port)}, proto: rng{uint32(n.proto), uint32(n.proto)}})
	}
	return out, true
}

// expander expands frules, reusing its buffers.
type expander struct {
	src, dst []sideRect
}

// expand appends the rule's rectangles (Priority unset) to out, or returns
// out unchanged and ok=false when they would exceed limit.
func (x *expander) expand(f *frule, out []dtree.Rule, limit int) ([]dtree.Rule, bool) {
	src, ok := f.src.rects(x.src[:0], limit)
	x.src = src
	if !ok {
		return out, false
	}
	dst, ok := f.dst.rects(x.dst[:0], limit)
	x.dst = dst
	if !ok {
		return out, false
	}
	if len(f.protos)*len(f.icmp)*len(src)*len(dst) > limit {
		return out, false
	}
	for _, p := range f.protos {
		for _, ic := range f.icmp {
			for _, s := range src {
				ps, ok := intersectRng(p, s.proto)
				if !ok {
					continue
				}
				for _, d := range dst {
					pd, ok := intersectRng(ps, d.proto)
					if !ok {
						continue
					}
					out = append(out, dtree.Rule{
						Src: s.addr, Dst: d.addr,
						Proto: pd, SPort: s.port, DPort: d.port,
						ICMPType: ic[0], ICMPCode: ic[1],
					})
				}
			}
		}
	}
	return out, true
}

func (s *side) match(a u128, proto, port uint32) bool {
	if !s.addrs.contains(a) {
		return false
	}
	if s.hasPorts && !inRanges(s.ports, port) && !s.namedHit(a, proto, port) {
		return false
	}
	if s.hasNot && (!inRanges(s.notAllowed, port) || s.notHit(a, proto, port)) {
		return false
	}
	return true
}

func (s *side) namedHit(a u128, proto, port uint32) bool { return hitNamed(s.named, a, proto, port) }
func (s *side) notHit(a u128, proto, port uint32) bool   { return hitNamed(s.notNamed, a, proto, port) }

func hitNamed(l []namedPort, a u128, proto, port uint32) bool {
	for i := range l {
		n := &l[i]
		if n.addr == a && uint32(n.proto) == proto && uint32(n.port) == port {
			return true
		}
	}
	return false
}

// match is the exact slow matcher: it allocates nothing.
func (f *frule) match(k *dtree.Key) bool {
	if !inRanges(f.protos, k.Proto) {
		return false
	}
	hit := false
	for _, ic := range f.icmp {
		if k.ICMPType >= ic[0][0] && k.ICMPType <= ic[0][1] && k.ICMPCode >= ic[1][0] && k.ICMPCode <= ic[1][1] {
			hit = true
			break
		}
	}
	return hit && f.src.match(k.Src, k.Proto, k.SPort) && f.dst.match(k.Dst, k.Proto, k.DPort)
}
