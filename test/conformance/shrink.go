package conformance

import (
	"fmt"
)

// clone deep-copies resources through their YAML form (the model holds
// nothing YAML cannot say).
func (r *Resources) clone() *Resources {
	c, err := parseResources(r.YAML())
	if err != nil {
		panic(fmt.Sprintf("conformance: clone: %v", err))
	}
	return c
}

// step is one reduction of a configuration; it reports false when it
// does not apply (nothing changed).
type step struct {
	what string
	do   func(r *Resources) bool
}

func del[T any](xs []T, i int) []T { return append(xs[:i:i], xs[i+1:]...) }

// reductions lists every single-step reduction of r, coarse ones first:
// whole resources, then rules and endpoint attributes, then rule fields.
func reductions(r *Resources) []step {
	var s []step
	add := func(what string, do func(r *Resources) bool) { s = append(s, step{what, do}) }
	for i := range r.Policies {
		i := i
		add("policy "+r.Policies[i].Name, func(r *Resources) bool { r.Policies = del(r.Policies, i); return true })
	}
	for i := range r.HEPs {
		i := i
		add("host endpoint "+r.HEPs[i].Name, func(r *Resources) bool { r.HEPs = del(r.HEPs, i); return true })
	}
	for i := range r.NetSets {
		i := i
		add("network set "+r.NetSets[i].Name, func(r *Resources) bool { r.NetSets = del(r.NetSets, i); return true })
	}
	for i := range r.Profiles {
		i := i
		add("profile "+r.Profiles[i].Name, func(r *Resources) bool {
			name := r.Profiles[i].Name
			r.Profiles = del(r.Profiles, i)
			for h := range r.HEPs {
				var keep []string
				for _, p := range r.HEPs[h].Spec.Profiles {
					if p != name {
						keep = append(keep, p)
					}
				}
				r.HEPs[h].Spec.Profiles = keep
			}
			return true
		})
	}
	for i := range r.Tiers {
		i := i
		add("tier "+r.Tiers[i].Name, func(r *Resources) bool {
			for _, p := range r.Policies {
				if p.Spec.Tier == r.Tiers[i].Name {
					return false
				}
			}
			r.Tiers = del(r.Tiers, i)
			return true
		})
	}
	if r.Felix != nil {
		add("FelixConfiguration", func(r *Resources) bool { r.Felix = nil; return true })
	}
	// Rules.
	for i := range r.Policies {
		i := i
		for j := range r.Policies[i].Spec.Ingress {
			j := j
			add(fmt.Sprintf("%s ingress rule %d", r.Policies[i].Name, j), func(r *Resources) bool {
				r.Policies[i].Spec.Ingress = del(r.Policies[i].Spec.Ingress, j)
				return true
			})
		}
		for j := range r.Policies[i].Spec.Egress {
			j := j
			add(fmt.Sprintf("%s egress rule %d", r.Policies[i].Name, j), func(r *Resources) bool {
				r.Policies[i].Spec.Egress = del(r.Policies[i].Spec.Egress, j)
				return true
			})
		}
	}
	for i := range r.Profiles {
		i := i
		for j := range r.Profiles[i].Spec.Ingress {
			j := j
			add(fmt.Sprintf("%s ingress rule %d", r.Profiles[i].Name, j), func(r *Resources) bool {
				r.Profiles[i].Spec.Ingress = del(r.Profiles[i].Spec.Ingress, j)
				return true
			})
		}
		for j := range r.Profiles[i].Spec.Egress {
			j := j
			add(fmt.Sprintf("%s egress rule %d", r.Profiles[i].Name, j), func(r *Resources) bool {
				r.Profiles[i].Spec.Egress = del(r.Profiles[i].Spec.Egress, j)
				return true
			})
		}
		if len(r.Profiles[i].Spec.LabelsToApply) > 0 {
			add(r.Profiles[i].Name+" labelsToApply", func(r *Resources) bool { r.Profiles[i].Spec.LabelsToApply = nil; return true })
		}
	}
	// Endpoint attributes.
	for i := range r.HEPs {
		i := i
		h := &r.HEPs[i]
		if len(h.Spec.Ports) > 0 {
			add(h.Name+" ports", func(r *Resources) bool { r.HEPs[i].Spec.Ports = nil; return true })
		}
		if len(h.Spec.Profiles) > 0 {
			add(h.Name+" profiles", func(r *Resources) bool { r.HEPs[i].Spec.Profiles = nil; return true })
		}
		for k := range h.Labels {
			k := k
			add(h.Name+" label "+k, func(r *Resources) bool { delete(r.HEPs[i].Labels, k); return true })
		}
		for j := range h.Spec.ExpectedIPs {
			j := j
			add(fmt.Sprintf("%s expectedIPs[%d]", h.Name, j), func(r *Resources) bool {
				r.HEPs[i].Spec.ExpectedIPs = del(r.HEPs[i].Spec.ExpectedIPs, j)
				return true
			})
		}
		for j := range h.Spec.Ports {
			j := j
			add(fmt.Sprintf("%s ports[%d]", h.Name, j), func(r *Resources) bool {
				r.HEPs[i].Spec.Ports = del(r.HEPs[i].Spec.Ports, j)
				return true
			})
		}
	}
	for i := range r.NetSets {
		i := i
		for j := range r.NetSets[i].Spec.Nets {
			j := j
			add(fmt.Sprintf("%s nets[%d]", r.NetSets[i].Name, j), func(r *Resources) bool {
				r.NetSets[i].Spec.Nets = del(r.NetSets[i].Spec.Nets, j)
				return true
			})
		}
		for k := range r.NetSets[i].Labels {
			k := k
			add(r.NetSets[i].Name+" label "+k, func(r *Resources) bool { delete(r.NetSets[i].Labels, k); return true })
		}
	}
	// Policy fields.
	for i := range r.Policies {
		i := i
		p := &r.Policies[i]
		if p.Spec.Order != nil {
			add(p.Name+" order", func(r *Resources) bool { r.Policies[i].Spec.Order = nil; return true })
		}
		if p.Spec.Selector != "" && p.Spec.Selector != "all()" {
			add(p.Name+" selector", func(r *Resources) bool { r.Policies[i].Spec.Selector = "all()"; return true })
		}
		if len(p.Spec.Types) > 0 {
			add(p.Name+" types", func(r *Resources) bool { r.Policies[i].Spec.Types = nil; return true })
		}
		if p.Spec.Tier != "" && p.Spec.Tier != "default" {
			add(p.Name+" tier", func(r *Resources) bool { r.Policies[i].Spec.Tier = ""; return true })
		}
		if p.Spec.NamespaceSelector != "" || p.Spec.ServiceAccountSelector != "" {
			add(p.Name+" namespace/serviceAccount selector", func(r *Resources) bool {
				r.Policies[i].Spec.NamespaceSelector, r.Policies[i].Spec.ServiceAccountSelector = "", ""
				return true
			})
		}
	}
	// Rule fields.
	eachRule(r, func(name string, get func(r *Resources) *Rule) {
		for _, f := range ruleFieldSteps {
			f := f
			if f.has(get(r)) {
				add(name+" "+f.name, func(r *Resources) bool { f.clear(get(r)); return true })
			}
		}
	})
	return s
}

// eachRule calls f for every rule, with a function finding it in a copy.
func eachRule(r *Resources, f func(name string, get func(r *Resources) *Rule)) {
	for i := range r.Policies {
		i := i
		for j := range r.Policies[i].Spec.Ingress {
			j := j
			f(fmt.Sprintf("%s ingress rule %d", r.Policies[i].Name, j), func(r *Resources) *Rule { return &r.Policies[i].Spec.Ingress[j] })
		}
		for j := range r.Policies[i].Spec.Egress {
			j := j
			f(fmt.Sprintf("%s egress rule %d", r.Policies[i].Name, j), func(r *Resources) *Rule { return &r.Policies[i].Spec.Egress[j] })
		}
	}
	for i := range r.Profiles {
		i := i
		for j := range r.Profiles[i].Spec.Ingress {
			j := j
			f(fmt.Sprintf("%s ingress rule %d", r.Profiles[i].Name, j), func(r *Resources) *Rule { return &r.Profiles[i].Spec.Ingress[j] })
		}
		for j := range r.Profiles[i].Spec.Egress {
			j := j
			f(fmt.Sprintf("%s egress rule %d", r.Profiles[i].Name, j), func(r *Resources) *Rule { return &r.Profiles[i].Spec.Egress[j] })
		}
	}
}

type fieldStep struct {
	name  string
	has   func(*Rule) bool
	clear func(*Rule)
}

func entityStep(name string, src bool, has func(*Entity) bool, clear func(*Entity)) fieldStep {
	side := func(r *Rule) *Entity {
		if src {
			return r.Source
		}
		return r.Destination
	}
	return fieldStep{name,
		func(r *Rule) bool { return side(r) != nil && has(side(r)) },
		func(r *Rule) {
			e := side(r)
			clear(e)
			if e.empty() {
				if src {
					r.Source = nil
				} else {
					r.Destination = nil
				}
			}
		}}
}

var ruleFieldSteps = func() []fieldStep {
	fs := []fieldStep{
		{"protocol", func(r *Rule) bool { return r.Protocol != nil }, func(r *Rule) { r.Protocol = nil }},
		{"notProtocol", func(r *Rule) bool { return r.NotProtocol != nil }, func(r *Rule) { r.NotProtocol = nil }},
		{"ipVersion", func(r *Rule) bool { return r.IPVersion != nil }, func(r *Rule) { r.IPVersion = nil }},
		{"icmp", func(r *Rule) bool { return r.ICMP != nil }, func(r *Rule) { r.ICMP = nil }},
		{"icmp code", func(r *Rule) bool { return r.ICMP != nil && r.ICMP.Code != nil }, func(r *Rule) { r.ICMP.Code = nil }},
		{"notICMP", func(r *Rule) bool { return r.NotICMP != nil }, func(r *Rule) { r.NotICMP = nil }},
		{"metadata", func(r *Rule) bool { return r.Metadata != nil }, func(r *Rule) { r.Metadata = nil }},
		{"http", func(r *Rule) bool { return r.HTTP != nil }, func(r *Rule) { r.HTTP = nil }},
		{"action Allow", func(r *Rule) bool { return r.Action == "Log" || r.Action == "Pass" }, func(r *Rule) { r.Action = "Allow" }},
	}
	for _, src := range []bool{true, false} {
		side := "destination"
		if src {
			side = "source"
		}
		fs = append(fs,
			entityStep(side+".nets", src, func(e *Entity) bool { return len(e.Nets) > 0 }, func(e *Entity) { e.Nets = nil }),
			entityStep(side+".nets[0]", src, func(e *Entity) bool { return len(e.Nets) > 1 }, func(e *Entity) { e.Nets = e.Nets[1:] }),
			entityStep(side+".nets[-1]", src, func(e *Entity) bool { return len(e.Nets) > 1 }, func(e *Entity) { e.Nets = e.Nets[:len(e.Nets)-1] }),
			entityStep(side+".notNets", src, func(e *Entity) bool { return len(e.NotNets) > 0 }, func(e *Entity) { e.NotNets = nil }),
			entityStep(side+".notNets[0]", src, func(e *Entity) bool { return len(e.NotNets) > 1 }, func(e *Entity) { e.NotNets = e.NotNets[1:] }),
			entityStep(side+".selector", src, func(e *Entity) bool { return e.Selector != "" }, func(e *Entity) { e.Selector = "" }),
			entityStep(side+".notSelector", src, func(e *Entity) bool { return e.NotSelector != "" }, func(e *Entity) { e.NotSelector = "" }),
			entityStep(side+".namespaceSelector", src, func(e *Entity) bool { return e.NamespaceSelector != "" }, func(e *Entity) { e.NamespaceSelector = "" }),
			entityStep(side+".ports", src, func(e *Entity) bool { return len(e.Ports) > 0 }, func(e *Entity) { e.Ports = nil }),
			entityStep(side+".ports[0]", src, func(e *Entity) bool { return len(e.Ports) > 1 }, func(e *Entity) { e.Ports = e.Ports[1:] }),
			entityStep(side+".ports[-1]", src, func(e *Entity) bool { return len(e.Ports) > 1 }, func(e *Entity) { e.Ports = e.Ports[:len(e.Ports)-1] }),
			entityStep(side+".notPorts", src, func(e *Entity) bool { return len(e.NotPorts) > 0 }, func(e *Entity) { e.NotPorts = nil }),
			entityStep(side+".notPorts[0]", src, func(e *Entity) bool { return len(e.NotPorts) > 1 }, func(e *Entity) { e.NotPorts = e.NotPorts[1:] }),
			entityStep(side+".notPorts[-1]", src, func(e *Entity) bool { return len(e.NotPorts) > 1 }, func(e *Entity) { e.NotPorts = e.NotPorts[:len(e.NotPorts)-1] }),
			entityStep(side+".serviceAccounts", src, func(e *Entity) bool { return e.ServiceAccounts != nil }, func(e *Entity) { e.ServiceAccounts = nil }),
		)
	}
	return fs
}()

// shrink reduces r while fails(r) holds, one step at a time, until no
// step keeps it failing (or budget runs out). fails must not be called on
// r itself again: the caller knows it fails. It returns the smallest r
// found and the steps taken.
//
// After a successful step the list of steps is made anew (indexes move);
// steps that already failed to reproduce are skipped by name until a pass
// makes no progress, then one last pass tries them all again.
func shrink(r *Resources, fails func(*Resources) bool, budget int) (*Resources, []string, int) {
	cur := r.clone()
	var taken []string
	tries := 0
	failed := map[string]bool{}
	for tries < budget {
		progress, skipped := false, false
		for _, st := range reductions(cur) {
			if tries >= budget {
				break
			}
			if failed[st.what] {
				skipped = true
				continue
			}
			cand := cur.clone()
			if !st.do(cand) {
				continue
			}
			tries++
			if fails(cand) {
				cur, progress = cand, true
				taken = append(taken, st.what)
				break
			}
			failed[st.what] = true
		}
		if !progress {
			if !skipped {
				break
			}
			failed = map[string]bool{}
			skipped = false
			// one more full pass
			for _, st := range reductions(cur) {
				if tries >= budget {
					break
				}
				cand := cur.clone()
				if !st.do(cand) {
					continue
				}
				tries++
				if fails(cand) {
					cur, progress = cand, true
					taken = append(taken, st.what)
					break
				}
				failed[st.what] = true
			}
			if !progress {
				break
			}
		}
	}
	return cur, taken, tries
}
