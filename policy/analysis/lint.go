package analysis

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/dtree"
)

// Severity of a lint finding.
type Severity uint8

const (
	Info Severity = iota
	Warning
	Error
)

func (s Severity) String() string {
	return [...]string{"info", "warning", "error"}[s]
}

// MarshalText makes a Severity its name in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a Severity's name.
func (s *Severity) UnmarshalText(b []byte) error {
	for v := Info; v <= Error; v++ {
		if v.String() == string(b) {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("unknown severity %q", b)
}

// Finding kinds.
const (
	KindShadowed       = "shadowed"        // earlier rules decide every packet it matches
	KindContradiction  = "contradiction"   // its fields exclude each other
	KindSelectsNothing = "selects-nothing" // a selector it needs selects nothing
	KindNamedPort      = "named-port"      // a named port no endpoint declares
	KindServices       = "services"        // a Kubernetes service: never matches on a gateway
	KindUnusedPolicy   = "unused-policy"   // the policy selects no endpoint here
	KindUnusedRules    = "unused-rules"    // rules of a direction the policy's types leave out
	KindPassLast       = "pass-no-later-tier"
	KindNeedsAoF       = "needs-apply-on-forward"
	KindFailsafePort   = "failsafe-port-open"
	KindNoHits         = "no-hits"
)

// Related is a place a finding points at (the rules that shadow a rule).
type Related struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	Text string `json:"text"`
}

// Finding is one lint result.
type Finding struct {
	Severity Severity  `json:"severity"`
	Kind     string    `json:"kind"`
	File     string    `json:"file,omitempty"`
	Line     int       `json:"line,omitempty"`
	Col      int       `json:"column,omitempty"`
	Resource string    `json:"resource,omitempty"`
	Field    string    `json:"field,omitempty"`
	Message  string    `json:"message"`
	Related  []Related `json:"related,omitempty"`
}

// RuleHits counts, per rule, the decisions a trace records.
type RuleHits struct {
	Verdicts int // verdict lines read
	First    string
	Last     string // times of the first and last verdict line
	// Hashes are the configuration hashes the lines were recorded under.
	Hashes []string
	hits   map[ruleID]int
}

// LintOptions tune Lint.
type LintOptions struct {
	// Budget bounds the regions examined per rule (shadowing) and per
	// endpoint (undecided preDNAT/doNotTrack traffic).
	Budget int
	// Hits, when set, adds the no-hits findings.
	Hits *RuleHits
}

// FailsafeSensitive are the TCP ports of Felix's default inbound failsafe
// list: an Allow opening them to every address exposes the host's
// management and control plane.
var FailsafeSensitive = map[uint32]string{22: "SSH", 179: "BGP", 2379: "etcd", 2380: "etcd peers",
	5473: "Typha", 6443: "Kubernetes API", 6666: "etcd (self-hosted)", 6667: "etcd (self-hosted)"}

// ruleID names a policy or profile rule.
type ruleID struct {
	profile bool
	policy  int32
	dir     policy.Dir
	rule    int32
}

// ruleState aggregates what the chains say about one rule.
type ruleState struct {
	chains   int  // chains holding it
	met      bool // some packet meets it in some chain
	complete bool // every chain's search was complete
	shadows  []policy.ChainRule
	passLast int // chains where it is a Pass with nothing after it
	endpoint []policy.EndpointID
	exposes  map[uint32]bool // failsafe-sensitive ports it allows from anywhere
}

// Lint checks a compiled configuration: rules that can never match
// (shadowed, contradictory, selecting nothing, named ports no endpoint
// declares, services), policies selecting no endpoint, Pass with no later
// tier, preDNAT or doNotTrack policy that leaves forwarded traffic to the
// default allow for want of applyOnForward policy, Allow rules opening
// failsafe-sensitive ports to every address, and (with hits) rules no
// traced packet was decided by.
func Lint(p *policy.Program, opt LintOptions) []Finding {
	if opt.Budget <= 0 {
		opt.Budget = 20000
	}
	cfg := p.Config()
	var out []Finding
	pos := func(id ruleID) (policy.Pos, string, string) {
		var r *policy.Rule
		var res string
		var ppos policy.Pos
		if id.profile {
			pr := &cfg.Profiles[id.policy]
			res, ppos = "Profile/"+pr.Name, pr.Pos
			r = &pickDir(pr.Ingress, pr.Egress, id.dir)[id.rule]
		} else {
			pol := &cfg.Policies[id.policy]
			res, ppos = "GlobalNetworkPolicy/"+pol.Name, pol.Pos
			r = &pickDir(pol.Ingress, pol.Egress, id.dir)[id.rule]
		}
		field := fmt.Sprintf("%s[%d]", strings.ToLower(id.dir.String()), id.rule)
		if r.Pos.Line != 0 {
			return r.Pos, res, field
		}
		return ppos, res, field
	}
	add := func(sev Severity, kind string, id ruleID, msg string, rel []Related) {
		ps, res, field := pos(id)
		out = append(out, Finding{Severity: sev, Kind: kind, File: ps.File, Line: ps.Line, Col: ps.Col, Resource: res, Field: field, Message: msg, Related: rel})
	}

	// Policies that select nothing, and directions their types leave out.
	usedProfile := map[int32]bool{}
	for _, e := range p.Endpoints() {
		for _, pi := range e.Profiles {
			usedProfile[pi] = true
		}
	}
	for pi := range cfg.Policies {
		pol := &cfg.Policies[pi]
		res := "GlobalNetworkPolicy/" + pol.Name
		if len(p.SelectedBy(pi)) == 0 {
			out = append(out, Finding{Severity: Warning, Kind: KindUnusedPolicy, File: pol.Pos.File, Line: pol.Pos.Line, Col: pol.Pos.Col, Resource: res, Field: "selector",
				Message: fmt.Sprintf("selects no host endpoint of node %q: none of its rules is evaluated here", cfg.Settings.NodeName)})
			continue
		}
		in, eg := len(pol.Types) == 0 || pol.HasType(policy.Ingress), len(pol.Types) == 0 || pol.HasType(policy.Egress)
		if !in && len(pol.Ingress) > 0 {
			out = append(out, Finding{Severity: Warning, Kind: KindUnusedRules, File: pol.Pos.File, Line: pol.Pos.Line, Col: pol.Pos.Col, Resource: res, Field: "types",
				Message: fmt.Sprintf("has %d ingress rules but its types leave out Ingress: they are never evaluated", len(pol.Ingress))})
		}
		if !eg && len(pol.Egress) > 0 {
			out = append(out, Finding{Severity: Warning, Kind: KindUnusedRules, File: pol.Pos.File, Line: pol.Pos.Line, Col: pol.Pos.Col, Resource: res, Field: "types",
				Message: fmt.Sprintf("has %d egress rules but its types leave out Egress: they are never evaluated", len(pol.Egress))})
		}
	}

	// Rules that can match nothing at all, and named ports nobody declares.
	chk := p.NewRuleChecker()
	declared := map[string]bool{}
	for _, hs := range [][]policy.HostEndpoint{cfg.HostEndpoints, cfg.RemoteHostEndpoints} {
		for _, h := range hs {
			for _, pt := range h.Ports {
				declared[pt.Name] = true
			}
		}
	}
	never := map[ruleID]bool{}
	eachRule(cfg, func(id ruleID, r *policy.Rule) {
		if !id.profile && len(p.SelectedBy(int(id.policy))) == 0 || id.profile && !usedProfile[id.policy] {
			return
		}
		if kind, why := chk.RuleNever(r); kind != policy.RuleCanMatch {
			never[id] = true
			switch kind {
			case policy.RuleContradiction:
				add(Error, KindContradiction, id, why, nil)
			case policy.RuleNoSelected:
				add(Warning, KindSelectsNothing, id, why, nil)
			case policy.RuleNoNamedPort:
				add(Warning, KindNamedPort, id, why, nil)
			case policy.RuleServices:
				add(Warning, KindServices, id, why, nil)
			}
			return
		}
		var missing []string
		for _, e := range []*policy.EntityRule{&r.Source, &r.Destination} {
			for _, ps := range [][]policy.Port{e.Ports, e.NotPorts} {
				for _, pt := range ps {
					if pt.Name != "" && !declared[pt.Name] && !slices.Contains(missing, pt.Name) {
						missing = append(missing, pt.Name)
					}
				}
			}
		}
		if len(missing) > 0 {
			add(Warning, KindNamedPort, id, fmt.Sprintf("no host endpoint declares the named port(s) %s: that part of the rule matches nothing", strings.Join(missing, ", ")), nil)
		}
	})

	// Shadowing, Pass at the end, failsafe ports: from the chains.
	states := map[ruleID]*ruleState{}
	var order []ruleID
	p.ReachAll(opt.Budget, func(uses []policy.ChainUse, fam uint8, rules []policy.ChainRule, reach []policy.RuleReach) {
		full := policy.FullBox(fam)
		for i := range rules {
			r := &rules[i]
			if r.EndOfTier {
				continue
			}
			id := ruleID{r.Profile, r.Policy, r.Dir, r.Rule}
			st := states[id]
			if st == nil {
				st = &ruleState{complete: true, exposes: map[uint32]bool{}}
				states[id] = st
				order = append(order, id)
			}
			st.chains++
			rr := reach[i]
			st.met = st.met || rr.Met
			st.complete = st.complete && rr.Complete
			for _, j := range rr.Shadows {
				if len(st.shadows) < 8 && !slices.ContainsFunc(st.shadows, func(x policy.ChainRule) bool {
					return x.Policy == rules[j].Policy && x.Rule == rules[j].Rule && x.Dir == rules[j].Dir && x.Profile == rules[j].Profile && x.EndOfTier == rules[j].EndOfTier
				}) {
					st.shadows = append(st.shadows, rules[j])
				}
			}
			if r.Action == policy.Pass && r.Next == len(rules) {
				st.passLast++
			}
			for _, u := range uses {
				if !slices.Contains(st.endpoint, u.Endpoint) {
					st.endpoint = append(st.endpoint, u.Endpoint)
				}
			}
			if r.Action == policy.Allow && r.Dir == policy.Ingress && rr.Met {
				for _, b := range r.Boxes {
					if b.Src != full.Src || b.Proto[0] > 6 || b.Proto[1] < 6 {
						continue
					}
					for port := range FailsafeSensitive {
						if b.DPort[0] <= port && port <= b.DPort[1] {
							st.exposes[port] = true
						}
					}
				}
			}
		}
	})
	for _, id := range order {
		st := states[id]
		if never[id] {
			continue
		}
		if !st.met && st.complete {
			var rel []Related
			for _, s := range st.shadows {
				text, ps := chainRuleText(p, &s)
				rel = append(rel, Related{File: ps.File, Line: ps.Line, Text: text})
			}
			what := "earlier rules decide every packet it matches"
			if len(rel) == 0 {
				what = "no packet reaches it"
			}
			add(Warning, KindShadowed, id, fmt.Sprintf("can never match: %s, in every chain it is in (%s)", what, endpointNames(p, st.endpoint)), rel)
			continue
		}
		if st.passLast == st.chains && st.met {
			add(Warning, KindPassLast, id, fmt.Sprintf("Pass with no later tier and no profile for %s: it ends policy evaluation (forwarded traffic is left to the host's own rules, untracked and preDNAT traffic to later stages)", endpointNames(p, st.endpoint)), nil)
		}
		if len(st.exposes) > 0 {
			var ports []uint32
			for port := range st.exposes {
				ports = append(ports, port)
			}
			slices.Sort(ports)
			var names []string
			for _, port := range ports {
				names = append(names, fmt.Sprintf("%d (%s)", port, FailsafeSensitive[port]))
			}
			add(Warning, KindFailsafePort, id, fmt.Sprintf("allows TCP %s from any address: these are failsafe-sensitive ports; restrict the source (nets or a selector)", strings.Join(names, ", ")), nil)
		}
	}

	out = append(out, lintForward(p, opt.Budget)...)

	if h := opt.Hits; h != nil {
		for _, id := range order {
			st := states[id]
			r := ruleOf(cfg, id)
			if !st.met || r.Action == policy.Pass || r.Action == policy.Log || h.hits[id] > 0 {
				continue
			}
			add(Info, KindNoHits, id, fmt.Sprintf("no traced packet was decided by it (%d verdicts, %s to %s)", h.Verdicts, h.First, h.Last), nil)
		}
	}

	slices.SortStableFunc(out, func(a, b Finding) int {
		if c := cmp.Compare(a.File, b.File); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(b.Severity, a.Severity)
	})
	return out
}

func pickDir(in, eg []policy.Rule, dir policy.Dir) []policy.Rule {
	if dir == policy.Egress {
		return eg
	}
	return in
}

func ruleOf(cfg *policy.Config, id ruleID) *policy.Rule {
	if id.profile {
		return &pickDir(cfg.Profiles[id.policy].Ingress, cfg.Profiles[id.policy].Egress, id.dir)[id.rule]
	}
	return &pickDir(cfg.Policies[id.policy].Ingress, cfg.Policies[id.policy].Egress, id.dir)[id.rule]
}

// eachRule calls fn for every rule of every policy and profile.
func eachRule(cfg *policy.Config, fn func(ruleID, *policy.Rule)) {
	for pi := range cfg.Policies {
		pol := &cfg.Policies[pi]
		for i := range pol.Ingress {
			fn(ruleID{false, int32(pi), policy.Ingress, int32(i)}, &pol.Ingress[i])
		}
		for i := range pol.Egress {
			fn(ruleID{false, int32(pi), policy.Egress, int32(i)}, &pol.Egress[i])
		}
	}
	for pi := range cfg.Profiles {
		pr := &cfg.Profiles[pi]
		for i := range pr.Ingress {
			fn(ruleID{true, int32(pi), policy.Ingress, int32(i)}, &pr.Ingress[i])
		}
		for i := range pr.Egress {
			fn(ruleID{true, int32(pi), policy.Egress, int32(i)}, &pr.Egress[i])
		}
	}
}

func endpointNames(p *policy.Program, eps []policy.EndpointID) string {
	var names []string
	for _, e := range eps {
		names = append(names, p.EndpointName(e))
	}
	sort.Strings(names)
	names = slices.Compact(names)
	if len(names) > 4 {
		return fmt.Sprintf("endpoints %s and %d more", strings.Join(names[:4], ", "), len(names)-4)
	}
	if len(names) == 1 {
		return "endpoint " + names[0]
	}
	return "endpoints " + strings.Join(names, ", ")
}

// chainRuleText names a chain rule for people.
func chainRuleText(p *policy.Program, r *policy.ChainRule) (string, policy.Pos) {
	if r.EndOfTier {
		return "the end-of-tier drop of tier " + p.TierName(r.Tier), policy.Pos{}
	}
	reason := policy.ReasonRule
	if r.Profile {
		reason = policy.ReasonProfile
	}
	d := p.Describe(policy.Decision{Reason: reason, Tier: r.Tier, Policy: r.Policy, Rule: r.Rule, Dir: r.Dir, Endpoint: policy.NoEndpoint})
	what := "policy " + d.Tier + "/" + d.Policy
	if d.Profile {
		what = "profile " + d.Policy
	}
	return fmt.Sprintf("%s %s %s[%d]", r.Action, what, strings.ToLower(r.Dir.String()), r.Rule), d.Pos
}

// lintForward finds endpoints whose preDNAT or (ingress) doNotTrack policy
// can leave a packet undecided while no applyOnForward policy selects
// them: forwarded traffic arriving there is then accepted by Calico's
// default for endpoints without applyOnForward policy.
func lintForward(p *policy.Program, budget int) []Finding {
	var out []Finding
	cfg := p.Config()
	for _, e := range p.Endpoints() {
		if !e.Plan(policy.PlanForward).Empty() {
			continue
		}
		h := &cfg.HostEndpoints[e.ID]
		for _, k := range []struct {
			plan policy.PlanKind
			call policy.StageCall
			name string
		}{
			{policy.PlanPreDNAT, policy.StageCall{Stage: policy.StagePreDNAT, Endpoint: e.ID, CT: classify.CTNew}, "preDNAT"},
			{policy.PlanUntracked, policy.StageCall{Stage: policy.StageUntracked, Dir: policy.Ingress, Endpoint: e.ID}, "doNotTrack"},
		} {
			pl := e.Plan(k.plan)
			if pl.Empty() || k.plan == policy.PlanUntracked && e.Wildcard {
				continue
			}
			hasIngress := false
			for _, t := range pl.Tiers {
				hasIngress = hasIngress || len(t.Ingress) > 0
			}
			if !hasIngress {
				continue
			}
			if b, ok := findUndecided(p, k.call, budget); ok {
				out = append(out, Finding{Severity: Warning, Kind: KindNeedsAoF, File: h.Pos.File, Line: h.Pos.Line, Col: h.Pos.Col,
					Resource: "HostEndpoint/" + h.Name,
					Message: fmt.Sprintf("its %s policy leaves some packets undecided (for example ipv%d %s) and no applyOnForward policy selects it: "+
						"forwarded traffic arriving there that %s policy does not decide is accepted (Calico's default for endpoints without applyOnForward policy) "+
						"unless the out-interface's applyOnForward policy drops it; add applyOnForward policy, or end the %s policy with a Deny",
						k.name, b.Fam, b, k.name, k.name)})
			}
		}
	}
	return out
}

// findUndecided searches packet space for a packet the stage leaves
// undecided (no rule matched), within budget regions.
func findUndecided(p *policy.Program, c policy.StageCall, budget int) (policy.Box, bool) {
	for _, fam := range []uint8{4, 6} {
		var stack []dtree.Box
		for _, s := range policy.PacketSpace(fam) {
			stack = append(stack, s.Box)
		}
		for n := 0; len(stack) > 0 && n < budget; n++ {
			w := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			k := w.Low()
			d, b := p.RegionIn(c, policy.Box{Fam: fam, Box: w}, &k)
			if d.Reason == policy.ReasonNoMatch {
				return b, true
			}
			stack = dtree.Subtract(w, b.Box, stack)
		}
	}
	return policy.Box{}, false
}
