// Package analysis answers questions about compiled policy as a whole, from
// the regions of packet space on which a stage's decision is constant
// (policy.Program.RegionAt): the semantic difference of two configurations
// (Diff), the flows a change affects (Impact), and rules that can never
// match or are risky (Lint). It never samples: every answer is exact over
// all packets.
package analysis

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/dtree"
)

// OtherInterface names, in a diff, any interface no host endpoint names.
const OtherInterface = "(other)"

// Iface is an interface a diff considers: a name, and the addresses
// endpoints with expectedIPs bind by.
type Iface struct {
	Name  string
	Addrs []netip.Addr
	// Label is how the diff shows it (the name, or the expectedIPs it stands for).
	Label string
}

// Interfaces returns the interfaces that can be policed differently under
// the configurations: every interfaceName their host endpoints name, one
// stand-in per endpoint matched by expectedIPs (holding those addresses),
// and OtherInterface for every interface none of them names (the "*"
// endpoint's, or not policed).
func Interfaces(cfgs ...*policy.Config) []Iface {
	seen := map[string]bool{}
	var out []Iface
	for _, cfg := range cfgs {
		for i := range cfg.HostEndpoints {
			h := &cfg.HostEndpoints[i]
			switch h.InterfaceName {
			case "*":
			case "":
				label := "expectedIPs of " + h.Name
				if !seen[label] && len(h.ExpectedIPs) > 0 {
					seen[label] = true
					out = append(out, Iface{Name: "(" + h.Name + ")", Addrs: h.ExpectedIPs, Label: label})
				}
			default:
				if !seen[h.InterfaceName] {
					seen[h.InterfaceName] = true
					out = append(out, Iface{Name: h.InterfaceName, Label: h.InterfaceName})
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return append(out, Iface{Name: "nfgate-other-if", Label: OtherInterface})
}

// Kind is a stage of a diff: a stage, with the untracked stage's direction
// and the forward stage's accept-mark.
type Kind struct {
	Stage    policy.Stage
	Dir      policy.Dir // untracked: Ingress (raw PREROUTING) or Egress (raw OUTPUT)
	Accepted bool       // forward: after an untracked or preDNAT Allow
}

func (k Kind) String() string {
	switch {
	case k.Stage == policy.StageUntracked && k.Dir == policy.Egress:
		return "untracked egress"
	case k.Stage == policy.StageUntracked:
		return "untracked ingress"
	case k.Stage == policy.StageForward && k.Accepted:
		return "forward (accept-marked)"
	}
	return k.Stage.String()
}

// Scope is one stage evaluation compared: the calls into each program and
// the interfaces (pairs, for forward) that make them.
type Scope struct {
	Kind     Kind
	Old, New policy.StageCall
	In, Out  []string // interface labels: In for ingress stages and forward, Out for egress stages and forward
}

// Scopes lists the distinct stage evaluations the interfaces can make in
// the two programs: per interface untracked (both ways), preDNAT, input
// and output; per ordered pair forward, and forward with the accept-mark
// where an untracked or preDNAT chain can set it. Interfaces giving the
// same calls in both programs share a scope.
func Scopes(old, new *policy.Program, ifaces []Iface) []Scope {
	type binds struct{ o, n policy.Binding }
	bs := make([]binds, len(ifaces))
	for i, ifc := range ifaces {
		pi := policy.Interface{Name: ifc.Name, Addrs: ifc.Addrs}
		bs[i] = binds{old.Bind(pi), new.Bind(pi)}
	}
	type key struct {
		k    Kind
		o, n policy.StageCall
	}
	idx := map[key]int{}
	var out []Scope
	add := func(k Kind, o, n policy.StageCall, in, outIf string) {
		o.CT, n.CT = classify.CTNew, classify.CTNew
		kk := key{k, o, n}
		i, ok := idx[kk]
		if !ok {
			i = len(out)
			idx[kk] = i
			out = append(out, Scope{Kind: k, Old: o, New: n})
		}
		s := &out[i]
		if in != "" && !slices.Contains(s.In, in) {
			s.In = append(s.In, in)
		}
		if outIf != "" && !slices.Contains(s.Out, outIf) {
			s.Out = append(s.Out, outIf)
		}
	}
	for i, ifc := range ifaces {
		b := bs[i]
		for _, dir := range []policy.Dir{policy.Ingress, policy.Egress} {
			o := policy.StageCall{Stage: policy.StageUntracked, Dir: dir, Endpoint: b.o.Untracked}
			n := policy.StageCall{Stage: policy.StageUntracked, Dir: dir, Endpoint: b.n.Untracked}
			if dir == policy.Ingress {
				add(Kind{Stage: policy.StageUntracked, Dir: dir}, o, n, ifc.Label, "")
			} else {
				add(Kind{Stage: policy.StageUntracked, Dir: dir}, o, n, "", ifc.Label)
			}
		}
		add(Kind{Stage: policy.StagePreDNAT}, policy.StageCall{Stage: policy.StagePreDNAT, Endpoint: b.o.PreDNAT},
			policy.StageCall{Stage: policy.StagePreDNAT, Endpoint: b.n.PreDNAT}, ifc.Label, "")
		if !b.o.Workload || !b.n.Workload {
			add(Kind{Stage: policy.StageInput}, policy.StageCall{Stage: policy.StageInput, Endpoint: b.o.Filter},
				policy.StageCall{Stage: policy.StageInput, Endpoint: b.n.Filter}, ifc.Label, "")
			add(Kind{Stage: policy.StageOutput}, policy.StageCall{Stage: policy.StageOutput, Endpoint: b.o.Filter},
				policy.StageCall{Stage: policy.StageOutput, Endpoint: b.n.Filter}, "", ifc.Label)
		}
	}
	for i, in := range ifaces {
		marked := bs[i].o.Untracked != policy.NoEndpoint || bs[i].o.PreDNAT != policy.NoEndpoint ||
			bs[i].n.Untracked != policy.NoEndpoint || bs[i].n.PreDNAT != policy.NoEndpoint
		for j, o := range ifaces {
			for _, acc := range []bool{false, true} {
				if acc && !marked {
					continue
				}
				oc := policy.StageCall{Stage: policy.StageForward, In: bs[i].o.ForwardIn, Out: bs[j].o.Filter, Accepted: acc}
				nc := policy.StageCall{Stage: policy.StageForward, In: bs[i].n.ForwardIn, Out: bs[j].n.Filter, Accepted: acc}
				add(Kind{Stage: policy.StageForward, Accepted: acc}, oc, nc, in.Label, o.Label)
			}
		}
	}
	return out
}

// Change is a region of packet space whose decision differs.
type Change struct {
	Box      policy.Box
	Old, New policy.Decision
}

// Same reports whether two decisions have the same effect on a packet:
// verdict and accept-mark (which decides what later stages do).
func Same(a, b policy.Decision) bool {
	return a.Verdict == b.Verdict && a.AcceptMark == b.AcceptMark
}

// DefaultMaxRegions bounds the regions one Diff examines.
const DefaultMaxRegions = 2_000_000

// comparer compares stage calls of two programs within a budget.
type comparer struct {
	old, new *policy.Program
	differ   *policy.Differ
	budget   int // regions left to examine
}

// compare returns the regions of packet space (every real packet of both
// families, policy.PacketSpace) where the two calls' decisions differ in
// effect (Same), as disjoint boxes with adjacent ones of the same decisions
// merged; the rules without a counterpart that account for them; how many
// regions it examined; and false when it ran out of budget (the changes
// are then incomplete).
//
// It searches only where the programs can disagree (policy.Differ.Cover):
// the rectangles of rules without a counterpart in the other program.
// Each step takes the lowest key of a box still to search, the regions of
// both programs around it (within the box), records their intersection if
// the decisions differ, and puts back the rest of the box.
func (c *comparer) compare(co, cn policy.StageCall) (changes []Change, rules []policy.RuleChange, examined int, complete bool) {
	var stack []dtree.Box
	for _, fam := range []uint8{4, 6} {
		cover, rc, ok := c.differ.Cover(co, cn, fam)
		rules = append(rules, rc...)
		stack = stack[:0]
		for _, sp := range policy.PacketSpace(fam) {
			if !ok {
				stack = append(stack, sp.Box)
				continue
			}
			stack = disjointWithin(cover, sp.Box, stack)
		}
		for len(stack) > 0 {
			if c.budget <= 0 {
				return Merge(changes), rules, examined, false
			}
			w := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			k := w.Low()
			do, bo := c.old.RegionIn(co, policy.Box{Fam: fam, Box: w}, &k)
			dn, r := c.new.RegionIn(cn, bo, &k)
			examined++
			c.budget--
			if !Same(do, dn) {
				changes = append(changes, Change{Box: r, Old: do, New: dn})
			}
			stack = dtree.Subtract(w, r.Box, stack)
		}
	}
	return Merge(changes), rules, examined, true
}

// disjointWithin appends to out disjoint boxes covering the part of the
// union of bs inside within.
func disjointWithin(bs []dtree.Box, within dtree.Box, out []dtree.Box) []dtree.Box {
	start := len(out)
	var pieces, next []dtree.Box
	for _, b := range bs {
		if !b.Intersect(&within) {
			continue
		}
		pieces = append(pieces[:0], b)
		for _, o := range out[start:] {
			next = next[:0]
			for _, p := range pieces {
				next = dtree.Subtract(p, o, next)
			}
			pieces, next = next, pieces
			if len(pieces) == 0 {
				break
			}
		}
		out = append(out, pieces...)
	}
	return out
}

// Compare is the difference of two stage calls over all of packet space
// (within DefaultMaxRegions: complete is false when that ran out).
func Compare(old, new *policy.Program, co, cn policy.StageCall) (changes []Change, complete bool) {
	c := &comparer{old: old, new: new, differ: policy.NewDiffer(old, new), budget: DefaultMaxRegions}
	cs, _, _, complete := c.compare(co, cn)
	return cs, complete
}

// Merge joins changes with the same decisions whose boxes are adjacent in
// one field and equal in the others, until no two can be joined, and
// sorts them.
func Merge(cs []Change) []Change {
	type group struct {
		fam      uint8
		old, new policy.Decision
	}
	byLabel := map[group][]dtree.Box{}
	var order []group
	for _, c := range cs {
		g := group{c.Box.Fam, c.Old, c.New}
		if _, ok := byLabel[g]; !ok {
			order = append(order, g)
		}
		byLabel[g] = append(byLabel[g], c.Box.Box)
	}
	var out []Change
	for _, g := range order {
		for _, b := range mergeBoxes(byLabel[g]) {
			out = append(out, Change{Box: policy.Box{Fam: g.fam, Box: b}, Old: g.old, New: g.new})
		}
	}
	slices.SortStableFunc(out, func(a, b Change) int { return compareBoxes(&a.Box, &b.Box) })
	return out
}

func compareBoxes(a, b *policy.Box) int {
	if c := cmp.Compare(a.Fam, b.Fam); c != 0 {
		return c
	}
	for f := range dtree.NumFields {
		alo, ahi := a.Field(f)
		blo, bhi := b.Field(f)
		if c := cmpU(alo, blo); c != 0 {
			return c
		}
		if c := cmpU(ahi, bhi); c != 0 {
			return c
		}
	}
	return 0
}

func cmpU(a, b dtree.U128) int {
	if c := cmp.Compare(a.Hi, b.Hi); c != 0 {
		return c
	}
	return cmp.Compare(a.Lo, b.Lo)
}

func incU(v dtree.U128) dtree.U128 {
	v.Lo++
	if v.Lo == 0 {
		v.Hi++
	}
	return v
}

// mergeBoxes joins disjoint boxes that are adjacent in one field and equal
// in all others, field by field, until nothing changes.
func mergeBoxes(bs []dtree.Box) []dtree.Box {
	for changed := true; changed; {
		changed = false
		for f := range dtree.NumFields {
			// Group by every other field; sort each group along f.
			groups := map[dtree.Box][]dtree.Box{}
			var keys []dtree.Box
			for _, b := range bs {
				k := b
				k.SetField(f, dtree.U128{}, dtree.U128{})
				if _, ok := groups[k]; !ok {
					keys = append(keys, k)
				}
				groups[k] = append(groups[k], b)
			}
			var out []dtree.Box
			for _, k := range keys {
				g := groups[k]
				slices.SortFunc(g, func(a, b dtree.Box) int {
					alo, _ := a.Field(f)
					blo, _ := b.Field(f)
					return cmpU(alo, blo)
				})
				cur := g[0]
				for _, b := range g[1:] {
					_, chi := cur.Field(f)
					blo, bhi := b.Field(f)
					if incU(chi) == blo {
						clo, _ := cur.Field(f)
						cur.SetField(f, clo, bhi)
						changed = true
						continue
					}
					out = append(out, cur)
					cur = b
				}
				out = append(out, cur)
			}
			bs = out
		}
	}
	return bs
}

// StageDiff is the difference at one scope.
type StageDiff struct {
	Scope
	Changes []Change
	// Rules are the rules without a counterpart in the other program that
	// account for the changes (added, removed, changed or moved).
	Rules []policy.RuleChange
	// Examined is how many regions the comparison looked at.
	Examined int
	// Joined are further scopes with the same changes, shown together
	// (their interfaces are in In and Out).
	Joined []Scope
}

// Result is the semantic difference of two programs.
type Result struct {
	Stages []StageDiff // only scopes with changes
	// Settings lists setting changes whose effect regions cannot show
	// (deny action, conntrack INVALID handling, interface settings).
	Settings []string
	Scopes   int // scopes compared
	Examined int // regions examined, over all scopes
	// Incomplete: the region budget ran out; the changes found so far are
	// real, but there may be more. Stopped is the scope being compared
	// then (later scopes were not compared).
	Incomplete bool
	Stopped    *Scope
}

// Empty reports whether the two programs decide every packet alike.
func (r *Result) Empty() bool { return len(r.Stages) == 0 && len(r.Settings) == 0 && !r.Incomplete }

// Options tune Diff.
type Options struct {
	// Ifaces are the interfaces compared; nil: Interfaces of both configurations.
	Ifaces []Iface
	// MaxRegions bounds the regions examined (0: DefaultMaxRegions).
	MaxRegions int
}

// Diff compares old and new at every stage of every interface (pair).
func Diff(old, new *policy.Program, opt Options) *Result {
	ifaces := opt.Ifaces
	if ifaces == nil {
		ifaces = Interfaces(old.Config(), new.Config())
	}
	c := &comparer{old: old, new: new, differ: policy.NewDiffer(old, new), budget: opt.MaxRegions}
	if c.budget <= 0 {
		c.budget = DefaultMaxRegions
	}
	res := &Result{Settings: settingChanges(&old.Config().Settings, &new.Config().Settings)}
	for _, s := range Scopes(old, new, ifaces) {
		res.Scopes++
		cs, rules, n, complete := c.compare(s.Old, s.New)
		res.Examined += n
		if len(cs) > 0 {
			res.Stages = joinStages(res.Stages, StageDiff{Scope: s, Changes: cs, Rules: rules, Examined: n})
		}
		if !complete {
			res.Incomplete = true
			res.Stopped = &s
			break
		}
	}
	return res
}

// joinStages adds d to ds, or joins it to a stage of the same kind with
// the same changes (different endpoints that decide alike, such as a
// forward stage's in-interfaces), listing both's interfaces.
func joinStages(ds []StageDiff, d StageDiff) []StageDiff {
	for i := range ds {
		e := &ds[i]
		if e.Kind != d.Kind || !slices.Equal(e.Changes, d.Changes) {
			continue
		}
		// Same in-side and a different out-side, or the other way round.
		switch {
		case slices.Equal(e.Out, d.Out):
			e.In = appendNew(e.In, d.In...)
		case slices.Equal(e.In, d.In):
			e.Out = appendNew(e.Out, d.Out...)
		default:
			continue
		}
		e.Examined += d.Examined
		e.Joined = append(e.Joined, d.Scope)
		return ds
	}
	return append(ds, d)
}

func appendNew(s []string, add ...string) []string {
	for _, a := range add {
		if !slices.Contains(s, a) {
			s = append(s, a)
		}
	}
	return s
}

// settingChanges describes changes of settings whose effect the regions
// do not show.
func settingChanges(a, b *policy.Settings) []string {
	var out []string
	if a.DenyAction != b.DenyAction {
		name := func(d policy.DenyAction) string {
			if d == policy.DenyReject {
				return "REJECT"
			}
			return "DROP"
		}
		out = append(out, fmt.Sprintf("deny action %s -> %s: every DROP verdict of the filter stages changes", name(a.DenyAction), name(b.DenyAction)))
	}
	if a.DisableConntrackInvalidCheck != b.DisableConntrackInvalidCheck {
		out = append(out, fmt.Sprintf("disableConntrackInvalidCheck %v -> %v: conntrack INVALID packets are %s", a.DisableConntrackInvalidCheck, b.DisableConntrackInvalidCheck,
			map[bool]string{true: "evaluated as policy says", false: "dropped"}[b.DisableConntrackInvalidCheck]))
	}
	if a.DefaultEndpointToHostAction != b.DefaultEndpointToHostAction {
		out = append(out, fmt.Sprintf("defaultEndpointToHostAction %s -> %s (workload interfaces to the host)", a.DefaultEndpointToHostAction, b.DefaultEndpointToHostAction))
	}
	if strings.Join(a.InterfacePrefix, ",") != strings.Join(b.InterfacePrefix, ",") {
		out = append(out, fmt.Sprintf("interfacePrefix %q -> %q: which interfaces count as workload interfaces", a.InterfacePrefix, b.InterfacePrefix))
	}
	re := func(s *policy.Settings) string {
		var p []string
		for _, r := range s.InterfaceExclude {
			if r != nil {
				p = append(p, r.String())
			}
		}
		return strings.Join(p, ",")
	}
	if re(a) != re(b) {
		out = append(out, fmt.Sprintf("interfaceExclude %q -> %q: which interfaces named endpoints can govern (the diff compares interfaces by name, not these patterns)", re(a), re(b)))
	}
	if a.NodeName != b.NodeName {
		out = append(out, fmt.Sprintf("nodeName %q -> %q: which host endpoints are this gateway's", a.NodeName, b.NodeName))
	}
	return out
}
