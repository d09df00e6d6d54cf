package policy

import (
	"math"
	"net/netip"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy/dtree"
)

// Regions of packet space. A stage's decision for a packet is made by a
// few decision-tree lookups (failsafes, then a chain's terminal and log
// rules, with Pass continuing from a later priority), so it stays the same
// on a box around the packet: RegionAt returns the decision and such a box,
// computed from the compiled trees. Diffs and lint build on it; the packet
// path never calls it.

// StageCall names one stage evaluation: which Program method, and its
// arguments other than the packet.
type StageCall struct {
	// Stage picks the method: StageUntracked (Untracked), StagePreDNAT
	// (PreDNAT), StageInput (Local, Ingress), StageOutput (Local, Egress),
	// StageForward (Forward).
	Stage Stage
	// Dir is the untracked stage's direction: Ingress for raw PREROUTING,
	// Egress for raw OUTPUT. Ignored by the other stages.
	Dir Dir
	// Endpoint is the endpoint of every stage but forward.
	Endpoint EndpointID
	// In and Out are the forward stage's endpoints; Accepted says an
	// untracked or preDNAT Allow set the accept-mark.
	In, Out  EndpointID
	Accepted bool
	// CT is the packet's conntrack state (NEW for the first packet of a
	// flow; the untracked stage ignores it).
	CT classify.CTState
}

// Eval evaluates the stage c names for pkt: the same Decision the stage's
// method gives.
func (p *Program) Eval(c StageCall, pkt *classify.Packet) Decision {
	q := *pkt
	q.CT = c.CT
	switch c.Stage {
	case StageUntracked:
		return p.Untracked(c.Endpoint, c.Dir, &q)
	case StagePreDNAT:
		return p.PreDNAT(c.Endpoint, &q)
	case StageInput:
		return p.Local(c.Endpoint, Ingress, &q)
	case StageOutput:
		return p.Local(c.Endpoint, Egress, &q)
	case StageForward:
		return p.Forward(c.In, c.Out, c.Accepted, &q)
	}
	return decision(None, ReasonNotPoliced, NoEndpoint)
}

// Box is a region of one address family's packet space: per field of a
// dtree.Key an inclusive range. Addresses are IPv4 (in Lo) or IPv6
// numbers; a packet without ports has ports dtree.NoPort, one without an
// ICMP header ICMP type and code dtree.NoICMP.
type Box struct {
	Fam uint8 // 4 or 6
	dtree.Box
}

// FullBox is all of family fam's packet space.
func FullBox(fam uint8) Box { return Box{Fam: fam, Box: dtree.FullBox(famMax(fam))} }

// portedProtos are the protocols whose packets carry ports (classify.Packet.HasPorts).
var portedProtos = [...]uint32{6, 17, 132, 136}

// icmpProto is the protocol whose packets carry an ICMP header in family fam.
func icmpProto(fam uint8) uint32 {
	if fam == 6 {
		return 58
	}
	return 1
}

// PacketSpace returns family fam's real packets as disjoint boxes: packets
// with ports (TCP, UDP, SCTP, UDPLite: every port, no ICMP), ICMP packets
// (every type and code, no ports), and packets with neither (every
// protocol: other protocols, and fragments without their transport
// header). Keys outside these boxes are never built from a packet.
func PacketSpace(fam uint8) []Box {
	full := FullBox(fam)
	var out []Box
	for _, pr := range portedProtos {
		b := full
		b.Proto = [2]uint32{pr, pr}
		b.SPort, b.DPort = [2]uint32{0, 65535}, [2]uint32{0, 65535}
		b.ICMPType, b.ICMPCode = [2]uint32{dtree.NoICMP, dtree.NoICMP}, [2]uint32{dtree.NoICMP, dtree.NoICMP}
		out = append(out, b)
	}
	b := full
	ip := icmpProto(fam)
	b.Proto = [2]uint32{ip, ip}
	b.SPort, b.DPort = [2]uint32{dtree.NoPort, dtree.NoPort}, [2]uint32{dtree.NoPort, dtree.NoPort}
	b.ICMPType, b.ICMPCode = [2]uint32{0, 255}, [2]uint32{0, 255}
	out = append(out, b)
	b = full
	b.SPort, b.DPort = [2]uint32{dtree.NoPort, dtree.NoPort}, [2]uint32{dtree.NoPort, dtree.NoPort}
	b.ICMPType, b.ICMPCode = [2]uint32{dtree.NoICMP, dtree.NoICMP}, [2]uint32{dtree.NoICMP, dtree.NoICMP}
	return append(out, b)
}

// KeyOf returns the key the evaluator matches pkt with and its family (4
// or 6); ok is false for a malformed packet or one of no known family.
func KeyOf(pkt *classify.Packet) (fam uint8, k dtree.Key, ok bool) {
	fi, ok := key(pkt, &k)
	if !ok {
		return 0, k, false
	}
	return [2]uint8{4, 6}[fi], k, true
}

// PacketAt is a packet whose key (KeyOf) is k, with conntrack state ct.
// For a key of PacketSpace it is the one such packet kind: ports make a
// transport packet, ICMP fields an ICMP one, and a port or ICMP protocol
// with neither is a non-first fragment.
func PacketAt(fam uint8, k *dtree.Key, ct classify.CTState) classify.Packet {
	p := classify.Packet{Proto: uint8(k.Proto), CT: ct}
	if fam == 4 {
		p.Family = classify.IPv4
		p.Src, p.Dst = addr4(k.Src), addr4(k.Dst)
	} else {
		p.Family = classify.IPv6
		p.Src, p.Dst = addr6(k.Src), addr6(k.Dst)
	}
	switch {
	case k.SPort != dtree.NoPort || k.DPort != dtree.NoPort:
		p.SrcPort, p.DstPort = uint16(k.SPort), uint16(k.DPort)
	case k.ICMPType != dtree.NoICMP || k.ICMPCode != dtree.NoICMP:
		p.ICMPType, p.ICMPCode = uint8(k.ICMPType), uint8(k.ICMPCode)
	default:
		if k.Proto == icmpProto(fam) {
			p.Class = classify.Fragment
		}
		for _, pr := range portedProtos {
			if k.Proto == pr {
				p.Class = classify.Fragment
			}
		}
	}
	return p
}

func addr4(a u128) netip.Addr {
	v := uint32(a.Lo)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func addr6(a u128) netip.Addr {
	var b [16]byte
	for i := range 8 {
		b[i] = byte(a.Hi >> (56 - 8*i))
		b[8+i] = byte(a.Lo >> (56 - 8*i))
	}
	return netip.AddrFrom16(b)
}

// AddrOf converts an address number of family fam back to an address.
func AddrOf(fam uint8, a dtree.U128) netip.Addr {
	if fam == 4 {
		return addr4(a)
	}
	return addr6(a)
}

// RegionAt evaluates the stage c names for the packet whose key is k in
// family fam (4 or 6), and returns the decision with a box that holds k
// and on which the decision is the same for every key: verdict,
// accept-mark, reason, endpoint, tier, policy, rule and logged flag, as
// the stage method (and the in-order oracle) gives them for the packet of
// every key of the box (PacketAt). The box is as wide as the compiled
// trees show cheaply, not necessarily the widest such box. RegionAt
// allocates nothing and takes a few lookups' time.
func (p *Program) RegionAt(c StageCall, fam uint8, k *dtree.Key) (Decision, Box) {
	return p.RegionIn(c, FullBox(fam), k)
}

// RegionIn is RegionAt within the box in (which must hold k): the box it
// returns lies in in. Where in is small, the box is chosen to keep most of
// in rather than of the whole space, so a search that splits the space
// (a diff's worklist) breaks it into fewer pieces.
func (p *Program) RegionIn(c StageCall, in Box, k *dtree.Key) (Decision, Box) {
	b := in
	fam := in.Fam
	fi := famIdx(fam)
	switch c.Stage {
	case StageUntracked:
		ep := c.Endpoint
		if !p.valid(ep) || p.r.endpoints[ep].Plans[PlanUntracked].Empty() {
			return decision(None, ReasonNotPoliced, ep), b
		}
		if p.failsafeRegion(c.Dir, true, fam, k, &b.Box) {
			return decision(Accept, ReasonFailsafe, ep), b
		}
		slot := chUntrackedIn
		if c.Dir == Egress {
			slot = chUntrackedOut
		}
		ch := p.chainOf(ep, slot, fi)
		ei, logged := ch.region(k, &b.Box)
		if ei < 0 {
			d := decision(None, ReasonNoMatch, ep)
			d.Logged = logged
			return d, b
		}
		d := ch.decide(ei, logged, ep)
		d.AcceptMark = d.Verdict == Accept
		return d, b
	case StagePreDNAT:
		ep := c.Endpoint
		if !p.valid(ep) || p.r.endpoints[ep].Plans[PlanPreDNAT].Empty() {
			return decision(None, ReasonNotPoliced, ep), b
		}
		if c.CT == classify.CTEstablished || c.CT == classify.CTRelated {
			return decision(None, ReasonConntrack, ep), b
		}
		if p.invalid(c.CT) {
			return decision(Drop, ReasonConntrack, ep), b
		}
		if p.failsafeRegion(Ingress, false, fam, k, &b.Box) {
			return decision(Accept, ReasonFailsafe, ep), b
		}
		ch := p.chainOf(ep, chPreDNAT, fi)
		ei, logged := ch.region(k, &b.Box)
		if ei < 0 {
			d := decision(None, ReasonNoMatch, ep)
			d.Logged = logged
			return d, b
		}
		d := ch.decide(ei, logged, ep)
		d.AcceptMark = d.Verdict == Accept
		return d, b
	case StageInput, StageOutput:
		ep, dir := c.Endpoint, Ingress
		if c.Stage == StageOutput {
			dir = Egress
		}
		if !p.valid(ep) {
			return decision(None, ReasonNotPoliced, ep), b
		}
		if c.CT == classify.CTEstablished || c.CT == classify.CTRelated {
			return decision(Accept, ReasonConntrack, ep), b
		}
		if p.invalid(c.CT) {
			return decision(Drop, ReasonConntrack, ep), b
		}
		if p.failsafeRegion(dir, false, fam, k, &b.Box) {
			return decision(Accept, ReasonFailsafe, ep), b
		}
		slot := chNormalIn
		if dir == Egress {
			slot = chNormalOut
		}
		ch := p.chainOf(ep, slot, fi)
		ei, logged := ch.region(k, &b.Box)
		if ei < 0 {
			d := decision(Drop, ReasonNoProfile, ep)
			d.Logged = logged
			return d, b
		}
		return ch.decide(ei, logged, ep), b
	case StageForward:
		return p.forwardRegion(c, fi, k, &b.Box), b
	}
	return decision(None, ReasonNotPoliced, NoEndpoint), b
}

func (p *Program) invalid(ct classify.CTState) bool {
	return ct == classify.CTInvalid && !p.cfg.Settings.DisableConntrackInvalidCheck
}

// forwardRegion is Forward, narrowing b.
func (p *Program) forwardRegion(c StageCall, fi int, k *dtree.Key, b *dtree.Box) Decision {
	mark := c.Accepted
	d := decision(None, ReasonNotPoliced, NoEndpoint)
	if c.Accepted {
		d = decision(Accept, ReasonEarlierStage, NoEndpoint)
		d.AcceptMark = true
	}
	logged := false
	if !c.Accepted && p.valid(c.In) {
		r, di := p.forwardChainRegion(c.In, Ingress, c.CT, fi, k, b)
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
	if p.valid(c.Out) {
		r, do := p.forwardChainRegion(c.Out, Egress, c.CT, fi, k, b)
		do.Logged = do.Logged || logged
		switch r {
		case fwdAcceptNow, fwdDrop:
			return do
		case fwdAcceptMark:
			mark = true
		default:
			mark = false
		}
		d = do
	}
	d.Logged = d.Logged || logged
	if mark {
		d.Verdict, d.AcceptMark = Accept, true
	} else {
		d.Verdict, d.AcceptMark = None, false
	}
	return d
}

// forwardChainRegion is forwardChain, narrowing b.
func (p *Program) forwardChainRegion(ep EndpointID, dir Dir, ct classify.CTState, fi int, k *dtree.Key, b *dtree.Box) (uint8, Decision) {
	if ct == classify.CTEstablished || ct == classify.CTRelated {
		return fwdAcceptNow, decision(Accept, ReasonConntrack, ep)
	}
	if p.invalid(ct) {
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
	ch := p.chainOf(ep, slot, fi)
	ei, logged := ch.region(k, b)
	if ei < 0 {
		d := decision(None, ReasonNoMatch, ep)
		d.Logged = logged
		return fwdNone, d
	}
	d := ch.decide(ei, logged, ep)
	if d.Verdict == Accept {
		d.AcceptMark = true
		return fwdAcceptMark, d
	}
	return fwdDrop, d
}

// region is chain.eval, narrowing b to where every lookup it makes gives
// the same answer.
func (c *chain) region(k *dtree.Key, b *dtree.Box) (int32, bool) {
	if c == nil {
		return -1, false
	}
	from := int32(0)
	logged := false
	for {
		hit := c.term.region(k, from, math.MaxInt32, b)
		if c.hasLogs && !logged {
			to := int32(math.MaxInt32)
			if hit >= 0 {
				to = hit
			}
			if c.logs.region(k, from, to, b) >= 0 {
				logged = true
			}
		}
		if hit < 0 {
			return -1, logged
		}
		ei := c.prioEntry[hit]
		if e := &c.entries[ei]; e.kind == ePass {
			from = e.next
			continue
		}
		return ei, logged
	}
}

// region returns the first priority in [from, to) whose rule matches k (-1
// when none) and narrows b to where that stays the answer.
func (m *matcher) region(k *dtree.Key, from, to int32, b *dtree.Box) int32 {
	slow := -1 // index of the first slow rule in [from, to) matching k
	for i := range m.slow {
		s := &m.slow[i]
		if s.prio < from {
			continue
		}
		if s.prio >= to {
			break
		}
		if s.f.match(k) {
			slow = i
			break
		}
	}
	treeTo := to
	if slow >= 0 {
		treeTo = m.slow[slow].prio
	}
	ans := int32(-1)
	if m.tree != nil {
		ans = m.tree.Region(k, from, treeTo, b)
	}
	if ans < 0 && slow >= 0 {
		ans = m.slow[slow].prio
		m.slow[slow].f.includeBox(k, b)
	}
	end := to
	if ans >= 0 {
		end = ans
	}
	for i := range m.slow {
		s := &m.slow[i]
		if s.prio < from {
			continue
		}
		if s.prio >= end {
			break
		}
		s.f.excludeBox(k, b)
	}
	return ans
}

// Field numbers of dtree.Box.
const (
	bSrc = iota
	bDst
	bProto
	bSPort
	bDPort
	bICMPType
	bICMPCode
)

func small(v uint32) u128 { return u128{Lo: uint64(v)} }

// clampField intersects field f of b with [lo, hi].
func clampField(b *dtree.Box, f int, lo, hi u128) {
	blo, bhi := b.Field(f)
	if less128(blo, lo) {
		blo = lo
	}
	if less128(hi, bhi) {
		bhi = hi
	}
	b.SetField(f, blo, bhi)
}

// failsafeRegion is failsafe (raw: failsafeRaw) for the key k, narrowing b
// to the failsafe rectangle k is in, or away from all of them.
func (p *Program) failsafeRegion(dir Dir, raw bool, fam uint8, k *dtree.Key, b *dtree.Box) bool {
	s := &p.cfg.Settings
	type list struct {
		l         []ProtoPort
		bySrcPort bool
	}
	// Ingress entries match the source net, egress ones the destination.
	lists := [2]list{{s.FailsafeInbound, false}, {s.FailsafeOutbound, true}}
	addrF := bSrc
	if dir == Egress {
		lists = [2]list{{s.FailsafeOutbound, false}, {s.FailsafeInbound, true}}
		addrF = bDst
	}
	n := 1
	if raw {
		n = 2
	}
	full := dtree.FullBox(famMax(fam))
	for pass := range 2 { // first look for a hit, then exclude all
		for _, li := range lists[:n] {
			for i := range li.l {
				fs := &li.l[i]
				r := full
				if fs.Net.IsValid() {
					if prefixFamily(fs.Net) != fam {
						continue
					}
					sp := prefixSpan(fs.Net)
					r.SetField(addrF, sp.lo, sp.hi)
				}
				r.Proto = [2]uint32{uint32(fs.Protocol), uint32(fs.Protocol)}
				port := &r.DPort
				if li.bySrcPort {
					port = &r.SPort
				}
				*port = [2]uint32{uint32(fs.Port), uint32(fs.Port)}
				if pass == 0 {
					if r.Contains(k) {
						b.Intersect(&r)
						return true
					}
					continue
				}
				b.Exclude(k, &r)
			}
		}
	}
	return false
}

// includeBox narrows b, which holds k, a key f matches, to where f
// matches every key.
func (f *frule) includeBox(k *dtree.Key, b *dtree.Box) {
	for _, pr := range f.protos {
		if k.Proto >= pr[0] && k.Proto <= pr[1] {
			clampField(b, bProto, small(pr[0]), small(pr[1]))
			break
		}
	}
	for _, ic := range f.icmp {
		if k.ICMPType >= ic[0][0] && k.ICMPType <= ic[0][1] && k.ICMPCode >= ic[1][0] && k.ICMPCode <= ic[1][1] {
			clampField(b, bICMPType, small(ic[0][0]), small(ic[0][1]))
			clampField(b, bICMPCode, small(ic[1][0]), small(ic[1][1]))
			break
		}
	}
	f.src.includeBox(bSrc, bSPort, k.Src, k.Proto, k.SPort, k, b)
	f.dst.includeBox(bDst, bDPort, k.Dst, k.Proto, k.DPort, k, b)
}

func (s *side) includeBox(addrF, portF int, a u128, proto, port uint32, k *dtree.Key, b *dtree.Box) {
	for _, sp := range s.addrs {
		if le128(sp.lo, a) && le128(a, sp.hi) {
			clampField(b, addrF, sp.lo, sp.hi)
			break
		}
	}
	if s.hasPorts {
		if r, ok := rangeOf(s.ports, port); ok {
			clampField(b, portF, small(r[0]), small(r[1]))
		} else {
			// A named-port member: one address, protocol and port.
			clampField(b, addrF, a, a)
			clampField(b, bProto, small(proto), small(proto))
			clampField(b, portF, small(port), small(port))
		}
	}
	if s.hasNot {
		if r, ok := rangeOf(s.notAllowed, port); ok {
			clampField(b, portF, small(r[0]), small(r[1]))
		}
		for _, n := range s.notNamed {
			nb := memberBox(addrF, portF, n)
			b.Exclude(k, &nb)
		}
	}
}

// memberBox is every key whose address (field addrF), protocol and port
// (field portF) are a named-port member's.
func memberBox(addrF, portF int, n namedPort) dtree.Box {
	r := dtree.FullBox(u128{Hi: ^uint64(0), Lo: ^uint64(0)})
	r.SetField(addrF, n.addr, n.addr)
	r.Proto = [2]uint32{uint32(n.proto), uint32(n.proto)}
	r.SetField(portF, small(uint32(n.port)), small(uint32(n.port)))
	return r
}

// rangeOf returns the range of rs holding v.
func rangeOf(rs []rng, v uint32) (rng, bool) {
	for _, r := range rs {
		if v >= r[0] && v <= r[1] {
			return r, true
		}
	}
	return rng{}, false
}

// gapOf returns the largest range around v, within [0, max], that meets
// none of rs (sorted, disjoint); v must be in none of them.
func gapOf(rs []rng, v, max uint32) rng {
	g := rng{0, max}
	for _, r := range rs {
		if r[1] < v && r[1]+1 > g[0] {
			g[0] = r[1] + 1
		}
		if r[0] > v && r[0]-1 < g[1] {
			g[1] = r[0] - 1
		}
	}
	return g
}

// excludeBox narrows b, which holds k, a key f does not match, to where f
// matches no key: it keeps the largest of the boxes each failing part of
// f allows.
func (f *frule) excludeBox(k *dtree.Key, b *dtree.Box) {
	best, bestSize := *b, -1.0
	try := func(c dtree.Box) {
		if s := c.Size(); s > bestSize {
			best, bestSize = c, s
		}
	}
	if !inRanges(f.protos, k.Proto) {
		c := *b
		g := gapOf(f.protos, k.Proto, 255)
		clampField(&c, bProto, small(g[0]), small(g[1]))
		try(c)
	}
	icmpHit := false
	for _, ic := range f.icmp {
		if k.ICMPType >= ic[0][0] && k.ICMPType <= ic[0][1] && k.ICMPCode >= ic[1][0] && k.ICMPCode <= ic[1][1] {
			icmpHit = true
		}
	}
	if !icmpHit {
		c := *b
		for _, ic := range f.icmp {
			r := dtree.FullBox(u128{Hi: ^uint64(0), Lo: ^uint64(0)})
			r.ICMPType, r.ICMPCode = ic[0], ic[1]
			c.Exclude(k, &r)
		}
		try(c)
	}
	f.src.excludeBoxes(bSrc, bSPort, k.Src, k.Proto, k.SPort, k, b, try)
	f.dst.excludeBoxes(bDst, bDPort, k.Dst, k.Proto, k.DPort, k, b, try)
	if bestSize < 0 {
		panic("policy: excludeBox on a matching key")
	}
	*b = best
}

// excludeBoxes offers try a box for each way the side fails to match.
func (s *side) excludeBoxes(addrF, portF int, a u128, proto, port uint32, k *dtree.Key, b *dtree.Box, try func(dtree.Box)) {
	if !s.addrs.contains(a) {
		c := *b
		g := addrGap(s.addrs, a, b, addrF)
		clampField(&c, addrF, g.lo, g.hi)
		try(c)
	}
	if s.hasPorts && !inRanges(s.ports, port) && !s.namedHit(a, proto, port) {
		c := *b
		g := gapOf(s.ports, port, dtree.NoPort)
		clampField(&c, portF, small(g[0]), small(g[1]))
		for _, n := range s.named {
			nb := memberBox(addrF, portF, n)
			c.Exclude(k, &nb)
		}
		try(c)
	}
	if s.hasNot && !inRanges(s.notAllowed, port) {
		c := *b
		g := gapOf(s.notAllowed, port, dtree.NoPort)
		clampField(&c, portF, small(g[0]), small(g[1]))
		try(c)
	}
	if s.hasNot && s.notHit(a, proto, port) {
		c := *b
		clampField(&c, addrF, a, a)
		clampField(&c, bProto, small(proto), small(proto))
		clampField(&c, portF, small(port), small(port))
		try(c)
	}
}

// addrGap is the largest address range around a meeting none of s, within
// field f's range of b.
func addrGap(s spans, a u128, b *dtree.Box, f int) span {
	g := span{}
	g.lo, g.hi = b.Field(f)
	for _, x := range s {
		if less128(x.hi, a) && less128(g.lo, inc128(x.hi)) {
			g.lo = inc128(x.hi)
		}
		if less128(a, x.lo) && less128(dec128(x.lo), g.hi) {
			g.hi = dec128(x.lo)
		}
	}
	return g
}
