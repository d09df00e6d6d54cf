package conformance

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"

	"github.com/nfgate/nfgate/policy/selector"
)

// GenOptions steer the generator.
type GenOptions struct {
	// Clean leaves out the constructs of issue 11's known deviations
	// (ports with notPorts, named ports without protocol, namespace and
	// service account selectors, http rules, missing profiles, dotted
	// policy names in another tier, performance hints).
	Clean bool
}

// Case is one generated configuration with the probes sent through it.
type Case struct {
	Name   string
	Seed   uint64
	Res    Resources
	Probes []*Probe
	Pairs  []string // the rule field pairs this case's rules focus on
}

// Rule fields the generator combines ("every pair of fields in one rule").
var ruleAtoms = []string{
	"protocol", "notProtocol", "ipVersion", "icmp", "notICMP", "metadata",
	"src.nets", "src.notNets", "src.selector", "src.notSelector", "src.ports", "src.notPorts", "src.namedPorts", "src.notNamedPorts",
	"dst.nets", "dst.notNets", "dst.selector", "dst.notSelector", "dst.ports", "dst.notPorts", "dst.namedPorts", "dst.notNamedPorts",
}

// knownAtoms are rule fields of issue 11's known deviations that nfgate
// loads (item 4). Fields nfgate refuses today (serviceAccounts, http) would
// leave a whole case without a comparison; refuseConstructs puts them in
// a few cases only.
var knownAtoms = []string{"src.namespaceSelector", "dst.namespaceSelector"}

func isPortAtom(a string) bool { return strings.Contains(a, "orts") }

func numericPortAtom(a string) bool { return isPortAtom(a) && !strings.Contains(a, "amed") }

// atomPairs lists every valid pair of rule fields, in a fixed order.
func atomPairs(clean bool) [][2]string {
	atoms := append([]string{}, ruleAtoms...)
	if !clean {
		atoms = append(atoms, knownAtoms...)
	}
	var out [][2]string
	for i, a := range atoms {
		for _, b := range atoms[i+1:] {
			icmpA := a == "icmp" || a == "notICMP"
			icmpB := b == "icmp" || b == "notICMP"
			if (icmpA && isPortAtom(b)) || (icmpB && isPortAtom(a)) {
				continue // ports need TCP/UDP/SCTP, ICMP fields need ICMP: never valid together
			}
			if (a == "http" && (icmpB)) || (b == "http" && icmpA) {
				continue // http needs TCP
			}
			if a == "protocol" && b == "notProtocol" || a == "notProtocol" && b == "protocol" ||
				a == "notProtocol" && numericPortAtom(b) || b == "notProtocol" && numericPortAtom(a) {
				// Felix's iptables renderer writes "-p X ! -p Y", which
				// iptables-restore refuses: the whole table update fails
				// and Felix retries forever (no reference verdict). A
				// numeric port needs a protocol, so it cannot go with
				// notProtocol either.
				continue
			}
			if clean && strings.HasPrefix(a, "src.") && strings.HasPrefix(b, "src.") && isPortAtom(a) && isPortAtom(b) &&
				strings.Contains(a, "not") != strings.Contains(b, "not") {
				continue // ports with notPorts: issue 11 item 1
			}
			if clean && strings.HasPrefix(a, "dst.") && strings.HasPrefix(b, "dst.") && isPortAtom(a) && isPortAtom(b) &&
				strings.Contains(a, "not") != strings.Contains(b, "not") {
				continue
			}
			out = append(out, [2]string{a, b})
		}
	}
	// Interleave so that consecutive pairs rarely share a field.
	r := rand.New(rand.NewPCG(11, 11))
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// sampleSeeds is the size of the fixed sample `make test` runs; with
// rulesPerCase pairs per case it covers every pair of rule fields.
const sampleSeeds = 24

// rulesPerCase is how many focus pairs a case takes from the schedule.
const rulesPerCase = 11

type gen struct {
	r      *rand.Rand
	o      GenOptions
	c      *Case
	pairs  [][2]string
	next   int // next focus pair index
	probes []*Probe
	seen   map[tuple]bool
	sport  uint16
}

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }
func (g *gen) intn(n int) int        { return g.r.IntN(n) }
func pick[T any](g *gen, xs []T) T   { return xs[g.r.IntN(len(xs))] }

// Generate makes the case of one seed.
func Generate(seed uint64, o GenOptions) *Case {
	g := &gen{r: rand.New(rand.NewPCG(seed, 0x6e6667)), o: o, c: &Case{Name: fmt.Sprintf("seed%d", seed), Seed: seed},
		pairs: atomPairs(o.Clean), seen: map[tuple]bool{}, sport: 20000}
	g.next = int(seed*rulesPerCase) % len(g.pairs)
	g.felix()
	g.netSets()
	g.profiles()
	g.heps()
	g.tiers()
	g.policies()
	if !o.Clean && g.chance(0.08) {
		g.refuseConstruct()
	}
	g.genProbes()
	return g.c
}

// ---------------------------------------------------------------- resources

var (
	labelKeys   = []string{"role", "zone", "app.example.org/name", "host"}
	labelValues = []string{"a", "b", "web", "db"}
	portPool    = []EndpointPort{{"web", "TCP", 80}, {"web", "UDP", 8080}, {"dns", "UDP", 53}, {"mgmt", "UDP", 161},
		{"ssh", "TCP", 22}, {"alt", "TCP", 8080}, {"sc", "SCTP", 9999}, {"dual", "TCP", 7000}, {"dual", "UDP", 7001}}
)

func (g *gen) felix() {
	if !g.chance(0.25) {
		return
	}
	t := true
	switch g.intn(4) {
	case 0:
		in := []ProtoPort{{"TCP", 22, ""}, {"UDP", 68, ""}, {"TCP", 7000, "198.18.1.0/24"}}
		out := []ProtoPort{{"UDP", 53, ""}, {"TCP", 7001, ""}}
		g.c.Res.Felix = &FelixSpec{FailsafeInboundHostPorts: &in, FailsafeOutboundHostPorts: &out}
	case 1:
		in, out := []ProtoPort{}, []ProtoPort{}
		g.c.Res.Felix = &FelixSpec{FailsafeInboundHostPorts: &in, FailsafeOutboundHostPorts: &out}
	case 2:
		in := []ProtoPort{{"TCP", 2222, ""}, {"TCP", 22, "2001:db8:1::/64"}, {"UDP", 161, "198.18.2.0/25"}}
		g.c.Res.Felix = &FelixSpec{FailsafeInboundHostPorts: &in}
	case 3:
		g.c.Res.Felix = &FelixSpec{DisableConntrackInvalidCheck: &t}
	}
}

func (g *gen) labels(extra map[string]string) map[string]string {
	l := map[string]string{}
	for k, v := range extra {
		l[k] = v
	}
	for i := g.intn(3); i > 0; i-- {
		l[pick(g, labelKeys)] = pick(g, labelValues)
	}
	if len(l) == 0 {
		return nil
	}
	return l
}

func (g *gen) netSets() {
	pools := [][]string{
		{"198.18.1.0/28", "2001:db8:1::/124"}, {"198.18.1.2/32"}, {"198.18.5.0/24", "2001:db8:5::/64"},
		{"198.18.2.0/25"}, {"2001:db8:2::/120", "198.18.2.128/25"}, {"198.18.16.0/20"},
	}
	for i := g.intn(3); i > 0; i-- {
		name := fmt.Sprintf("ns-%d", len(g.c.Res.NetSets))
		nets := pick(g, pools)
		g.c.Res.NetSets = append(g.c.Res.NetSets, NetSet{Meta{name, g.labels(map[string]string{"set": name})}, NetSetSpec{append([]string{}, nets...)}})
	}
}

func (g *gen) profiles() {
	for i := g.intn(3); i > 0; i-- {
		name := fmt.Sprintf("prof-%d", len(g.c.Res.Profiles))
		p := Profile{Meta: Meta{Name: name}}
		if g.chance(0.5) {
			p.Spec.LabelsToApply = g.labels(nil)
		}
		ctx := &ruleCtx{}
		for j := g.intn(3); j > 0; j-- {
			p.Spec.Ingress = append(p.Spec.Ingress, g.rule(ctx, g.randomAtoms()))
		}
		for j := g.intn(3); j > 0; j-- {
			p.Spec.Egress = append(p.Spec.Egress, g.rule(ctx, g.randomAtoms()))
		}
		g.c.Res.Profiles = append(g.c.Res.Profiles, p)
	}
}

func (g *gen) hepPorts() []EndpointPort {
	var out []EndpointPort
	used := map[string]bool{}
	for i := g.intn(4); i > 0; i-- {
		p := pick(g, portPool)
		if !used[p.Name] {
			used[p.Name] = true
			out = append(out, p)
		}
	}
	return out
}

func (g *gen) hepProfiles() []string {
	switch x := g.r.Float64(); {
	case x < 0.5:
		return nil
	case x < 0.7:
		return []string{"projectcalico-default-allow"}
	default:
		var out []string
		for _, p := range g.c.Res.Profiles {
			if g.chance(0.6) {
				out = append(out, p.Name)
			}
		}
		if len(out) > 1 && g.chance(0.3) {
			out = append(out, "projectcalico-default-allow")
		}
		return out
	}
}

func addrStrings(as []netip.Addr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

func (g *gen) someAddrs(as []netip.Addr, atLeastOne bool) []string {
	var out []string
	for _, a := range as {
		if g.chance(0.6) {
			out = append(out, a.String())
		}
	}
	if len(out) == 0 && atLeastOne {
		out = []string{pick(g, as).String()}
	}
	return out
}

func (g *gen) heps() {
	add := func(name, ifc string, ips []string, labels map[string]string, node string) {
		h := HEP{Meta{name, labels}, HEPSpec{Node: node, InterfaceName: ifc, ExpectedIPs: ips}}
		if node == "gw" {
			h.Spec.Profiles = g.hepProfiles()
		}
		h.Spec.Ports = g.hepPorts()
		g.c.Res.HEPs = append(g.c.Res.HEPs, h)
	}
	for _, ifc := range []string{"eth0", "eth1"} {
		if !g.chance(0.85) {
			continue
		}
		name, name2 := "gw-"+ifc, ifc
		lbl := g.labels(map[string]string{"if": ifc})
		switch {
		case g.chance(0.8):
			add(name, ifc, g.someAddrs(gwAddrs[ifc], false), lbl, "gw")
		default:
			add(name, "", g.someAddrs(gwAddrs[ifc], true), lbl, "gw")
		}
		if g.chance(0.08) {
			// Two endpoints claim the interface: the alphabetically first wins.
			add("a-"+name2, "", g.someAddrs(gwAddrs[ifc], true), g.labels(map[string]string{"if": ifc + "b"}), "gw")
		}
	}
	if g.chance(0.25) {
		add("gw-all", "*", nil, g.labels(map[string]string{"if": "all"}), "gw")
	}
	if g.chance(0.06) {
		add("gw-lo", "lo", nil, g.labels(map[string]string{"if": "lo"}), "gw")
	}
	// Endpoints of another node: they govern nothing here, but rule
	// selectors and named ports use their addresses.
	add("srv", "eth0", []string{serverIP4.String(), serverIP6.String()}, g.labels(map[string]string{"host": "server"}), "other")
	if g.chance(0.7) {
		add("cli", "", []string{clientIP4.String(), clientIP6.String()}, g.labels(map[string]string{"host": "client"}), "other")
	}
}

var tierOrders = []float64{50, 100, 100, 1500, 2000000}

func (g *gen) tiers() {
	for i := g.intn(3); i > 0; i-- {
		name := fmt.Sprintf("t%d", len(g.c.Res.Tiers)+1)
		t := Tier{Meta: Meta{Name: name}, Spec: TierSpec{DefaultAction: pick(g, []string{"Deny", "Pass", ""})}}
		if g.chance(0.85) {
			o := pick(g, tierOrders)
			t.Spec.Order = &o
		}
		g.c.Res.Tiers = append(g.c.Res.Tiers, t)
	}
}

// policy kinds
const (
	kNormal  = "normal"
	kForward = "forward"
	kPreDNAT = "preDNAT"
	kDNT     = "doNotTrack"
)

var policyOrders = []float64{1, 10, 10, 100, 100.5, 500}

func (g *gen) policies() {
	n := 1 + g.intn(5)
	names := map[string]bool{}
	rulesLeft := rulesPerCase
	for i := 0; i < n; i++ {
		kind := pick(g, []string{kNormal, kNormal, kNormal, kForward, kForward, kPreDNAT, kDNT, kDNT})
		tier := "default"
		if len(g.c.Res.Tiers) > 0 && g.chance(0.4) {
			tier = pick(g, g.c.Res.Tiers).Name
		} else if g.chance(0.05) {
			tier = pick(g, []string{"kube-admin", "kube-baseline"})
		}
		base := pick(g, []string{"p", "p-a", "pa", "p0", "q", "p-b"})
		name := base
		for j := 1; names[name]; j++ {
			name = fmt.Sprintf("%s%d", base, j)
		}
		names[name] = true
		full := name
		if tier != "default" && g.chance(0.3) {
			full = tier + "." + name
		}
		p := GNP{Meta: Meta{Name: full}, Spec: GNPSpec{Tier: tier}}
		if tier == "default" && g.chance(0.5) {
			p.Spec.Tier = "" // defaults to "default"
		}
		if g.chance(0.8) {
			o := pick(g, policyOrders)
			p.Spec.Order = &o
		}
		p.Spec.Selector = g.policySelector()
		switch kind {
		case kForward:
			p.Spec.ApplyOnForward = true
		case kPreDNAT:
			p.Spec.PreDNAT, p.Spec.ApplyOnForward = true, true
		case kDNT:
			p.Spec.DoNotTrack, p.Spec.ApplyOnForward = true, true
		case kNormal:
			p.Spec.ApplyOnForward = g.chance(0.15)
		}
		if !g.o.Clean && g.chance(0.04) {
			if g.chance(0.5) {
				p.Spec.NamespaceSelector = pick(g, []string{"!has(team)", "has(team)", "team != 'a'", "all()"})
			} else {
				p.Spec.ServiceAccountSelector = pick(g, []string{"!has(sa)", "sa == 'x'", "all()"})
			}
		}
		// Rules: the case's focus pairs go to its policies in turn.
		nRules := rulesLeft / (n - i)
		if i == n-1 {
			nRules = rulesLeft
		}
		rulesLeft -= nRules
		dirs := []string{"Ingress", "Egress"}
		if kind == kPreDNAT {
			dirs = []string{"Ingress"}
		}
		ctxs := map[string]*ruleCtx{}
		for _, d := range dirs {
			ctxs[d] = &ruleCtx{dir: d, kind: kind}
		}
		for j := 0; j < nRules; j++ {
			d := pick(g, dirs)
			atoms := g.focusAtoms()
			r := g.rule(ctxs[d], atoms)
			if d == "Ingress" {
				p.Spec.Ingress = append(p.Spec.Ingress, r)
			} else {
				p.Spec.Egress = append(p.Spec.Egress, r)
			}
		}
		// types: explicit, or left for defaulting.
		if g.chance(0.5) || (len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0 && kind != kPreDNAT && g.chance(0.5)) {
			var ts []string
			if len(p.Spec.Ingress) > 0 || (kind == kPreDNAT) || g.chance(0.3) {
				ts = append(ts, "Ingress")
			}
			if kind != kPreDNAT && (len(p.Spec.Egress) > 0 || g.chance(0.3)) {
				ts = append(ts, "Egress")
			}
			p.Spec.Types = ts
		}
		g.c.Res.Policies = append(g.c.Res.Policies, p)
	}
	// Pairs not placed (a case with fewer rules) are simply skipped.
}

func (g *gen) focusAtoms() []string {
	pr := g.pairs[g.next%len(g.pairs)]
	g.next++
	g.c.Pairs = append(g.c.Pairs, pr[0]+"+"+pr[1])
	atoms := []string{pr[0], pr[1]}
	if g.chance(0.25) {
		atoms = addAtom(atoms, pick(g, ruleAtoms))
	}
	return atoms
}

func (g *gen) randomAtoms() []string {
	var atoms []string
	for i := g.intn(3); i > 0; i-- {
		atoms = addAtom(atoms, pick(g, ruleAtoms))
	}
	return atoms
}

// addAtom adds a field unless it cannot go with those already there.
func addAtom(atoms []string, a string) []string {
	icmp := func(x string) bool { return x == "icmp" || x == "notICMP" }
	for _, b := range atoms {
		if (icmp(a) && (isPortAtom(b) || b == "http")) || (icmp(b) && isPortAtom(a)) ||
			(a == "notProtocol" && (b == "protocol" || numericPortAtom(b))) || (b == "notProtocol" && (a == "protocol" || numericPortAtom(a))) {
			return atoms
		}
	}
	return append(atoms, a)
}

func (g *gen) policySelector() string {
	switch x := g.r.Float64(); {
	case x < 0.45:
		return fmt.Sprintf("if == '%s'", pick(g, []string{"eth0", "eth1", "eth0", "eth1", "all", "lo", "eth0b"}))
	case x < 0.55:
		return "if in {'eth0', 'eth1'}"
	case x < 0.62:
		return "has(if)"
	case x < 0.68:
		return ""
	case x < 0.72:
		return "all()"
	default:
		return g.selectorExpr(2)
	}
}

// selectorExpr is a random selector over the label pool.
func (g *gen) selectorExpr(depth int) string {
	k, v := pick(g, labelKeys), pick(g, labelValues)
	if k == "host" {
		v = pick(g, []string{"server", "client", "a"})
	}
	var atom string
	switch g.intn(10) {
	case 0:
		atom = fmt.Sprintf("%s == '%s'", k, v)
	case 1:
		atom = fmt.Sprintf("%s != '%s'", k, v)
	case 2:
		atom = fmt.Sprintf("has(%s)", k)
	case 3:
		atom = fmt.Sprintf("!has(%s)", k)
	case 4:
		atom = fmt.Sprintf("%s in {'%s', '%s'}", k, v, pick(g, labelValues))
	case 5:
		atom = fmt.Sprintf("%s not in {'%s'}", k, v)
	case 6:
		atom = fmt.Sprintf("%s contains '%s'", k, v[:1])
	case 7:
		atom = fmt.Sprintf("%s starts with '%s'", k, v[:1])
	case 8:
		atom = fmt.Sprintf("%s ends with '%s'", k, v[len(v)-1:])
	default:
		atom = fmt.Sprintf("set == 'ns-%d'", g.intn(2))
	}
	if depth > 0 && g.chance(0.3) {
		op := pick(g, []string{" && ", " || "})
		other := g.selectorExpr(depth - 1)
		if g.chance(0.3) {
			return "!(" + atom + op + other + ")"
		}
		return "(" + atom + op + other + ")"
	}
	return atom
}

// ---------------------------------------------------------------- rules

// ruleCtx is where a policy's rules apply (for address choices).
type ruleCtx struct {
	dir  string // Ingress / Egress ("" for profiles)
	kind string
}

// addrPool returns interesting addresses for a rule side (src/dst) of family fam.
func (ctx *ruleCtx) addrPool(side string, fam int) []netip.Addr {
	v4 := []string{"198.18.1.2", "198.18.1.5", "198.18.1.130", "198.18.5.5", "198.18.2.2", "198.18.2.50", "198.18.20.1"}
	v4loc := []string{"198.18.1.1", "198.18.1.100", "198.18.2.1"}
	v4vip := []string{"198.18.3.10", "198.18.3.11", "198.18.3.12"}
	v6 := []string{"2001:db8:1::2", "2001:db8:1::5", "2001:db8:1::8000", "2001:db8:5::5", "2001:db8:2::2", "2001:db8:2::50"}
	v6loc := []string{"2001:db8:1::1", "2001:db8:1::100", "2001:db8:2::1"}
	v6vip := []string{"2001:db8:3::10", "2001:db8:3::11", "2001:db8:3::12"}
	remote, local, vip := v4, v4loc, v4vip
	if fam == 6 {
		remote, local, vip = v6, v6loc, v6vip
	}
	var pool []string
	switch {
	case ctx.kind == kPreDNAT && side == "dst":
		pool = append(append(vip, local...), remote[4:]...)
	case ctx.kind == kForward:
		pool = remote
	case (ctx.dir == "Ingress" && side == "dst") || (ctx.dir == "Egress" && side == "src"):
		pool = local
	case ctx.dir == "":
		pool = append(append([]string{}, remote...), local...)
	default:
		pool = remote
	}
	out := make([]netip.Addr, len(pool))
	for i, s := range pool {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

var protoPool = []Proto{{Name: "TCP"}, {Name: "UDP"}, {Name: "ICMP"}, {Name: "ICMPv6"}, {Name: "SCTP"}, {Name: "UDPLite"},
	{Num: 6}, {Num: 17}, {Num: 1}, {Num: 58}, {Num: 50}, {Num: 132}}
var portProtos = []Proto{{Name: "TCP"}, {Name: "UDP"}, {Name: "SCTP"}, {Name: "TCP"}, {Name: "UDP"}, {Num: 6}, {Num: 17}}

func portCapable(p *Proto) bool {
	if p == nil {
		return false
	}
	n := p.Number()
	return n == protoTCP || n == protoUDP || n == protoSCTP
}

var interestingPorts = []int{1, 22, 53, 80, 161, 443, 1000, 2222, 7000, 8053, 8080, 9999, 65535}

func (g *gen) portEntry() Port {
	if g.chance(0.6) {
		p := pick(g, interestingPorts)
		return Port{Lo: p, Hi: p}
	}
	lo := pick(g, interestingPorts)
	hi := lo + pick(g, []int{0, 1, 2, 10, 100, 1000})
	if hi > 65535 {
		hi = 65535
	}
	return Port{Lo: lo, Hi: hi}
}

func (g *gen) ports(named bool) []Port {
	var out []Port
	n := 1 + g.intn(2)
	for i := 0; i < n; i++ {
		if named {
			name := pick(g, portPool).Name
			if g.chance(0.1) {
				name = "nosuch"
			}
			out = append(out, Port{Name: name})
		} else {
			out = append(out, g.portEntry())
		}
	}
	if named && g.chance(0.3) {
		out = append(out, g.portEntry())
	}
	return out
}

func (g *gen) cidr(a netip.Addr) string {
	var bits int
	if a.Is4() {
		bits = pick(g, []int{32, 31, 30, 28, 25, 24, 23, 16})
	} else {
		bits = pick(g, []int{128, 127, 126, 120, 64, 63, 48})
	}
	p := netip.PrefixFrom(a, bits).Masked()
	if bits == 32 || bits == 128 {
		if !g.o.Clean && g.chance(0.05) {
			// A bare IP: Calico's validator refuses it (issue 11 item
			// 10), so the whole case compares only the refusal: rare.
			return a.String()
		}
	}
	return p.String()
}

func (g *gen) nets(ctx *ruleCtx, side string, fam int) []string {
	pool := ctx.addrPool(side, fam)
	var out []string
	for i := 1 + g.intn(2); i > 0; i-- {
		out = append(out, g.cidr(pick(g, pool)))
	}
	return out
}

func (g *gen) ruleSelector() string {
	switch x := g.r.Float64(); {
	case x < 0.25:
		return fmt.Sprintf("host == '%s'", pick(g, []string{"server", "client"}))
	case x < 0.4:
		return fmt.Sprintf("set == 'ns-%d'", g.intn(2))
	case x < 0.45:
		return "all()"
	case x < 0.5:
		return fmt.Sprintf("if == '%s'", pick(g, []string{"eth0", "eth1"}))
	default:
		return g.selectorExpr(1)
	}
}

func intp(v int) *int { return &v }

// rule builds a valid rule with the given fields set, and whatever else
// validity needs (a protocol for ports, ...).
func (g *gen) rule(ctx *ruleCtx, atoms []string) Rule {
	r := Rule{Action: pick(g, []string{"Allow", "Allow", "Deny", "Deny", "Pass", "Log"})}
	has := map[string]bool{}
	for _, a := range atoms {
		has[a] = true
	}
	fam := 0
	if has["ipVersion"] || has["src.nets"] || has["dst.nets"] || has["src.notNets"] || has["dst.notNets"] || has["icmp"] || has["notICMP"] || g.chance(0.2) {
		fam = pick(g, []int{4, 4, 6})
	}
	anyPorts := false
	for _, a := range atoms {
		if isPortAtom(a) {
			anyPorts = true
		}
	}
	onlyNamed := anyPorts
	for _, a := range atoms {
		if isPortAtom(a) && !strings.Contains(a, "amed") {
			onlyNamed = false
		}
	}
	switch {
	case has["icmp"] || has["notICMP"]:
		if fam == 6 {
			r.Protocol = &Proto{Name: "ICMPv6"}
		} else {
			r.Protocol = &Proto{Name: "ICMP"}
		}
	case has["http"]:
		if g.chance(0.5) {
			r.Protocol = &Proto{Name: "TCP"}
		}
		r.Action = "Allow"
		r.HTTP = &HTTPMatch{Methods: []string{"GET"}}
	case anyPorts:
		// Named ports alone may go without a protocol (they then match
		// the endpoint port's own protocol: issue 11 item 2).
		if !onlyNamed || g.o.Clean || g.chance(0.6) {
			p := pick(g, portProtos)
			r.Protocol = &p
		}
	case has["protocol"]:
		p := pick(g, protoPool)
		r.Protocol = &p
	}
	if has["http"] && anyPorts {
		r.Protocol = &Proto{Name: "TCP"}
	}
	if has["notProtocol"] && r.Protocol == nil && !anyNumeric(atoms) {
		p := pick(g, protoPool)
		if r.Protocol != nil && g.chance(0.8) {
			for p.Number() == r.Protocol.Number() {
				p = pick(g, protoPool)
			}
		}
		r.NotProtocol = &p
	}
	if has["ipVersion"] {
		r.IPVersion = intp(fam)
	}
	icmp := func() *ICMPFields {
		var types []int
		if fam == 6 {
			types = []int{1, 128, 129, 135, 136, 139, 0, 254}
		} else {
			types = []int{0, 3, 8, 11, 13, 254, 128}
		}
		f := &ICMPFields{Type: intp(pick(g, types))}
		if g.chance(0.4) {
			f.Code = intp(pick(g, []int{0, 1, 3, 255}))
		}
		return f
	}
	if has["icmp"] {
		r.ICMP = icmp()
	}
	if has["notICMP"] {
		r.NotICMP = icmp()
	}
	if has["metadata"] {
		r.Metadata = &RuleMeta{Annotations: map[string]string{"note": "generated"}}
	}
	ent := func(side string) *Entity {
		e := &Entity{}
		pre := side + "."
		netFam := fam
		if netFam == 0 {
			netFam = 4
		}
		if has[pre+"nets"] {
			e.Nets = g.nets(ctx, side, netFam)
		}
		if has[pre+"notNets"] {
			e.NotNets = g.nets(ctx, side, netFam)
		}
		if has[pre+"selector"] {
			e.Selector = g.ruleSelector()
		}
		if has[pre+"notSelector"] {
			e.NotSelector = g.ruleSelector()
		}
		if has[pre+"ports"] {
			e.Ports = g.ports(false)
		}
		if has[pre+"namedPorts"] {
			e.Ports = append(e.Ports, g.ports(true)...)
		}
		if has[pre+"notPorts"] {
			e.NotPorts = g.ports(false)
		}
		if has[pre+"notNamedPorts"] {
			e.NotPorts = append(e.NotPorts, g.ports(true)...)
		}
		if has[pre+"namespaceSelector"] {
			e.NamespaceSelector = pick(g, []string{"global()", "!has(team)", "has(team)", "team == 'a'", "team != 'a'", "all()"})
			if e.NamespaceSelector == "global()" || e.NamespaceSelector == "all()" {
				// the namespace selector scopes the selector
				if e.Selector == "" && g.chance(0.5) {
					e.Selector = g.ruleSelector()
				}
			}
		}
		if has[pre+"serviceAccounts"] {
			if g.chance(0.5) {
				e.ServiceAccounts = &ServiceAccounts{Names: []string{"sa1"}}
			} else {
				e.ServiceAccounts = &ServiceAccounts{Selector: pick(g, []string{"!has(sa)", "sa == 'x'"})}
			}
		}
		if e.empty() {
			return nil
		}
		return e
	}
	r.Source, r.Destination = ent("src"), ent("dst")
	// A numeric port needs a port protocol; rarely left out, to compare
	// the two validators on it.
	if r.Protocol == nil && (hasNumeric(r.Source) || hasNumeric(r.Destination)) && !g.chance(0.03) {
		p := pick(g, portProtos)
		r.Protocol = &p
		r.NotProtocol = nil // Felix cannot render protocol with notProtocol (see atomPairs)
	}
	if r.IPVersion == nil && fam != 0 && g.chance(0.3) {
		r.IPVersion = intp(fam)
	}
	// Protocol ICMP/ICMPv6 (by name or by number) must agree with ipVersion.
	if r.IPVersion != nil {
		fix := func(p *Proto) *Proto {
			if p == nil {
				return nil
			}
			switch {
			case p.Number() == protoICMP && *r.IPVersion == 6:
				return &Proto{Name: "ICMPv6"}
			case p.Number() == protoICMPv6 && *r.IPVersion == 4:
				return &Proto{Name: "ICMP"}
			}
			return p
		}
		r.Protocol, r.NotProtocol = fix(r.Protocol), fix(r.NotProtocol)
	}
	return r
}

// ---------------------------------------------------------------- probes

// gwView is, for one gateway interface, the endpoint that governs it.
type gwView struct {
	ifc    string
	hep    *HEP
	labels map[string]string // with profile labels inherited
}

func (g *gen) governing() []gwView { return governingViews(&g.c.Res) }

// governingViews lists, for the gateway's interfaces, the endpoint that
// governs each (named endpoint, alphabetically first; else the "*" one).
func governingViews(r *Resources) []gwView {
	var out []gwView
	for _, ifc := range []string{"eth0", "eth1", "lo"} {
		var cands []*HEP
		var star *HEP
		for i := range r.HEPs {
			h := &r.HEPs[i]
			if h.Spec.Node != "gw" {
				continue
			}
			switch h.Spec.InterfaceName {
			case "*":
				if star == nil || h.Name < star.Name {
					star = h
				}
			case ifc:
				cands = append(cands, h)
			case "":
				for _, ip := range h.Spec.ExpectedIPs {
					for _, a := range gwAddrs[ifc] {
						if a.String() == ip {
							cands = append(cands, h)
						}
					}
				}
			}
		}
		sort.Slice(cands, func(i, j int) bool { return cands[i].Name < cands[j].Name })
		h := star
		if len(cands) > 0 {
			h = cands[0]
		}
		if h == nil {
			continue
		}
		out = append(out, gwView{ifc, h, labelsOfHEP(r, h)})
	}
	return out
}

func (g *gen) labelsOf(h *HEP) map[string]string { return labelsOfHEP(&g.c.Res, h) }

// labelsOfHEP: an endpoint's labels with its profiles' labelsToApply.
func labelsOfHEP(r *Resources, h *HEP) map[string]string {
	l := map[string]string{}
	for _, pn := range h.Spec.Profiles {
		for _, p := range r.Profiles {
			if p.Name == pn {
				for k, v := range p.Spec.LabelsToApply {
					l[k] = v
				}
			}
		}
	}
	for k, v := range h.Labels {
		l[k] = v
	}
	return l
}

func selects(expr string, labels map[string]string) bool {
	if strings.TrimSpace(expr) == "" {
		return true
	}
	s, err := selector.Parse(expr)
	if err != nil {
		return false
	}
	return s.Evaluate(labels)
}

// pathKind is a way through the gateway: an origin and where to.
type pathKind struct {
	o   Origin
	dst string // local, client, server, vip10, vip11, vip12, lo
}

// pathsFor lists the paths on which a policy's rules of a direction run.
func pathsFor(kind, dir string, ifcs map[string]bool) []pathKind {
	var out []pathKind
	add := func(cond bool, ps ...pathKind) {
		if cond {
			out = append(out, ps...)
		}
	}
	e0, e1, lo := ifcs["eth0"], ifcs["eth1"], ifcs["lo"]
	switch {
	case kind == kNormal && dir == "Ingress":
		add(e0, pathKind{FromClient, "local"})
		add(e1, pathKind{FromServer, "local"})
		add(lo, pathKind{FromGW, "lo"})
	case kind == kNormal && dir == "Egress":
		add(e0, pathKind{FromGW, "client"})
		add(e1, pathKind{FromGW, "server"}, pathKind{FromGW, "vip10"})
		add(lo, pathKind{FromGW, "lo"})
	case kind == kForward && dir == "Ingress":
		add(e0, pathKind{FromClient, "server"}, pathKind{FromClient, "vip10"}, pathKind{FromClient, "local"})
		add(e1, pathKind{FromServer, "client"}, pathKind{FromServer, "local"})
		add(lo, pathKind{FromGW, "lo"})
	case kind == kForward && dir == "Egress":
		add(e0, pathKind{FromServer, "client"}, pathKind{FromGW, "client"})
		add(e1, pathKind{FromClient, "server"}, pathKind{FromClient, "vip11"}, pathKind{FromGW, "server"})
	case kind == kPreDNAT:
		add(e0, pathKind{FromClient, "vip10"}, pathKind{FromClient, "vip11"}, pathKind{FromClient, "vip12"}, pathKind{FromClient, "local"}, pathKind{FromClient, "server"})
		add(e1, pathKind{FromServer, "local"}, pathKind{FromServer, "client"}, pathKind{FromServer, "vip10"})
		add(lo, pathKind{FromGW, "lo"})
	case kind == kDNT && dir == "Ingress":
		add(e0, pathKind{FromClient, "local"}, pathKind{FromClient, "server"}, pathKind{FromClient, "vip10"})
		add(e1, pathKind{FromServer, "local"}, pathKind{FromServer, "client"})
	case kind == kDNT && dir == "Egress":
		add(e0, pathKind{FromGW, "client"}, pathKind{FromGW, "vip10"})
		add(e1, pathKind{FromGW, "server"})
	}
	return out
}

var allPaths = []pathKind{{FromClient, "local"}, {FromClient, "server"}, {FromServer, "local"}, {FromServer, "client"},
	{FromGW, "client"}, {FromGW, "server"}, {FromClient, "vip10"}, {FromClient, "vip11"}, {FromClient, "vip12"},
	{FromGW, "vip10"}, {FromGW, "lo"}}

func kindOf(p *GNP) string {
	switch {
	case p.Spec.DoNotTrack:
		return kDNT
	case p.Spec.PreDNAT:
		return kPreDNAT
	case p.Spec.ApplyOnForward && pickForward(p):
		return kForward
	}
	return kNormal
}

// pickForward: an applyOnForward normal policy applies to both local and
// forwarded traffic; its probes are split by policy name parity.
func pickForward(p *GNP) bool { return len(p.Name)%2 == 0 }

// defaults for a path kind and family: source, destination, protocol, port.
func pathAddrs(pk pathKind, fam int) (src, dst netip.Addr, proto uint8, dport uint16) {
	v4 := fam == 4
	a := func(s4, s6 string) netip.Addr {
		if v4 {
			return mustAddr(s4)
		}
		return mustAddr(s6)
	}
	switch pk.o {
	case FromClient:
		src = a("198.18.1.2", "2001:db8:1::2")
	case FromServer:
		src = a("198.18.2.2", "2001:db8:2::2")
	case FromGW:
		src = a("198.18.1.1", "2001:db8:1::1")
		if pk.dst == "server" || pk.dst == "vip10" {
			src = a("198.18.2.1", "2001:db8:2::1")
		}
	}
	switch pk.dst {
	case "local":
		dst = a("198.18.1.1", "2001:db8:1::1")
		if pk.o == FromServer {
			dst = a("198.18.2.1", "2001:db8:2::1")
		}
	case "client":
		dst = a("198.18.1.2", "2001:db8:1::2")
	case "server":
		dst = a("198.18.2.2", "2001:db8:2::2")
	case "vip10":
		dst = a("198.18.3.10", "2001:db8:3::10")
	case "vip11":
		dst, proto, dport = a("198.18.3.11", "2001:db8:3::11"), protoTCP, 8080
	case "vip12":
		dst, proto, dport = a("198.18.3.12", "2001:db8:3::12"), protoTCP, 2222
	case "lo":
		dst = a("198.18.1.100", "2001:db8:1::100")
	}
	return
}

// refuseConstruct adds one construct Calico accepts and nfgate refuses
// today (issue 11 items 4, 6, 7, 8, 10): the case then compares only the
// decision to load it.
func (g *gen) refuseConstruct() {
	pols := g.c.Res.Policies
	p := &pols[g.intn(len(pols))]
	switch g.intn(5) {
	case 0: // item 4
		r := Rule{Action: "Allow", Source: &Entity{ServiceAccounts: &ServiceAccounts{Names: []string{"sa1"}}}}
		p.Spec.Ingress = append(p.Spec.Ingress, r)
	case 1: // item 6
		for i := range g.c.Res.HEPs {
			if g.c.Res.HEPs[i].Spec.Node == "gw" {
				g.c.Res.HEPs[i].Spec.Profiles = append(g.c.Res.HEPs[i].Spec.Profiles, "no-such-profile")
				return
			}
		}
	case 2: // item 7
		if p.Spec.Tier == "" || p.Spec.Tier == "default" {
			p.Name = "ops." + p.Name
		} else {
			p.Name = "ops-" + p.Name
		}
	case 3: // item 8
		p.Spec.Ingress = append(p.Spec.Ingress, Rule{Action: "Allow", Protocol: &Proto{Name: "TCP"}, HTTP: &HTTPMatch{Methods: []string{"GET"}}})
	case 4: // item 10 (Calico's validator accepts the hint)
		p.Spec.PerformanceHints = []string{"AssumeNeededOnEveryNode"}
	}
	if p.Spec.PreDNAT {
		p.Spec.Types = nil // ingress rules only: the defaults agree
	}
}

func hasNumeric(e *Entity) bool {
	if e == nil {
		return false
	}
	for _, p := range append(append([]Port{}, e.Ports...), e.NotPorts...) {
		if p.Name == "" {
			return true
		}
	}
	return false
}

func anyNumeric(atoms []string) bool {
	for _, a := range atoms {
		if numericPortAtom(a) {
			return true
		}
	}
	return false
}
