package main

import "github.com/nfgate/nfgate/policy"

// namedProgram adds the name look-ups the engine's trace uses to a Program.
type namedProgram struct{ *policy.Program }

func named(p *policy.Program) namedProgram { return namedProgram{p} }

// EndpointName returns the host endpoint's name, "" for none.
func (p namedProgram) EndpointName(id policy.EndpointID) string {
	if ep := p.Endpoint(id); ep != nil {
		return ep.Name
	}
	return ""
}

// TierName returns the name of tier i in evaluation order.
func (p namedProgram) TierName(i int32) string {
	t := p.Tiers()
	if i < 0 || int(i) >= len(t) {
		return ""
	}
	return t[i].Name
}
