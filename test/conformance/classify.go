package conformance

import (
	"fmt"
	"sort"
	"strings"

	"github.com/nfgate/nfgate/policy"
)

// Causes of disagreements. Those of issue 11's list (items 1-10) are
// pending on their fixes; "new-..." ones are findings of this suite, each
// explained in docs/conformance.md. A disagreement no rule explains is
// "unclassified": the sample in `make test` fails on it.
const (
	causeItem1            = "item1"
	causeItem2            = "item2"
	causeItem3            = "item3"
	causeItem4            = "item4"
	causeItem9            = "item9"
	causeMangleAcceptMark = "new-mangle-accept-mark"
	causeTierNilOrder     = "new-tier-nil-order"
	causeDenyCache        = "item9-deny-cache"
	causeUnclassified     = "unclassified"
)

var causeTexts = map[string]string{
	causeItem1:            "issue 11 item 1: ports and notPorts in one entity are ANDed in Calico (nfgate drops ports)",
	causeItem2:            "issue 11 item 2: named ports without protocol match the endpoint port's own protocol in Calico",
	causeItem3:            "issue 11 item 3: a GlobalNetworkPolicy with namespaceSelector/serviceAccountSelector selects host endpoints in Calico",
	causeItem4:            "issue 11 item 4: a rule namespaceSelector selects host endpoints and network sets in Calico",
	causeItem9:            "issue 11 item 9: DNAT'd local output is NONE in Calico (mangle POSTROUTING returns); explain says ACCEPT",
	causeMangleAcceptMark: "new: Felix's mangle PREROUTING ACCEPTs every packet an untracked Allow accepted (accept-mark rule before the pre-DNAT dispatch); explain omits the stage (NONE), the live nfgate ACCEPTs only on interfaces with pre-DNAT policy (NONE elsewhere)",
	causeTierNilOrder:     "new: a Tier without order is ordered as 1,000,000 in Calico (the client defaults it like the default tier's), nfgate orders it last",
	causeDenyCache:        "issue 11 item 9: the live deny cache keys a flow without its interface (ICMP by type and code): a packet allowed on one interface is dropped after a denied one with the same key on another",
	causeUnclassified:     "unclassified: no known cause",
}

// causeText spells out a cause (IDs joined with "+").
func causeText(id string) string {
	var out []string
	for _, c := range strings.Split(id, "+") {
		if t, ok := causeTexts[c]; ok {
			out = append(out, t)
		} else {
			out = append(out, c)
		}
	}
	return strings.Join(out, "; ")
}

// pendingCause reports whether a cause is known (an issue 11 item or a
// recorded finding), as opposed to unclassified.
func pendingCause(id string) bool {
	for _, c := range strings.Split(id, "+") {
		if _, ok := causeTexts[c]; !ok || c == causeUnclassified {
			return false
		}
	}
	return true
}

// classifyProbe classifies a probe's disagreements: the first stage that
// differs has the cause; later stages of the same probe differ because of
// it (a packet one side dropped or accepted early meets different later
// stages) and carry the same cause, marked as a consequence.
func classifyProbe(c *Case, ds []Disagreement, r *Result) {
	if len(ds) == 0 {
		return
	}
	classifyCause(c, &ds[0], r)
	for i := 1; i < len(ds); i++ {
		if isCosmetic(ds[i-1]) {
			classifyCause(c, &ds[i], r)
			continue
		}
		ds[i].Cause = ds[0].Cause
		ds[i].Consequence = true
	}
}

// isCosmetic: a disagreement that changes nothing for later stages.
func isCosmetic(d Disagreement) bool { return d.Cause == causeMangleAcceptMark }

// ruleFeatures lists the known-deviation constructs a rule has.
func ruleFeatures(r *Rule) []string {
	var out []string
	for _, e := range []*Entity{r.Source, r.Destination} {
		if e == nil {
			continue
		}
		if len(e.Ports) > 0 && len(e.NotPorts) > 0 {
			out = append(out, causeItem1)
		}
		if r.Protocol == nil {
			for _, p := range append(append([]Port{}, e.Ports...), e.NotPorts...) {
				if p.Name != "" {
					out = append(out, causeItem2)
					break
				}
			}
		}
		if e.NamespaceSelector != "" {
			out = append(out, causeItem4)
		}
	}
	return out
}

func findPolicy(c *Case, name string) *GNP {
	for i := range c.Res.Policies {
		if c.Res.Policies[i].Name == name {
			return &c.Res.Policies[i]
		}
	}
	return nil
}

func findProfile(c *Case, name string) *Profile {
	for i := range c.Res.Profiles {
		if c.Res.Profiles[i].Name == name {
			return &c.Res.Profiles[i]
		}
	}
	return nil
}

// felixPolicy reads the policy or profile name out of a Felix chain name
// (cali-pi-gnp/<name>, cali-po-gnp/<name>, cali-pri-<profile>, cali-pro-<profile>).
func felixPolicy(chain string) (name string, profile bool) {
	for _, p := range []string{"cali-pi-", "cali-po-"} {
		if strings.HasPrefix(chain, p) {
			n := strings.TrimPrefix(chain, p)
			if i := strings.IndexByte(n, '/'); i >= 0 {
				n = n[i+1:]
			}
			return n, false
		}
	}
	for _, p := range []string{"cali-pri-", "cali-pro-"} {
		if strings.HasPrefix(chain, p) {
			return strings.TrimPrefix(chain, p), true
		}
	}
	return "", false
}

// stageKinds are the policy kinds that can decide a stage.
func stageKinds(stage string) []string {
	switch stage {
	case "untracked-in", "untracked-out":
		return []string{kDNT}
	case "preDNAT":
		return []string{kPreDNAT}
	case "forward":
		return []string{kForward} // applyOnForward policies
	}
	return []string{kNormal, kForward} // normal policies, with or without applyOnForward
}

func policyKind(p *GNP) string {
	switch {
	case p.Spec.DoNotTrack:
		return kDNT
	case p.Spec.PreDNAT:
		return kPreDNAT
	case p.Spec.ApplyOnForward:
		return kForward
	}
	return kNormal
}

// classifyCause names the cause of a disagreement: one of issue 11's known
// deviations (pending on their fixes), or "unclassified" (a new one).
func classifyCause(c *Case, d *Disagreement, r *Result) {
	causes := map[string]bool{}
	path := r.Path
	if d.Stage == "preDNAT" && d.Felix == vAccept && d.Explain == vNone && (d.Live == vNone || d.Live == vAccept) &&
		r.Felix["untracked-in"] == vAccept && r.Explain["untracked-in"] == vAccept && r.Live["untracked-in"] == vAccept {
		d.Cause = causeMangleAcceptMark
		return
	}
	if d.Stage == "output" && path.FromLocal && path.DNAT.IsValid() && d.Felix == vNone && d.Explain == vAccept && d.Live == vNone {
		causes[causeItem9] = true
	}
	// Rules that decided, on either side.
	var rules []*Rule
	if dec, ok := r.Decided[d.Stage]; ok && dec.Policy != "" && dec.Rule >= 0 {
		var in, eg []Rule
		if dec.Profile {
			if p := findProfile(c, dec.Policy); p != nil {
				in, eg = p.Spec.Ingress, p.Spec.Egress
			}
		} else if p := findPolicy(c, dec.Policy); p != nil {
			in, eg = p.Spec.Ingress, p.Spec.Egress
		}
		list := in
		if dec.Dir == policy.Egress {
			list = eg
		}
		if int(dec.Rule) < len(list) {
			rules = append(rules, &list[dec.Rule])
		}
	}
	fchain := r.FChain[hookOf[d.Stage]]
	if d.Stage == "output" && r.FChain["mangle POSTROUTING"] != "" && (fchain == "" || path.DNAT.IsValid()) {
		fchain = r.FChain["mangle POSTROUTING"] // DNAT'd local output is policed there
	}
	if name, prof := felixPolicy(fchain); name != "" {
		if prof {
			if p := findProfile(c, name); p != nil {
				for i := range p.Spec.Ingress {
					rules = append(rules, &p.Spec.Ingress[i])
				}
				for i := range p.Spec.Egress {
					rules = append(rules, &p.Spec.Egress[i])
				}
			}
		} else if p := findPolicy(c, name); p != nil {
			if p.Spec.NamespaceSelector != "" || p.Spec.ServiceAccountSelector != "" {
				causes[causeItem3] = true
			}
			for i := range p.Spec.Ingress {
				rules = append(rules, &p.Spec.Ingress[i])
			}
			for i := range p.Spec.Egress {
				rules = append(rules, &p.Spec.Egress[i])
			}
		}
	}
	for _, rl := range rules {
		for _, f := range ruleFeatures(rl) {
			causes[f] = true
		}
	}
	if len(causes) == 0 {
		// A rule nfgate reads differently in a policy that applies to the
		// stage's endpoint, before or after the deciding one: whether it
		// matches changes which rule decides, or whether a tier passes or
		// ends in a drop.
		for _, f := range endpointRuleFeatures(c, d.Stage, r) {
			causes[f] = true
		}
	}
	if len(causes) == 0 {
		// A rule nfgate reads differently (a namespace selector) in a
		// policy of a kind that acts at this stage: its match (or not)
		// changes which rule decides, or whether the tier ends in a drop.
		for i := range c.Res.Policies {
			p := &c.Res.Policies[i]
			for _, k := range stageKinds(d.Stage) {
				if policyKind(p) != k {
					continue
				}
				for _, rl := range append(append([]Rule{}, p.Spec.Ingress...), p.Spec.Egress...) {
					for _, f := range ruleFeatures(&rl) {
						if f == causeItem4 {
							causes[causeItem4] = true
						}
					}
				}
			}
		}
	}
	if len(causes) == 0 && tierOrderMatters(c) {
		causes[causeTierNilOrder] = true
	}
	if len(causes) == 0 {
		// A policy nfgate ignores and Felix applies, of a kind that acts
		// at this stage (its rules need not have matched: an end-of-tier
		// drop is its doing too).
		for i := range c.Res.Policies {
			p := &c.Res.Policies[i]
			if p.Spec.NamespaceSelector == "" && p.Spec.ServiceAccountSelector == "" {
				continue
			}
			for _, k := range stageKinds(d.Stage) {
				if policyKind(p) == k {
					causes[causeItem3] = true
				}
			}
		}
	}
	if len(causes) == 0 {
		d.Cause = causeUnclassified
		return
	}
	var cs []string
	for k := range causes {
		cs = append(cs, k)
	}
	sort.Strings(cs)
	d.Cause = strings.Join(cs, "+")
}

// Causes of configurations one side refused.
func init() {
	for k, v := range map[string]string{
		"item8-http":            "issue 11 item 8: http rules load in Calico; nfgate refuses them",
		"item4-serviceAccounts": "issue 11 item 4: rules with serviceAccounts load in Calico; nfgate refuses them",
		"item6-missing-profile": "issue 11 item 6: a host endpoint may name a missing profile in Calico; nfgate refuses it",
		"item7-name-prefix":     "issue 11 item 7: policy names need no tier prefix in Calico; nfgate refuses a foreign prefix",
		"item10-bare-ip":        "issue 11 item 10: Calico's validator refuses a bare IP in nets (invalid CIDR); nfgate loads it",
		"item10-perf-hints":     "issue 11 item 10: Calico's validator accepts performanceHints; nfgate refuses them",
	} {
		causeTexts[k] = v
	}
}

// configCause names the cause of a configuration one side refused.
func configCause(c *Case, msg string) string {
	switch {
	case strings.Contains(msg, "http"):
		return "item8-http"
	case strings.Contains(msg, "serviceAccounts"):
		return "item4-serviceAccounts"
	case strings.Contains(msg, "profile"):
		return "item6-missing-profile"
	case strings.Contains(msg, "name") && strings.Contains(msg, "tier"):
		return "item7-name-prefix"
	case strings.Contains(msg, "invalid CIDR"):
		return "item10-bare-ip"
	case strings.Contains(msg, "performanceHints"):
		return "item10-perf-hints"
	}
	return causeUnclassified
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// endpointRuleFeatures lists the known-deviation constructs of the rules
// that run at a stage for the endpoints governing the packet's
// interfaces: rules of policies of the stage's kind selecting such an
// endpoint, in the stage's direction(s).
func endpointRuleFeatures(c *Case, stage string, r *Result) []string {
	path := r.Path
	var ifcs []string
	var dirs []string
	switch stage {
	case "untracked-in", "preDNAT", "input":
		ifcs, dirs = []string{path.In}, []string{"Ingress"}
	case "untracked-out":
		b0 := path.OutBeforeDNAT
		if b0 == "" {
			b0 = path.Out
		}
		ifcs, dirs = []string{b0}, []string{"Egress"}
	case "output":
		ifcs, dirs = []string{path.Out}, []string{"Egress"}
	case "forward":
		ifcs, dirs = []string{path.In, path.Out}, []string{"Ingress", "Egress"}
	}
	views := governingViews(&c.Res)
	var out []string
	for _, v := range views {
		hit := false
		for _, i := range ifcs {
			if v.ifc == i {
				hit = true
			}
		}
		if !hit {
			continue
		}
		for i := range c.Res.Policies {
			p := &c.Res.Policies[i]
			kindOK := false
			for _, k := range stageKinds(stage) {
				if policyKind(p) == k {
					kindOK = true
				}
			}
			if !kindOK || !selects(p.Spec.Selector, v.labels) {
				continue
			}
			for _, dir := range dirs {
				rules := p.Spec.Ingress
				if dir == "Egress" {
					rules = p.Spec.Egress
				}
				for j := range rules {
					out = append(out, ruleFeatures(&rules[j])...)
				}
			}
		}
		for _, pn := range v.hep.Spec.Profiles {
			if pr := findProfile(c, pn); pr != nil && (stage == "input" || stage == "output") {
				for j := range pr.Spec.Ingress {
					out = append(out, ruleFeatures(&pr.Spec.Ingress[j])...)
				}
				for j := range pr.Spec.Egress {
					out = append(out, ruleFeatures(&pr.Spec.Egress[j])...)
				}
			}
		}
	}
	return out
}

// tierOrderMatters: a tier without order (1,000,000 in Calico, last in
// nfgate) has policies, and another tier with policies sorts between the
// two positions (order above 1,000,000, or the same order with a name
// after it, like "default" after a tier "a").
func tierOrderMatters(c *Case) bool {
	used := map[string]bool{}
	for _, p := range c.Res.Policies {
		t := p.Spec.Tier
		if t == "" {
			t = "default"
		}
		used[t] = true
	}
	orders := map[string]*float64{}
	for _, t := range c.Res.Tiers {
		orders[t.Name] = t.Spec.Order
	}
	for _, b := range []struct {
		n string
		o float64
	}{{"default", 1e6}, {"kube-admin", 1e3}, {"kube-baseline", 1e7}} {
		o := b.o
		orders[b.n] = &o
	}
	for n, o := range orders {
		if o != nil || !used[n] {
			continue
		}
		for m, p := range orders {
			if m == n || !used[m] {
				continue
			}
			if p == nil || *p > 1e6 || (*p == 1e6 && m > n) {
				return true
			}
		}
	}
	return false
}

// denyCacheKey is what the live daemon's deny cache remembers a denied
// flow by: addresses, protocol and ports, or ICMP type and code.
func denyCacheKey(p *Probe) string {
	if p.isICMP() {
		return fmt.Sprintf("%s>%s/%d/%d.%d", p.Src, p.Dst, p.Proto, p.ICMPType, p.ICMPCode)
	}
	return fmt.Sprintf("%s:%d>%s:%d/%d", p.Src, p.SPort, p.Dst, p.DPort, p.Proto)
}

// classifyDenyCache names the live daemon's deny cache as the cause of a
// live-only DROP when an earlier probe of the case with the same deny
// cache key was dropped by the live daemon at the same stage.
func classifyDenyCache(results []*Result, ds []Disagreement) {
	for i := range ds {
		d := &ds[i]
		if d.Live != vDrop || d.Explain != d.Felix || d.Felix == vDrop || (d.Cause != causeUnclassified && !d.Consequence) {
			continue
		}
		for _, r := range results {
			if r.Probe.ID >= d.Probe.ID || r.Harness != "" || denyCacheKey(r.Probe) != denyCacheKey(d.Probe) {
				continue
			}
			if r.Live[d.Stage] == vDrop {
				d.Cause, d.Consequence = causeDenyCache, false
				break
			}
		}
	}
}
