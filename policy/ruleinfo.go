package policy

import (
	"fmt"

	"github.com/nfgate/nfgate/policy/selector"
)

// Why a rule can match nothing, for lint: a rule compiles to no rectangle
// of either family when its fields exclude each other, when a selector it
// needs selects nothing with addresses, or when it names a Kubernetes
// service or a named port no endpoint declares.

// RuleNeverKind classifies a rule that can match no packet.
type RuleNeverKind uint8

const (
	RuleCanMatch      RuleNeverKind = iota
	RuleContradiction               // its own fields exclude each other
	RuleNoSelected                  // a selector selects no endpoint or network set with addresses
	RuleNoNamedPort                 // its named ports are declared by no endpoint
	RuleServices                    // it names a Kubernetes service
)

// RuleChecker answers RuleNever for the rules of one program.
type RuleChecker struct {
	p       *Program
	entries []addrEntry
}

// NewRuleChecker returns a RuleChecker over p's endpoints and network sets.
func (p *Program) NewRuleChecker() *RuleChecker {
	return &RuleChecker{p: p, entries: addrEntries(p.cfg, p.r)}
}

// matches reports whether r (with the entity selectors sels) can match a
// packet of either family.
func (c *RuleChecker) matches(r *Rule, sels map[*EntityRule]*selector.Selector) bool {
	for _, fam := range []uint8{4, 6} {
		if _, ok := factor(r, fam, c.entries, sels); ok {
			return true
		}
	}
	return false
}

// RuleNever says whether rule r (a rule of the program's configuration)
// can match no packet of either family, why, and in words.
func (c *RuleChecker) RuleNever(r *Rule) (RuleNeverKind, string) {
	if r.Source.Services != nil || r.Destination.Services != nil {
		return RuleServices, "it names a Kubernetes service, whose endpoints a gateway does not know: it never matches"
	}
	sels := c.p.r.sels
	if c.matches(r, sels) {
		return RuleCanMatch, ""
	}
	// The same rule with a part removed: the first removal that makes it
	// match names the culprit. The copy keeps r's selectors.
	try2 := func(change func(q *Rule), keepSrc, keepDst bool) bool {
		q := *r
		change(&q)
		s := map[*EntityRule]*selector.Selector{}
		if keepSrc {
			s[&q.Source] = sels[&r.Source]
		}
		if keepDst {
			s[&q.Destination] = sels[&r.Destination]
		}
		return c.matches(&q, s)
	}
	try := func(change func(q *Rule), keep bool) bool { return try2(change, keep, keep) }
	noSel := func(e *EntityRule) {
		e.Selector, e.NotSelector, e.NamespaceSelector, e.ServiceAccounts = nil, nil, nil, nil
	}
	if try(func(q *Rule) { noSel(&q.Source); noSel(&q.Destination) }, false) {
		side := "source and destination selectors select"
		switch {
		case try2(func(q *Rule) { noSel(&q.Source) }, false, true):
			side = "source selector selects"
		case try2(func(q *Rule) { noSel(&q.Destination) }, true, false):
			side = "destination selector selects"
		}
		return RuleNoSelected, fmt.Sprintf("its %s no host endpoint or network set with addresses (of the rule's families): it never matches", side)
	}
	named := func(ps []Port) []Port {
		var out []Port
		for _, p := range ps {
			if p.Name == "" {
				out = append(out, p)
			}
		}
		return out
	}
	if try(func(q *Rule) {
		if n := named(q.Source.Ports); len(n) < len(q.Source.Ports) && len(n) == 0 {
			q.Source.Ports = nil
		}
		if n := named(q.Destination.Ports); len(n) < len(q.Destination.Ports) && len(n) == 0 {
			q.Destination.Ports = nil
		}
	}, true) {
		return RuleNoNamedPort, "its named ports are declared by no host endpoint (with addresses, and a protocol the rule allows): it never matches"
	}
	for _, x := range []struct {
		change func(q *Rule)
		why    string
	}{
		{func(q *Rule) { q.NotProtocol = nil }, "notProtocol excludes its protocol"},
		{func(q *Rule) { q.NotICMP = nil }, "notICMP excludes its icmp match"},
		{func(q *Rule) { q.IPVersion = 0 }, fmt.Sprintf("ipVersion %d excludes the family of its nets or protocol", r.IPVersion)},
		{func(q *Rule) { q.Source.NotNets = nil }, "source notNets cover all of its source nets"},
		{func(q *Rule) { q.Destination.NotNets = nil }, "destination notNets cover all of its destination nets"},
		{func(q *Rule) { q.Source.NotPorts = nil }, "source notPorts cover all of its source ports"},
		{func(q *Rule) { q.Destination.NotPorts = nil }, "destination notPorts cover all of its destination ports"},
		{func(q *Rule) { q.Destination.Nets = nil; q.Destination.NotNets = nil }, "its source and destination nets are of different families"},
	} {
		if try(x.change, true) {
			return RuleContradiction, x.why + ": it never matches"
		}
	}
	return RuleContradiction, "its fields exclude each other: no packet of either family matches"
}
