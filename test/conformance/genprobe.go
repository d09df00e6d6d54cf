package conformance

import (
	"net/netip"
	"strconv"
	"strings"
)

// maxProbes bounds a case's probes (they are sampled down to it).
const maxProbes = 130

func (g *gen) genProbes() {
	gov := g.governing()
	for pi := range g.c.Res.Policies {
		p := &g.c.Res.Policies[pi]
		ifcs := map[string]bool{}
		for _, v := range gov {
			if selects(p.Spec.Selector, v.labels) {
				ifcs[v.ifc] = true
			}
		}
		kind := kindOf(p)
		for _, dr := range []struct {
			dir   string
			rules []Rule
		}{{"Ingress", p.Spec.Ingress}, {"Egress", p.Spec.Egress}} {
			paths := pathsFor(kind, dr.dir, ifcs)
			if p.Spec.ApplyOnForward && kind == kNormal {
				paths = append(paths, pathsFor(kForward, dr.dir, ifcs)...)
			}
			if len(paths) == 0 {
				paths = []pathKind{pick(g, allPaths), pick(g, allPaths)}
			}
			for ri := range dr.rules {
				r := &dr.rules[ri]
				note := p.Name + " " + strings.ToLower(dr.dir[:2]) + itoa(ri)
				for k := 0; k < 1+g.intn(2); k++ {
					g.ruleProbes(r, pick(g, paths), note)
				}
			}
		}
	}
	// Profile rules, on the interfaces whose endpoints use them.
	for _, v := range gov {
		for _, pn := range v.hep.Spec.Profiles {
			for _, pr := range g.c.Res.Profiles {
				if pr.Name != pn {
					continue
				}
				ifcs := map[string]bool{v.ifc: true}
				for ri := range pr.Spec.Ingress {
					if ps := pathsFor(kNormal, "Ingress", ifcs); len(ps) > 0 {
						g.ruleProbes(&pr.Spec.Ingress[ri], pick(g, ps), pr.Name+" in"+itoa(ri))
					}
				}
				for ri := range pr.Spec.Egress {
					if ps := pathsFor(kNormal, "Egress", ifcs); len(ps) > 0 {
						g.ruleProbes(&pr.Spec.Egress[ri], pick(g, ps), pr.Name+" eg"+itoa(ri))
					}
				}
			}
		}
	}
	g.fixedProbes()
	for i := 0; i < 4; i++ {
		pk := pick(g, allPaths)
		fam := pick(g, []int{4, 6})
		src, dst, proto, dport := pathAddrs(pk, fam)
		if proto == 0 {
			proto = g.anyProto(fam)
		}
		g.add(pk.o, Packet{Src: src, Dst: dst, Proto: proto, DPort: orPort(dport, pick(g, interestingPorts)), ICMPType: echo(fam)}, "random", true)
	}
	if len(g.probes) > maxProbes {
		g.r.Shuffle(len(g.probes), func(i, j int) { g.probes[i], g.probes[j] = g.probes[j], g.probes[i] })
		g.probes = g.probes[:maxProbes]
	}
	// Number them in order; the number is the packet's IPv4 ID / IPv6 flow label.
	for i, p := range g.probes {
		p.ID = uint16(i + 1)
	}
	g.c.Probes = g.probes
}

func itoa(i int) string { return strconv.Itoa(i) }

func orPort(p uint16, alt int) uint16 {
	if p != 0 {
		return p
	}
	return uint16(alt)
}

func echo(fam int) uint8 {
	if fam == 6 {
		return 128
	}
	return 8
}

func (g *gen) anyProto(fam int) uint8 {
	icmp := uint8(protoICMP)
	if fam == 6 {
		icmp = protoICMPv6
	}
	return pick(g, []uint8{protoTCP, protoTCP, protoUDP, protoUDP, icmp, icmp, protoSCTP, protoUDPLite, 50})
}

// fixedProbes: failsafe ports, conntrack-invalid packets, DNAT and
// loopback paths, in both families.
func (g *gen) fixedProbes() {
	fs := []struct {
		pk    pathKind
		proto uint8
		sport uint16
		dport uint16
	}{
		{pathKind{FromClient, "local"}, protoTCP, 0, 22},
		{pathKind{FromClient, "local"}, protoUDP, 0, 68},
		{pathKind{FromClient, "local"}, protoTCP, 0, 179},
		{pathKind{FromServer, "local"}, protoTCP, 0, 6443},
		{pathKind{FromClient, "local"}, protoUDP, 53, 3000},
		{pathKind{FromClient, "local"}, protoTCP, 2379, 3000},
		{pathKind{FromGW, "client"}, protoUDP, 0, 53},
		{pathKind{FromGW, "server"}, protoTCP, 0, 2379},
		{pathKind{FromGW, "server"}, protoTCP, 22, 4000},
		{pathKind{FromClient, "server"}, protoTCP, 0, 22},
		{pathKind{FromClient, "vip12"}, protoTCP, 0, 2222},
		{pathKind{FromClient, "local"}, protoTCP, 0, 7000},
		{pathKind{FromServer, "local"}, protoTCP, 0, 7000},
		{pathKind{FromGW, "client"}, protoTCP, 0, 7001},
		{pathKind{FromClient, "local"}, protoTCP, 0, 2222},
		{pathKind{FromServer, "local"}, protoUDP, 0, 161},
		{pathKind{FromGW, "vip10"}, protoTCP, 0, 2379},
		{pathKind{FromClient, "vip11"}, protoUDP, 0, 8053},
		{pathKind{FromGW, "lo"}, protoTCP, 0, 22},
	}
	for _, f := range fs {
		fam := pick(g, []int{4, 6})
		src, dst, _, _ := pathAddrs(f.pk, fam)
		p := Packet{Src: src, Dst: dst, Proto: f.proto, SPort: f.sport, DPort: f.dport}
		g.add(f.pk.o, p, "failsafe/fixed", f.sport == 0)
	}
	for _, fam := range []int{4, 6} {
		src, dst, _, _ := pathAddrs(pathKind{FromClient, "local"}, fam)
		g.add(FromClient, Packet{Src: src, Dst: dst, Proto: protoTCP, DPort: 22, TCPFlags: tcpSYN | tcpFIN}, "ct invalid", true)
		g.add(FromClient, Packet{Src: src, Dst: dst, Proto: protoTCP, DPort: 80, TCPFlags: tcpACK}, "ct new (mid-stream)", true)
	}
	src, dst, _, _ := pathAddrs(pathKind{FromClient, "local"}, 6)
	g.add(FromClient, Packet{Src: src, Dst: dst, Proto: protoICMPv6, ICMPType: 135}, "neighbour solicitation", false)
}

// add records a probe unless an earlier probe shares its conntrack entry
// (or the packet is not one the test may send). freeSport: the source
// port is not under test, so it is made unique.
func (g *gen) add(o Origin, p Packet, note string, freeSport bool) {
	if !usable(p.Src) || !usable(p.Dst) || p.Src.Is4() != p.Dst.Is4() {
		return
	}
	if o != FromGW && isLocal(p.Src) {
		return // a martian: the kernel drops it before the filter hooks
	}
	if p.hasPorts() {
		if freeSport || p.SPort == 0 {
			g.sport++
			p.SPort = g.sport
		}
		if p.DPort == 0 {
			p.DPort = 1234
		}
	} else {
		p.SPort, p.DPort = 0, 0
	}
	if !p.isICMP() {
		p.ICMPType, p.ICMPCode = 0, 0
	}
	if p.Proto != protoTCP {
		p.TCPFlags = 0
	}
	pr := &Probe{Origin: o, Packet: p, Note: note}
	ts := pr.tuples()
	for _, t := range ts {
		if p.isICMP() {
			t.pa = 0
		}
		if g.seen[t] && !p.isICMP() {
			return
		}
	}
	for _, t := range ts {
		if !p.isICMP() {
			g.seen[t] = true
		}
	}
	g.probes = append(g.probes, pr)
}

// edges returns the addresses around a CIDR (or bare IP): one before the
// first, the first, the last, and one after the last.
func edges(cidr string) []netip.Addr {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		a, err := netip.ParseAddr(cidr)
		if err != nil {
			return nil
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	first, last := p.Masked().Addr(), lastAddr(p)
	return []netip.Addr{first.Prev(), first, last, last.Next()}
}

func firstIn(cidr string) netip.Addr {
	e := edges(cidr)
	if len(e) < 2 {
		return netip.Addr{}
	}
	// Prefer a usable inside address: the first, else the last.
	if usable(e[1]) {
		return e[1]
	}
	return e[2]
}

// setAddrs are the addresses a rule selector's IP set holds: endpoints'
// expectedIPs and network sets' nets (their first and last addresses).
func (g *gen) setAddrs(sel string, fam int) []netip.Addr {
	var out []netip.Addr
	for _, h := range g.c.Res.HEPs {
		if !selects(sel, g.labelsOf(&h)) {
			continue
		}
		for _, ip := range h.Spec.ExpectedIPs {
			if a, err := netip.ParseAddr(ip); err == nil && a.Is4() == (fam == 4) {
				out = append(out, a)
			}
		}
	}
	for _, n := range g.c.Res.NetSets {
		if !selects(sel, n.Labels) {
			continue
		}
		for _, c := range n.Spec.Nets {
			e := edges(c)
			if len(e) == 4 && e[1].Is4() == (fam == 4) {
				out = append(out, e[1], e[2])
			}
		}
	}
	return out
}

// portDefs returns the endpoint ports (any endpoint) with a name.
func (g *gen) portDefs(name string) []EndpointPort {
	var out []EndpointPort
	for _, h := range g.c.Res.HEPs {
		for _, p := range h.Spec.Ports {
			if p.Name == name {
				out = append(out, p)
			}
		}
	}
	return out
}

func protoNum(s string) uint8 {
	return Proto{Name: s}.Number()
}

// ruleProbes adds a packet the rule matches (as far as the generator can
// tell) on path pk, then variants around each of the rule's edges.
func (g *gen) ruleProbes(r *Rule, pk pathKind, note string) {
	fam := 0
	if r.IPVersion != nil {
		fam = *r.IPVersion
	}
	for _, e := range []*Entity{r.Source, r.Destination} {
		if e == nil {
			continue
		}
		for _, c := range append(append([]string{}, e.Nets...), e.NotNets...) {
			if strings.Contains(c, ":") {
				fam = 6
			} else {
				fam = 4
			}
		}
	}
	if fam == 0 {
		if r.Protocol != nil && r.Protocol.Name == "ICMPv6" {
			fam = 6
		} else if r.Protocol != nil && r.Protocol.Name == "ICMP" {
			fam = 4
		} else {
			fam = pick(g, []int{4, 4, 6})
		}
	}
	src, dst, pproto, pdport := pathAddrs(pk, fam)
	base := Packet{Src: src, Dst: dst, DPort: pdport}
	freeSport := true
	// Protocol.
	switch {
	case r.Protocol != nil:
		base.Proto = r.Protocol.Number()
		if base.Proto == protoICMP && fam == 6 {
			base.Proto = protoICMPv6
		}
	case pproto != 0:
		base.Proto = pproto
	default:
		base.Proto = g.anyProto(fam)
	}
	hasPorts := func(e *Entity) bool { return e != nil && (len(e.Ports) > 0 || len(e.NotPorts) > 0) }
	if (hasPorts(r.Source) || hasPorts(r.Destination)) && !base.hasPorts() {
		base.Proto = pick(g, []uint8{protoTCP, protoUDP})
	}
	if r.NotProtocol != nil && base.Proto == r.NotProtocol.Number() {
		for _, alt := range []uint8{protoTCP, protoUDP, protoSCTP} {
			if alt != base.Proto {
				base.Proto = alt
				break
			}
		}
	}
	// Ports.
	portOf := func(ps []Port) (uint16, uint8) {
		for _, p := range ps {
			if p.Name == "" {
				return uint16(p.Lo), 0
			}
			if defs := g.portDefs(p.Name); len(defs) > 0 {
				d := pick(g, defs)
				return uint16(d.Port), protoNum(d.Protocol)
			}
		}
		return 0, 0
	}
	if r.Destination != nil && len(r.Destination.Ports) > 0 {
		port, proto := portOf(r.Destination.Ports)
		if port != 0 {
			base.DPort = port
		}
		if proto != 0 && r.Protocol == nil {
			base.Proto = proto
		}
	}
	if r.Source != nil && len(r.Source.Ports) > 0 {
		port, proto := portOf(r.Source.Ports)
		if port != 0 {
			base.SPort, freeSport = port, false
		}
		if proto != 0 && r.Protocol == nil {
			base.Proto = proto
		}
	}
	if base.DPort == 0 {
		base.DPort = uint16(pick(g, []int{80, 443, 1234, 8080, 5000}))
	}
	// ICMP.
	base.ICMPType = echo(fam)
	if r.ICMP != nil && r.ICMP.Type != nil {
		base.ICMPType = uint8(*r.ICMP.Type)
		if r.ICMP.Code != nil {
			base.ICMPCode = uint8(*r.ICMP.Code)
		}
	}
	// Addresses.
	pickAddr := func(e *Entity, cur netip.Addr, local bool) netip.Addr {
		if e == nil {
			return cur
		}
		var cands []netip.Addr
		for _, c := range e.Nets {
			if a := firstIn(c); a.IsValid() {
				cands = append(cands, a)
			}
		}
		if e.Selector != "" {
			cands = append(cands, g.setAddrs(e.Selector, fam)...)
		}
		for _, c := range cands {
			if usable(c) && isLocal(c) == local {
				return c
			}
		}
		if len(cands) > 0 && usable(cands[0]) {
			return cands[0]
		}
		return cur
	}
	base.Src = pickAddr(r.Source, base.Src, pk.o == FromGW)
	base.Dst = pickAddr(r.Destination, base.Dst, pk.dst == "local" || pk.dst == "lo")
	g.add(pk.o, base, note+" base", freeSport)

	vary := func(what string, f func(p *Packet)) {
		v := base
		f(&v)
		g.add(pk.o, v, note+" "+what, freeSport)
	}
	// Address edges.
	for _, side := range []struct {
		name string
		e    *Entity
		set  func(p *Packet, a netip.Addr)
	}{
		{"src", r.Source, func(p *Packet, a netip.Addr) { p.Src = a }},
		{"dst", r.Destination, func(p *Packet, a netip.Addr) { p.Dst = a }},
	} {
		if side.e == nil {
			continue
		}
		for fi, list := range [][]string{side.e.Nets, side.e.NotNets} {
			for i, c := range list {
				if i >= 2 {
					break
				}
				for _, a := range edges(c) {
					a := a
					vary(side.name+[]string{".nets ", ".notNets "}[fi]+a.String(), func(p *Packet) { side.set(p, a) })
				}
			}
		}
		for fi, sel := range []string{side.e.Selector, side.e.NotSelector} {
			if sel == "" {
				continue
			}
			in := g.setAddrs(sel, fam)
			for i, a := range in {
				if i >= 2 {
					break
				}
				a := a
				vary(side.name+[]string{".selector in ", ".notSelector in "}[fi]+a.String(), func(p *Packet) { side.set(p, a) })
			}
		}
		// Port edges.
		for fi, list := range [][]Port{side.e.Ports, side.e.NotPorts} {
			for i, pt := range list {
				if i >= 2 {
					break
				}
				var nums []int
				var protos []uint8
				if pt.Name != "" {
					for _, d := range g.portDefs(pt.Name) {
						nums = append(nums, d.Port-1, d.Port, d.Port+1)
						protos = append(protos, protoNum(d.Protocol))
					}
				} else {
					nums = []int{pt.Lo - 1, pt.Lo, pt.Hi, pt.Hi + 1}
				}
				for _, n := range nums {
					if n < 1 || n > 65535 {
						continue
					}
					n := uint16(n)
					label := side.name + []string{".ports ", ".notPorts "}[fi]
					if side.name == "src" {
						vary(label+itoa(int(n)), func(p *Packet) { p.SPort = n; freeSport = false })
						freeSport = true
					} else {
						vary(label+itoa(int(n)), func(p *Packet) { p.DPort = n })
					}
				}
				for _, pr := range protos {
					other := uint8(protoTCP)
					if pr == protoTCP {
						other = protoUDP
					}
					for _, x := range []uint8{pr, other} {
						x := x
						vary(side.name+" named port protocol "+protoName(x), func(p *Packet) { p.Proto = x })
					}
				}
			}
		}
	}
	// Protocol edges.
	if r.Protocol != nil || r.NotProtocol != nil {
		alts := []uint8{protoTCP, protoUDP, echoProto(fam), protoSCTP}
		if r.NotProtocol != nil {
			alts = append(alts, r.NotProtocol.Number())
		}
		if r.Protocol != nil {
			alts = append(alts, r.Protocol.Number())
		}
		for _, x := range alts {
			x := x
			vary("protocol "+protoName(x), func(p *Packet) { p.Proto = x })
		}
	}
	// ICMP edges.
	for _, f := range []*ICMPFields{r.ICMP, r.NotICMP} {
		if f == nil || f.Type == nil {
			continue
		}
		t := *f.Type
		for _, x := range []int{t - 1, t, t + 1} {
			if x < 0 || x > 255 {
				continue
			}
			x := uint8(x)
			vary("icmp type", func(p *Packet) { p.ICMPType = x; p.ICMPCode = 0 })
			if f.Code != nil {
				c := *f.Code
				for _, y := range []int{c - 1, c, c + 1} {
					if y < 0 || y > 255 {
						continue
					}
					y := uint8(y)
					vary("icmp code", func(p *Packet) { p.ICMPType = x; p.ICMPCode = y })
				}
			}
		}
	}
	// The other family.
	if g.chance(0.3) {
		ofam := 10 - fam
		s, d, _, _ := pathAddrs(pk, ofam)
		vary("other family", func(p *Packet) {
			p.Src, p.Dst = s, d
			if p.Proto == protoICMP || p.Proto == protoICMPv6 {
				p.Proto = echoProto(ofam)
				p.ICMPType = echo(ofam)
			}
		})
	}
}

func echoProto(fam int) uint8 {
	if fam == 6 {
		return protoICMPv6
	}
	return protoICMP
}
