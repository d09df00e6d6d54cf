// Package policytest has small constructors for building policy models and
// packets in tests, so table tests read like the spec.
package policytest

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/selector"
)

// Sel parses a selector or panics.
func Sel(s string) *selector.Selector {
	x, err := selector.Parse(s)
	if err != nil {
		panic(fmt.Sprintf("selector %q: %v", s, err))
	}
	return x
}

// Order returns a pointer to v.
func Order(v float64) *float64 { return &v }

// Nets parses prefixes (bare addresses become host prefixes).
func Nets(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		if !strings.Contains(s, "/") {
			a := netip.MustParseAddr(s)
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// Addrs parses addresses.
func Addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// Ports parses "22", "1000:2000" or a port name.
func Ports(ss ...string) []policy.Port {
	var out []policy.Port
	for _, s := range ss {
		if lo, hi, ok := strings.Cut(s, ":"); ok {
			a, _ := strconv.Atoi(lo)
			b, _ := strconv.Atoi(hi)
			out = append(out, policy.Port{Min: uint16(a), Max: uint16(b)})
			continue
		}
		if n, err := strconv.Atoi(s); err == nil {
			out = append(out, policy.Port{Min: uint16(n), Max: uint16(n)})
			continue
		}
		out = append(out, policy.Port{Name: s})
	}
	return out
}

// Protocol numbers by Calico name.
var protoNames = map[string]uint8{"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPv6": 58, "SCTP": 132, "UDPLite": 136}

// Proto returns a named protocol ("TCP") or a numeric one ("6").
func Proto(s string) *policy.Protocol {
	if n, ok := protoNames[s]; ok {
		return &policy.Protocol{Num: n, Named: true}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		panic("bad protocol " + s)
	}
	return &policy.Protocol{Num: uint8(n)}
}

// Labels builds a label map from "k=v" strings.
func Labels(kv ...string) map[string]string {
	m := map[string]string{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return m
}

func pkt(fam classify.Family, proto uint8, src, dst string) classify.Packet {
	return classify.Packet{Family: fam, Proto: proto, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst)}
}

func family(addr string) classify.Family {
	if strings.Contains(addr, ":") {
		return classify.IPv6
	}
	return classify.IPv4
}

// TCP is a NEW TCP packet.
func TCP(src string, sport uint16, dst string, dport uint16) classify.Packet {
	p := pkt(family(src), classify.ProtoTCP, src, dst)
	p.SrcPort, p.DstPort = sport, dport
	return p
}

// UDP is a NEW UDP packet.
func UDP(src string, sport uint16, dst string, dport uint16) classify.Packet {
	p := TCP(src, sport, dst, dport)
	p.Proto = classify.ProtoUDP
	return p
}

// ICMP is an ICMP (IPv4) or ICMPv6 (IPv6) packet.
func ICMP(src, dst string, typ, code uint8) classify.Packet {
	proto := classify.ProtoICMP
	if family(src) == classify.IPv6 {
		proto = classify.ProtoICMPv6
	}
	p := pkt(family(src), proto, src, dst)
	p.ICMPType, p.ICMPCode = typ, code
	return p
}

// CT returns p with conntrack state s.
func CT(p classify.Packet, s classify.CTState) classify.Packet {
	p.CT = s
	return p
}

// Allow, Deny, Pass and Log are rules with the given action, changed by mods.
func Allow(mods ...func(*policy.Rule)) policy.Rule { return rule(policy.Allow, mods) }
func Deny(mods ...func(*policy.Rule)) policy.Rule  { return rule(policy.Deny, mods) }
func Pass(mods ...func(*policy.Rule)) policy.Rule  { return rule(policy.Pass, mods) }
func Log(mods ...func(*policy.Rule)) policy.Rule   { return rule(policy.Log, mods) }

func rule(a policy.Action, mods []func(*policy.Rule)) policy.Rule {
	r := policy.Rule{Action: a}
	for _, m := range mods {
		m(&r)
	}
	return r
}

// Rule modifiers.
func P(name string) func(*policy.Rule) { return func(r *policy.Rule) { r.Protocol = Proto(name) } }
func NotP(name string) func(*policy.Rule) {
	return func(r *policy.Rule) { r.NotProtocol = Proto(name) }
}
func IPv(v uint8) func(*policy.Rule) { return func(r *policy.Rule) { r.IPVersion = v } }
func DstPorts(p ...string) func(*policy.Rule) {
	return func(r *policy.Rule) { r.Destination.Ports = Ports(p...) }
}
func DstNotPorts(p ...string) func(*policy.Rule) {
	return func(r *policy.Rule) { r.Destination.NotPorts = Ports(p...) }
}
func SrcPorts(p ...string) func(*policy.Rule) {
	return func(r *policy.Rule) { r.Source.Ports = Ports(p...) }
}
func SrcNets(n ...string) func(*policy.Rule) {
	return func(r *policy.Rule) { r.Source.Nets = Nets(n...) }
}
func SrcNotNets(n ...string) func(*policy.Rule) {
	return func(r *policy.Rule) { r.Source.NotNets = Nets(n...) }
}
func DstNets(n ...string) func(*policy.Rule) {
	return func(r *policy.Rule) { r.Destination.Nets = Nets(n...) }
}
func DstNotNets(n ...string) func(*policy.Rule) {
	return func(r *policy.Rule) { r.Destination.NotNets = Nets(n...) }
}
func SrcSel(s string) func(*policy.Rule) { return func(r *policy.Rule) { r.Source.Selector = Sel(s) } }
func SrcNotSel(s string) func(*policy.Rule) {
	return func(r *policy.Rule) { r.Source.NotSelector = Sel(s) }
}
func DstSel(s string) func(*policy.Rule) {
	return func(r *policy.Rule) { r.Destination.Selector = Sel(s) }
}
func SrcNS(s string) func(*policy.Rule) {
	return func(r *policy.Rule) { r.Source.NamespaceSelector = Sel(s) }
}
func ICMPType(t uint8) func(*policy.Rule) {
	return func(r *policy.Rule) { r.ICMP = &policy.ICMPMatch{Type: t, HasType: true} }
}
func ICMPTypeCode(t, c uint8) func(*policy.Rule) {
	return func(r *policy.Rule) { r.ICMP = &policy.ICMPMatch{Type: t, HasType: true, Code: c, HasCode: true} }
}
func NotICMPType(t uint8) func(*policy.Rule) {
	return func(r *policy.Rule) { r.NotICMP = &policy.ICMPMatch{Type: t, HasType: true} }
}

// Fragment returns p as a non-first IP fragment: addresses and protocol
// only, no ports or ICMP fields.
func Fragment(p classify.Packet) classify.Packet {
	p.Class = classify.Fragment
	p.SrcPort, p.DstPort, p.ICMPType, p.ICMPCode = 0, 0, 0, 0
	return p
}

// RawIP returns a packet of an IP protocol without ports (GRE, ESP, ...).
func RawIP(src string, proto uint8, dst string) classify.Packet {
	return pkt(family(src), proto, src, dst)
}

// ICMPEmpty and NotICMPEmpty set icmp: {} and notICMP: {} (no type): Calico
// renders no ICMP match at all for them.
func ICMPEmpty() func(*policy.Rule) { return func(r *policy.Rule) { r.ICMP = &policy.ICMPMatch{} } }
func NotICMPEmpty() func(*policy.Rule) {
	return func(r *policy.Rule) { r.NotICMP = &policy.ICMPMatch{} }
}
func SrcNotPorts(p ...string) func(*policy.Rule) {
	return func(r *policy.Rule) { r.Source.NotPorts = Ports(p...) }
}
