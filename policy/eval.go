package policy

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy/dtree"
)

// Program is a compiled, immutable configuration. All methods are safe for
// concurrent use; the evaluation methods allocate nothing and return no errors.
// A new configuration builds a new Program, which the engine swaps in atomically.
type Program struct {
	cfg  *Config
	r    *resolved
	eps  []epChains
	fsIn []ProtoPort
}

// chain slots of an endpoint
const (
	chUntrackedIn = iota
	chUntrackedOut
	chPreDNAT
	chNormalIn
	chNormalOut
	chForwardIn
	chForwardOut
	numChains
)

type epChains struct {
	c [numChains][2]*chain // [slot][family index]
}

// Compile builds a Program from a validated Config.
func Compile(cfg *Config) (*Program, error) {
	if cfg == nil {
		return nil, errors.New("policy: nil config")
	}
	cfg = withMissingProfiles(cfg)
	r, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	p := &Program{cfg: cfg, r: r}
	entries := addrEntries(cfg, p.r)
	p.eps = make([]epChains, len(p.r.endpoints))
	cb := &chainBuilder{entries: entries, sels: r.sels}
	// A chain depends only on what it evaluates, not on the endpoint, so
	// identical chains share one immutable build: the normal and forward
	// egress chains of an endpoint whose policies are all applyOnForward,
	// and endpoints selected by the same policies.
	memo := map[string]*chain{}
	var key []byte
	build := func(pl *Plan, dir Dir, fam uint8, endOfTier bool, profiles []int32) *chain {
		key = chainKey(key[:0], pl, dir, fam, endOfTier, profiles)
		if c, ok := memo[string(key)]; ok {
			return c
		}
		c := cb.build(cfg, pl, dir, fam, endOfTier, profiles)
		memo[string(key)] = c
		return c
	}
	for i := range p.r.endpoints {
		e := &p.r.endpoints[i]
		ec := &p.eps[i]
		for fi, fam := range [2]uint8{4, 6} {
			ec.c[chUntrackedIn][fi] = build(&e.Plans[PlanUntracked], Ingress, fam, false, nil)
			ec.c[chUntrackedOut][fi] = build(&e.Plans[PlanUntracked], Egress, fam, false, nil)
			ec.c[chPreDNAT][fi] = build(&e.Plans[PlanPreDNAT], Ingress, fam, false, nil)
			ec.c[chNormalIn][fi] = build(&e.Plans[PlanNormal], Ingress, fam, true, e.Profiles)
			ec.c[chNormalOut][fi] = build(&e.Plans[PlanNormal], Egress, fam, true, e.Profiles)
			ec.c[chForwardIn][fi] = build(&e.Plans[PlanForward], Ingress, fam, true, nil)
			ec.c[chForwardOut][fi] = build(&e.Plans[PlanForward], Egress, fam, true, nil)
		}
	}
	return p, nil
}

// DefaultAllowProfile is the profile Calico's etcd datastore always holds
// (libcalico-go etcdv3 static resources): it allows everything.
const DefaultAllowProfile = "projectcalico-default-allow"

// withMissingProfiles returns cfg, or a copy with a Profile for every
// profile a host endpoint names that is not defined: Calico's built-in
// default-allow profile, or else Felix's DummyDropRules (one Deny rule each
// way, Profile.Missing). The caller's Config is never modified.
func withMissingProfiles(cfg *Config) *Config {
	have := make(map[string]bool, len(cfg.Profiles))
	for i := range cfg.Profiles {
		have[cfg.Profiles[i].Name] = true
	}
	var add []Profile
	for i := range cfg.HostEndpoints {
		for _, pn := range cfg.HostEndpoints[i].Profiles {
			if have[pn] {
				continue
			}
			have[pn] = true
			if pn == DefaultAllowProfile {
				allow := []Rule{{Action: Allow}}
				add = append(add, Profile{Name: pn, Ingress: allow, Egress: allow})
				continue
			}
			deny := []Rule{{Action: Deny}}
			add = append(add, Profile{Name: pn, Ingress: deny, Egress: deny, Missing: true})
		}
	}
	if len(add) == 0 {
		return cfg
	}
	c := *cfg
	c.Profiles = append(append(make([]Profile, 0, len(cfg.Profiles)+len(add)), cfg.Profiles...), add...)
	return &c
}

// chainKey appends to k everything chainBuilder.build reads: the chain's
// direction, family, end-of-tier flag, profiles, and per tier (with policies
// in this direction) its index, default action and policies in order.
func chainKey(k []byte, pl *Plan, dir Dir, fam uint8, endOfTier bool, profiles []int32) []byte {
	put := func(v int32) { k = binary.LittleEndian.AppendUint32(k, uint32(v)) }
	k = append(k, byte(dir), fam)
	if endOfTier {
		k = append(k, 1)
	} else {
		k = append(k, 0)
	}
	put(int32(len(profiles)))
	for _, pi := range profiles {
		put(pi)
	}
	for ti := range pl.Tiers {
		t := &pl.Tiers[ti]
		pols := t.Policies(dir)
		if len(pols) == 0 {
			continue
		}
		put(t.Tier)
		k = append(k, byte(t.DefaultAction))
		put(int32(len(pols)))
		for _, pi := range pols {
			put(pi)
		}
	}
	return k
}

// addrEntries lists everything a rule selector can select (spec §6): host
// endpoints (their expectedIPs and named ports) and network sets, global
// and namespaced.
func addrEntries(cfg *Config, r *resolved) []addrEntry {
	var out []addrEntry
	n := len(cfg.HostEndpoints)
	for i := 0; i < n+len(cfg.RemoteHostEndpoints); i++ {
		var h *HostEndpoint
		var labels map[string]string
		if i < n {
			h, labels = &cfg.HostEndpoints[i], r.endpoints[i].Labels
		} else {
			h = &cfg.RemoteHostEndpoints[i-n]
			labels = HostEndpointLabels(cfg, h)
		}
		en := addrEntry{labels: labels, ports: h.Ports}
		var ps []netip.Prefix
		for _, a := range h.ExpectedIPs {
			a = a.Unmap().WithZone("")
			ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
			fam := uint8(6)
			if a.Is4() {
				fam = 4
			}
			if u, ok := addrU128(a, fam); ok {
				en.addrs = append(en.addrs, u128Fam{u, fam})
			}
		}
		en.spans[0], en.spans[1] = prefixSpans(ps, 4), prefixSpans(ps, 6)
		out = append(out, en)
	}
	for i := range cfg.NetworkSets {
		ns := &cfg.NetworkSets[i]
		out = append(out, addrEntry{labels: NetworkSetLabels(cfg, ns), spans: [2]spans{prefixSpans(ns.Nets, 4), prefixSpans(ns.Nets, 6)}})
	}
	return out
}

// Config returns the configuration the program was compiled from. Callers must not modify it.
func (p *Program) Config() *Config { return p.cfg }

// Tiers returns every tier in evaluation order; Decision.Tier indexes it.
func (p *Program) Tiers() []TierInfo { return p.r.tiers }

// Endpoints returns the resolved host endpoints; EndpointID indexes it.
// Callers must not modify them.
func (p *Program) Endpoints() []Endpoint { return p.r.endpoints }

// Endpoint returns endpoint id, or nil for NoEndpoint or an unknown id.
func (p *Program) Endpoint(id EndpointID) *Endpoint {
	if id < 0 || int(id) >= len(p.r.endpoints) {
		return nil
	}
	return &p.r.endpoints[id]
}

// EndpointName returns the host endpoint's name, "" for NoEndpoint (traces).
func (p *Program) EndpointName(id EndpointID) string {
	if e := p.Endpoint(id); e != nil {
		return e.Name
	}
	return ""
}

// TierName returns the name of tier i in evaluation order, "" for NoIndex (traces).
func (p *Program) TierName(i int32) string {
	if i < 0 || int(i) >= len(p.r.tiers) {
		return ""
	}
	return p.r.tiers[i].Name
}

// SelectedBy returns the endpoints policy i (index into Config.Policies) selects.
func (p *Program) SelectedBy(policy int) []EndpointID {
	if policy < 0 || policy >= len(p.r.selectedBy) {
		return nil
	}
	return p.r.selectedBy[policy]
}

// SortedPolicies returns all policy indexes in global evaluation order
// (tier, order, name with Calico's tie-break).
func (p *Program) SortedPolicies() []int32 { return p.r.sorted }

// Wildcard returns the "*" host endpoint in use (alphabetically smallest), or NoEndpoint.
func (p *Program) Wildcard() EndpointID { return p.r.wildcard }

// Bind resolves which endpoint governs an interface at each stage (spec §1.1).
func (p *Program) Bind(ifc Interface) Binding { return p.r.bind(p.cfg, ifc) }

// key fills k from pkt. It returns the family index (0 IPv4, 1 IPv6), or
// false when the packet cannot be matched (malformed or unknown family).
func key(pkt *classify.Packet, k *dtree.Key) (int, bool) {
	if pkt.Class == classify.Malformed {
		return 0, false
	}
	var fam uint8
	switch pkt.Family {
	case classify.IPv4:
		fam = 4
	case classify.IPv6:
		fam = 6
	default:
		return 0, false
	}
	var ok1, ok2 bool
	k.Src, ok1 = addrU128(pkt.Src, fam)
	k.Dst, ok2 = addrU128(pkt.Dst, fam)
	if !ok1 || !ok2 {
		return 0, false
	}
	k.Proto = uint32(pkt.Proto)
	k.SPort, k.DPort = dtree.NoPort, dtree.NoPort
	if pkt.HasPorts() {
		k.SPort, k.DPort = uint32(pkt.SrcPort), uint32(pkt.DstPort)
	}
	k.ICMPType, k.ICMPCode = dtree.NoICMP, dtree.NoICMP
	if pkt.HasICMP() {
		k.ICMPType, k.ICMPCode = uint32(pkt.ICMPType), uint32(pkt.ICMPCode)
	}
	return famIdx(fam), true
}

// failsafeHit reports whether pkt matches an entry of list on its destination
// port (or source port when bySrcPort), with the entry's net matched against
// the source (srcNet) or the destination address.
func failsafeHit(list []ProtoPort, pkt *classify.Packet, bySrcPort, srcNet bool) bool {
	if !pkt.HasPorts() {
		return false
	}
	port, addr := pkt.DstPort, pkt.Dst
	if bySrcPort {
		port = pkt.SrcPort
	}
	if srcNet {
		addr = pkt.Src
	}
	for i := range list {
		fs := &list[i]
		if fs.Protocol == pkt.Proto && fs.Port == port && (!fs.Net.IsValid() || netHolds(fs.Net, pkt.Family, addr)) {
			return true
		}
	}
	return false
}

// netHolds reports whether a failsafe net of the packet's family holds addr.
// Felix renders a failsafe with a net only into that family's table, so an
// IPv6 packet never matches an IPv4 net, not even from a v4-mapped address.
func netHolds(n netip.Prefix, fam classify.Family, addr netip.Addr) bool {
	if n.Addr().Is4() != (fam == classify.IPv4) {
		return false
	}
	if fam == classify.IPv4 {
		addr = addr.Unmap()
	}
	return n.Contains(addr)
}

// failsafe is the filter/mangle failsafe check (spec §4).
func (p *Program) failsafe(dir Dir, pkt *classify.Packet) bool {
	s := &p.cfg.Settings
	if dir == Ingress {
		return failsafeHit(s.FailsafeInbound, pkt, false, true)
	}
	return failsafeHit(s.FailsafeOutbound, pkt, false, false)
}

// failsafeRaw adds the raw-table reply rules (spec §4).
func (p *Program) failsafeRaw(dir Dir, pkt *classify.Packet) bool {
	s := &p.cfg.Settings
	if p.failsafe(dir, pkt) {
		return true
	}
	if dir == Ingress {
		return failsafeHit(s.FailsafeOutbound, pkt, true, true)
	}
	return failsafeHit(s.FailsafeInbound, pkt, true, false)
}

func decision(v Verdict, r Reason, ep EndpointID) Decision {
	return Decision{Verdict: v, Reason: r, Endpoint: ep, Tier: NoIndex, Policy: NoIndex, Rule: NoIndex}
}

// fromEntry turns a chain's deciding entry into a decision.
func (c *chain) decide(ei int32, logged bool, ep EndpointID) Decision {
	e := &c.entries[ei]
	d := Decision{Endpoint: ep, Tier: e.tier, Policy: e.policy, Rule: e.rule, Logged: logged, Reason: ReasonRule}
	if e.rule >= 0 {
		d.Dir = c.dir
	}
	switch e.kind {
	case eAllow:
		d.Verdict = Accept
	case eEndOfTier:
		d.Verdict = Drop
		d.Reason = ReasonEndOfTier
	default:
		d.Verdict = Drop
	}
	if e.profile {
		d.Reason = ReasonProfile
	}
	return d
}

func (p *Program) chainOf(ep EndpointID, slot, fi int) *chain {
	return p.eps[ep].c[slot][fi]
}

func (p *Program) valid(ep EndpointID) bool { return ep >= 0 && int(ep) < len(p.eps) }

// Untracked evaluates the doNotTrack policy of endpoint ep for a packet in
// direction dir (Ingress in raw PREROUTING, Egress in raw OUTPUT), failsafes
// included. Allow gives Accept with AcceptMark (the packet is NOTRACKed and
// later stages skip it); a failsafe gives Accept without the mark (raw ACCEPT:
// the packet stays tracked and continues); no match gives None.
func (p *Program) Untracked(ep EndpointID, dir Dir, pkt *classify.Packet) Decision {
	if !p.valid(ep) || p.r.endpoints[ep].Plans[PlanUntracked].Empty() {
		return decision(None, ReasonNotPoliced, ep)
	}
	var k dtree.Key
	fi, ok := key(pkt, &k)
	if !ok {
		return decision(Drop, ReasonMalformed, ep)
	}
	if p.failsafeRaw(dir, pkt) {
		return decision(Accept, ReasonFailsafe, ep)
	}
	slot := chUntrackedIn
	if dir == Egress {
		slot = chUntrackedOut
	}
	c := p.chainOf(ep, slot, fi)
	ei, logged := c.eval(&k)
	if ei < 0 {
		d := decision(None, ReasonNoMatch, ep)
		d.Logged = logged
		return d
	}
	d := c.decide(ei, logged, ep)
	d.AcceptMark = d.Verdict == Accept
	return d
}

// PreDNAT evaluates endpoint ep's pre-DNAT policy on a packet arriving on its
// interface (pre-DNAT tuple), conntrack and failsafes included.
// ESTABLISHED/RELATED packets are not evaluated (None); INVALID ones are
// dropped unless DisableConntrackInvalidCheck. A failsafe gives Accept
// without the accept-mark (mangle ACCEPT: normal policy still runs); Allow
// gives Accept with AcceptMark; there is no default drop.
func (p *Program) PreDNAT(ep EndpointID, pkt *classify.Packet) Decision {
	if !p.valid(ep) || p.r.endpoints[ep].Plans[PlanPreDNAT].Empty() {
		return decision(None, ReasonNotPoliced, ep)
	}
	if pkt.CT == classify.CTEstablished || pkt.CT == classify.CTRelated {
		return decision(None, ReasonConntrack, ep)
	}
	var k dtree.Key
	fi, ok := key(pkt, &k)
	if !ok {
		return decision(Drop, ReasonMalformed, ep)
	}
	if pkt.CT == classify.CTInvalid && !p.cfg.Settings.DisableConntrackInvalidCheck {
		return decision(Drop, ReasonConntrack, ep)
	}
	if p.failsafe(Ingress, pkt) {
		return decision(Accept, ReasonFailsafe, ep)
	}
	c := p.chainOf(ep, chPreDNAT, fi)
	ei, logged := c.eval(&k)
	if ei < 0 {
		d := decision(None, ReasonNoMatch, ep)
		d.Logged = logged
		return d
	}
	d := c.decide(ei, logged, ep)
	d.AcceptMark = d.Verdict == Accept
	return d
}

// Local evaluates endpoint ep's normal chain: Ingress for filter INPUT,
// Egress for filter OUTPUT and for DNAT'd local traffic in mangle POSTROUTING.
// Conntrack rules, failsafes, tiers, profiles, final drop.
func (p *Program) Local(ep EndpointID, dir Dir, pkt *classify.Packet) Decision {
	if !p.valid(ep) {
		return decision(None, ReasonNotPoliced, ep)
	}
	if pkt.CT == classify.CTEstablished || pkt.CT == classify.CTRelated {
		return decision(Accept, ReasonConntrack, ep)
	}
	var k dtree.Key
	fi, ok := key(pkt, &k)
	if !ok {
		return decision(Drop, ReasonMalformed, ep)
	}
	if pkt.CT == classify.CTInvalid && !p.cfg.Settings.DisableConntrackInvalidCheck {
		return decision(Drop, ReasonConntrack, ep)
	}
	if p.failsafe(dir, pkt) {
		return decision(Accept, ReasonFailsafe, ep)
	}
	slot := chNormalIn
	if dir == Egress {
		slot = chNormalOut
	}
	c := p.chainOf(ep, slot, fi)
	ei, logged := c.eval(&k)
	if ei < 0 {
		d := decision(Drop, ReasonNoProfile, ep)
		d.Logged = logged
		return d
	}
	return c.decide(ei, logged, ep)
}

// forward results (spec §11 forwardChain)
const (
	fwdNone uint8 = iota
	fwdAcceptMark
	fwdAcceptNow
	fwdDrop
)

func (p *Program) forwardChain(ep EndpointID, dir Dir, pkt *classify.Packet, k *dtree.Key, fi int, keyOK bool) (uint8, Decision) {
	if pkt.CT == classify.CTEstablished || pkt.CT == classify.CTRelated {
		return fwdAcceptNow, decision(Accept, ReasonConntrack, ep)
	}
	if !keyOK {
		return fwdDrop, decision(Drop, ReasonMalformed, ep)
	}
	if pkt.CT == classify.CTInvalid && !p.cfg.Settings.DisableConntrackInvalidCheck {
		return fwdDrop, decision(Drop, ReasonConntrack, ep)
	}
	if p.r.endpoints[ep].Plans[PlanForward].Empty() {
		d := decision(Accept, ReasonDefaultAllowForward, ep)
		d.AcceptMark = true
		return fwdAcceptMark, d
	}
	slot := chForwardIn
	if dir == Egress {
		slot = chForwardOut
	}
	c := p.chainOf(ep, slot, fi)
	ei, logged := c.eval(k)
	if ei < 0 {
		d := decision(None, ReasonNoMatch, ep)
		d.Logged = logged
		return fwdNone, d
	}
	d := c.decide(ei, logged, ep)
	if d.Verdict == Accept {
		d.AcceptMark = true
		return fwdAcceptMark, d
	}
	return fwdDrop, d
}

// Forward evaluates filter FORWARD: the in-endpoint's applyOnForward ingress
// chain (skipped when accepted is true: an untracked or preDNAT Allow), then
// the out-endpoint's applyOnForward egress chain. Either endpoint may be
// NoEndpoint. Forwarded traffic gets no failsafes (spec §4). The result is
// Accept only when the accept-mark survives both chains; None leaves the
// packet to the host's own FORWARD rules (spec §3.2).
func (p *Program) Forward(in, out EndpointID, accepted bool, pkt *classify.Packet) Decision {
	var k dtree.Key
	fi, keyOK := key(pkt, &k)
	mark := accepted
	d := decision(None, ReasonNotPoliced, NoEndpoint)
	if accepted {
		d = decision(Accept, ReasonEarlierStage, NoEndpoint)
		d.AcceptMark = true
	}
	logged := false
	if !accepted && p.valid(in) {
		r, di := p.forwardChain(in, Ingress, pkt, &k, fi, keyOK)
		logged = di.Logged
		switch r {
		case fwdAcceptNow, fwdDrop:
			return di
		case fwdAcceptMark:
			mark = true
		default:
			mark = false
		}
		d = di
	}
	if p.valid(out) {
		mark = false
		r, do := p.forwardChain(out, Egress, pkt, &k, fi, keyOK)
		do.Logged = do.Logged || logged
		switch r {
		case fwdAcceptNow, fwdDrop:
			return do
		case fwdAcceptMark:
			mark = true
			d = do
		default:
			// The out chain cleared the accept bit and decided nothing.
			d = do
		}
	}
	d.Logged = d.Logged || logged
	if mark {
		d.Verdict = Accept
		d.AcceptMark = true
	} else {
		d.Verdict = None
		d.AcceptMark = false
	}
	return d
}
