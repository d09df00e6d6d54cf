package policy

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"

	"github.com/nfgate/nfgate/policy/selector"
)

// This file resolves a Config into Felix's per-endpoint view (spec §1, §5):
// the sorted tiers, each host endpoint's labels, and which sorted policies of
// which tier apply to it at each stage and direction.

// TierInfo is one tier of a Program, in evaluation order (spec §5).
type TierInfo struct {
	Name          string
	Order         *float64
	DefaultAction TierDefault
	// Defined: a Tier resource (or one of Calico's built-in tiers) exists.
	// Tiers only referenced by policies sort after all defined tiers.
	Defined bool
	Pos     Pos
}

// Calico's client always creates these tiers (spec §5).
var builtinTiers = []TierInfo{
	{Name: "kube-admin", Order: f64(1000), DefaultAction: TierPass, Defined: true},
	{Name: "default", Order: f64(1000000), DefaultAction: TierDeny, Defined: true},
	{Name: "kube-baseline", Order: f64(10000000), DefaultAction: TierPass, Defined: true},
}

func f64(v float64) *float64 { return &v }

// PlanKind names the four policy lists Felix derives per endpoint (spec §1.2).
type PlanKind uint8

const (
	PlanUntracked PlanKind = iota // doNotTrack policies
	PlanPreDNAT                   // preDNAT policies, ingress only
	PlanNormal                    // neither: local traffic (INPUT/OUTPUT)
	PlanForward                   // neither, applyOnForward: forwarded traffic
	numPlans
)

var planNames = [...]string{"untracked", "preDNAT", "normal", "forward"}

func (k PlanKind) String() string {
	if int(k) < len(planNames) {
		return planNames[k]
	}
	return "invalid"
}

// PlanTier is one tier of an endpoint's plan: the sorted policies (indexes
// into Config.Policies) that apply in each direction.
type PlanTier struct {
	Tier int32 // index into Program.Tiers()
	// DefaultAction as Felix renders it: the tier's own for normal and
	// forward plans, always Pass for untracked and preDNAT plans.
	DefaultAction TierDefault
	Ingress       []int32
	Egress        []int32
}

// Policies returns the tier's policies for direction dir.
func (t *PlanTier) Policies(dir Dir) []int32 {
	if dir == Egress {
		return t.Egress
	}
	return t.Ingress
}

// Plan is the ordered list of tiers (each with >= 1 policy in some
// direction) that one stage of an endpoint evaluates.
type Plan struct {
	Tiers []PlanTier
}

// Empty reports whether no policy of this kind selects the endpoint.
func (pl *Plan) Empty() bool { return len(pl.Tiers) == 0 }

// Endpoint is a resolved host endpoint.
type Endpoint struct {
	ID            EndpointID
	Name          string
	InterfaceName string
	Wildcard      bool              // interfaceName "*"
	Labels        map[string]string // own labels plus profiles' labelsToApply (own wins)
	Profiles      []int32           // indexes into Config.Profiles, in spec.profiles order
	Plans         [numPlans]Plan
}

// Plan returns the endpoint's plan of kind k.
func (e *Endpoint) Plan(k PlanKind) *Plan { return &e.Plans[k] }

// resolved is everything derived from a Config before compiling matchers.
type resolved struct {
	tiers     []TierInfo
	tierIndex map[string]int32
	// sorted policy indexes, in global evaluation order (tier, order, key)
	sorted    []int32
	endpoints []Endpoint
	wildcard  EndpointID // the alphabetically smallest "*" HEP
	profiles  map[string]int32
	// selectedBy[i] lists the endpoints policy i selects.
	selectedBy [][]EndpointID
	// sels holds each entity rule's positive selector (EndpointSelector).
	sels map[*EntityRule]*selector.Selector
}

// polDirs reports the directions a policy governs. Empty types mean both
// (Felix back-compatibility, spec §1.2).
func polDirs(p *GlobalNetworkPolicy) (in, eg bool) {
	if len(p.Types) == 0 {
		return true, true
	}
	return p.HasType(Ingress), p.HasType(Egress)
}

func policyTier(p *GlobalNetworkPolicy) string {
	if p.Tier == "" {
		return "default"
	}
	return p.Tier
}

// tierLess is Felix's TierLess: defined tiers first, then order ascending
// (nil last), then name.
func tierLess(a, b *TierInfo) bool {
	if a.Defined != b.Defined {
		return a.Defined
	}
	if (a.Order == nil) != (b.Order == nil) {
		return a.Order != nil
	}
	if a.Order == nil || *a.Order == *b.Order {
		return a.Name < b.Name
	}
	return *a.Order < *b.Order
}

// policyKey is the tie-break string of Felix's PolKVLess:
// "<name>/<namespace>/<kind>"; a (staged) global policy has no namespace.
// The '/' separator makes "a-b" and "a.b" sort before "a".
func policyKey(p *GlobalNetworkPolicy) string {
	if p.Staged {
		return p.Name + "//StagedGlobalNetworkPolicy"
	}
	return p.Name + "//GlobalNetworkPolicy"
}

func orderOf(o *float64) float64 {
	if o == nil {
		return inf
	}
	return *o
}

var inf = math.Inf(1)

func resolve(cfg *Config) (*resolved, error) {
	r := &resolved{tierIndex: map[string]int32{}, wildcard: NoEndpoint, profiles: map[string]int32{},
		sels: map[*EntityRule]*selector.Selector{}}
	if err := r.entitySelectors(cfg); err != nil {
		return nil, err
	}

	// Tiers: configured, then built-ins not configured, then referenced-only.
	seen := map[string]bool{}
	var tiers []TierInfo
	for _, t := range cfg.Tiers {
		if seen[t.Name] {
			continue
		}
		seen[t.Name] = true
		tiers = append(tiers, TierInfo{Name: t.Name, Order: t.Order, DefaultAction: t.DefaultAction, Defined: true, Pos: t.Pos})
	}
	for _, t := range builtinTiers {
		if !seen[t.Name] {
			seen[t.Name] = true
			tiers = append(tiers, t)
		}
	}
	for i := range cfg.Policies {
		n := policyTier(&cfg.Policies[i])
		if !seen[n] {
			seen[n] = true
			tiers = append(tiers, TierInfo{Name: n, DefaultAction: TierDeny})
		}
	}
	sort.SliceStable(tiers, func(i, j int) bool { return tierLess(&tiers[i], &tiers[j]) })
	r.tiers = tiers
	for i, t := range tiers {
		r.tierIndex[t.Name] = int32(i)
	}

	// Policies in global order: tier, then PolKVLess.
	r.sorted = make([]int32, len(cfg.Policies))
	keys := make([]string, len(cfg.Policies))
	for i := range cfg.Policies {
		r.sorted[i] = int32(i)
		keys[i] = policyKey(&cfg.Policies[i])
	}
	sort.SliceStable(r.sorted, func(a, b int) bool {
		i, j := r.sorted[a], r.sorted[b]
		pi, pj := &cfg.Policies[i], &cfg.Policies[j]
		ti, tj := r.tierIndex[policyTier(pi)], r.tierIndex[policyTier(pj)]
		if ti != tj {
			return ti < tj
		}
		oi, oj := orderOf(pi.Order), orderOf(pj.Order)
		if oi != oj {
			return oi < oj
		}
		return strings.Compare(keys[i], keys[j]) < 0
	})

	for i := range cfg.Profiles {
		if _, dup := r.profiles[cfg.Profiles[i].Name]; !dup {
			r.profiles[cfg.Profiles[i].Name] = int32(i)
		}
	}

	r.selectedBy = make([][]EndpointID, len(cfg.Policies))
	r.endpoints = make([]Endpoint, len(cfg.HostEndpoints))
	for i := range cfg.HostEndpoints {
		h := &cfg.HostEndpoints[i]
		e := &r.endpoints[i]
		e.ID = EndpointID(i)
		e.Name = h.Name
		e.InterfaceName = h.InterfaceName
		e.Wildcard = h.InterfaceName == "*"
		e.Labels = HostEndpointLabels(cfg, h)
		for _, pn := range h.Profiles {
			if pi, ok := r.profiles[pn]; ok {
				e.Profiles = append(e.Profiles, pi)
			}
		}
		if e.Wildcard && (r.wildcard == NoEndpoint || h.Name < cfg.HostEndpoints[r.wildcard].Name) {
			r.wildcard = e.ID
		}
		r.plan(cfg, e)
	}
	return r, nil
}

// entitySelectors computes every entity rule's positive selector as Felix
// sees it (EndpointSelector).
func (r *resolved) entitySelectors(cfg *Config) error {
	do := func(rules []Rule, owner string) error {
		for i := range rules {
			for _, e := range [...]*EntityRule{&rules[i].Source, &rules[i].Destination} {
				s, err := EndpointSelector(e)
				if err != nil {
					return fmt.Errorf("policy: %s rule %d: %w", owner, i, err)
				}
				r.sels[e] = s
			}
		}
		return nil
	}
	for i := range cfg.Policies {
		p := &cfg.Policies[i]
		if err := do(p.Ingress, p.Name); err != nil {
			return err
		}
		if err := do(p.Egress, p.Name); err != nil {
			return err
		}
	}
	for i := range cfg.Profiles {
		p := &cfg.Profiles[i]
		if err := do(p.Ingress, "profile "+p.Name); err != nil {
			return err
		}
		if err := do(p.Egress, "profile "+p.Name); err != nil {
			return err
		}
	}
	return nil
}

// selects reports whether policy p selects labels.
func selects(p *GlobalNetworkPolicy, labels selector.Labels) bool {
	return p.Selector == nil || p.Selector.Evaluate(labels)
}

// plan fills e.Plans from the sorted policies (spec §1.2).
func (r *resolved) plan(cfg *Config, e *Endpoint) {
	var cur [numPlans]*PlanTier
	lastTier := int32(-1)
	flush := func() {
		for k := range cur {
			if cur[k] != nil && (len(cur[k].Ingress) > 0 || len(cur[k].Egress) > 0) {
				e.Plans[k].Tiers = append(e.Plans[k].Tiers, *cur[k])
			}
			cur[k] = nil
		}
	}
	for _, pi := range r.sorted {
		p := &cfg.Policies[pi]
		if !selects(p, e.Labels) {
			continue
		}
		r.selectedBy[pi] = append(r.selectedBy[pi], e.ID)
		ti := r.tierIndex[policyTier(p)]
		if ti != lastTier {
			flush()
			lastTier = ti
			for k := range cur {
				da := r.tiers[ti].DefaultAction
				if PlanKind(k) == PlanUntracked || PlanKind(k) == PlanPreDNAT {
					da = TierPass
				}
				cur[k] = &PlanTier{Tier: ti, DefaultAction: da}
			}
		}
		in, eg := polDirs(p)
		add := func(k PlanKind, egressAllowed bool) {
			if in {
				cur[k].Ingress = append(cur[k].Ingress, pi)
			}
			if eg && egressAllowed {
				cur[k].Egress = append(cur[k].Egress, pi)
			}
		}
		switch {
		case p.DoNotTrack:
			add(PlanUntracked, true)
		case p.PreDNAT:
			add(PlanPreDNAT, false)
		default:
			if p.ApplyOnForward {
				add(PlanForward, true)
			}
			add(PlanNormal, true)
		}
	}
	flush()
}

// isWorkload reports whether an interface name matches a workload prefix.
func (s *Settings) isWorkload(name string) bool {
	for _, pfx := range s.InterfacePrefix {
		if pfx != "" && strings.HasPrefix(name, pfx) {
			return true
		}
	}
	return false
}

// Excluded reports whether Felix's InterfaceExclude takes the interface
// out of host endpoint resolution.
func (s *Settings) Excluded(name string) bool {
	for _, re := range s.InterfaceExclude {
		if re != nil && re.MatchString(name) {
			return true
		}
	}
	return false
}

// bind implements spec §1.1 for one interface.
func (r *resolved) bind(cfg *Config, ifc Interface) Binding {
	b := Binding{Untracked: NoEndpoint, PreDNAT: NoEndpoint, Filter: NoEndpoint, ForwardIn: NoEndpoint}
	wildPre := NoEndpoint
	if r.wildcard != NoEndpoint && !r.endpoints[r.wildcard].Plans[PlanPreDNAT].Empty() {
		wildPre = r.wildcard
	}
	if cfg.Settings.isWorkload(ifc.Name) {
		// Workload interfaces never get a host endpoint's normal policy, but
		// a "*" HEP's pre-DNAT and forward-ingress chains do apply (spec §2.3, §10.4-5).
		b.Workload = true
		b.PreDNAT = wildPre
		b.ForwardIn = r.wildcard
		return b
	}
	named := NoEndpoint
	// Felix never sees an excluded interface (ifacemonitor), so no named
	// endpoint resolves to it; the "*" endpoint's catch-all dispatch still
	// catches its packets.
	excluded := cfg.Settings.Excluded(ifc.Name)
	for i := range cfg.HostEndpoints {
		if excluded {
			break
		}
		h := &cfg.HostEndpoints[i]
		if h.InterfaceName == "*" {
			continue
		}
		cand := h.InterfaceName == ifc.Name
		if h.InterfaceName == "" {
			for _, want := range h.ExpectedIPs {
				for _, have := range ifc.Addrs {
					if sameIP(want, have) {
						cand = true
					}
				}
			}
		}
		if cand && (named == NoEndpoint || h.Name < cfg.HostEndpoints[named].Name) {
			named = EndpointID(i)
		}
	}
	if named != NoEndpoint {
		b.Filter = named
		if !r.endpoints[named].Plans[PlanUntracked].Empty() {
			b.Untracked = named
		}
		if !r.endpoints[named].Plans[PlanPreDNAT].Empty() {
			b.PreDNAT = named
		}
	} else {
		b.Filter = r.wildcard
	}
	if b.PreDNAT == NoEndpoint {
		b.PreDNAT = wildPre
	}
	b.ForwardIn = b.Filter
	return b
}

// sameIP compares addresses as Felix compares their canonical strings:
// without a zone, v4-mapped IPv6 as IPv4.
func sameIP(a, b netip.Addr) bool {
	return a.Unmap().WithZone("") == b.Unmap().WithZone("")
}

// HostEndpointLabels returns the labels selectors see on h: its own labels
// plus the labelsToApply of each profile it lists; its own label wins, and an
// earlier profile wins over a later one.
func HostEndpointLabels(cfg *Config, h *HostEndpoint) map[string]string {
	out := make(map[string]string, len(h.Labels))
	for _, pn := range h.Profiles {
		for i := range cfg.Profiles {
			if cfg.Profiles[i].Name != pn {
				continue
			}
			for k, v := range cfg.Profiles[i].LabelsToApply {
				if _, set := out[k]; !set {
					out[k] = v
				}
			}
		}
	}
	for k, v := range h.Labels {
		out[k] = v
	}
	return out
}
