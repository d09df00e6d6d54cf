package policy_test

import (
	"fmt"
	"testing"

	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/oracle"
	. "github.com/nfgate/nfgate/policy/policytest"
)

// A StagedGlobalNetworkPolicy is never enforced, but Felix (v3.32.1) keeps it
// in the endpoint's tiers (the calc layer treats it like any policy;
// felix/rules/endpoints.go only skips the jump to its chain). What that
// leaves behind, each checked against the real Felix (issue 11):
//   - an endpoint with an applyOnForward staged policy has forward tiers, so
//     its forward chains lose the "Allow forwarded traffic by default" rule
//     (the `len(tiers) == 0` branch);
//   - a tier whose policies in a direction are all staged has no end-of-tier
//     drop in that direction (endOfTierDrop counts non-staged policies only);
//   - a named endpoint with a staged preDNAT (or doNotTrack) policy has its
//     own mangle (raw) chain, so the "*" endpoint's preDNAT policy no longer
//     reaches its interface.

func staged(p *policy.GlobalNetworkPolicy) { p.Staged = true }

// stagedBoth evaluates one stage with the compiled program and the oracle;
// both must give want ("VERDICT reason [policy]").
func stagedBoth(t *testing.T, name string, cfg *policy.Config, eval func(evaluator) policy.Decision, want string) {
	t.Helper()
	prog, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []struct {
		who string
		e   evaluator
	}{{"compiled", prog}, {"oracle", oracle.New(prog)}} {
		desc := prog.Describe(eval(ev.e))
		got := fmt.Sprintf("%s %s", desc.Verdict, desc.Reason)
		if desc.Policy != "" {
			got += " " + desc.Policy
		}
		if got != want {
			t.Errorf("%s (%s): got %q, want %q", name, ev.who, got, want)
		}
	}
}

func TestStagedPolicies(t *testing.T) {
	pkt := TCP("198.18.5.5", 40000, "198.19.5.5", 80)
	toHost := TCP("198.18.5.5", 40000, "198.18.0.1", 9000)
	// Felix check: HEPs on eth1 (net a) and eth2 (net b), no profiles; a
	// staged applyOnForward Egress policy selecting a: a->b ACCEPT (the
	// out-endpoint b keeps its default allow), b->a NONE.
	heps := []policy.HostEndpoint{hep("a", "eth0", "net=a"), hep("b", "eth1", "net=b")}
	fwd := &policy.Config{Settings: noFailsafes(), HostEndpoints: heps,
		Policies: []policy.GlobalNetworkPolicy{gnp("s", "net == 'a'", staged, aof, out(Deny()))}}
	stagedBoth(t, "a->b", fwd, func(e evaluator) policy.Decision { return e.Forward(0, 1, false, &pkt) }, "ACCEPT default-allow-forward")
	stagedBoth(t, "b->a", fwd, func(e evaluator) policy.Decision { return e.Forward(1, 0, false, &pkt) }, "NONE no-match")
	runWalks(t, fwd, []walkCase{
		{"eth0>eth1", pkt, "ACCEPT forward/default-allow-forward"},
		{"eth1>eth0", pkt, "NONE forward/no-match"},
	})
	// Without it, both ways are allowed by default.
	plain := &policy.Config{Settings: noFailsafes(), HostEndpoints: heps}
	runWalks(t, plain, []walkCase{{"eth1>eth0", pkt, "ACCEPT forward/default-allow-forward"}})

	// A staged policy's own rules never match, wherever it sorts.
	mixed := &policy.Config{Settings: noFailsafes(), HostEndpoints: heps[:1], Policies: []policy.GlobalNetworkPolicy{
		gnp("s", "all()", staged, order(1), in(Deny())),
		gnp("allow", "all()", order(2), in(Allow())),
	}}
	stagedBoth(t, "staged before a real policy", mixed, func(e evaluator) policy.Decision { return e.Local(0, policy.Ingress, &toHost) }, "ACCEPT rule allow")

	// A tier with only staged policies (in a direction) has no end-of-tier
	// drop there: the profile decides (Felix check: ACCEPT).
	withProfile := hep("a", "eth0", "net=a")
	withProfile.Profiles = []string{"allow-all"}
	allowAll := policy.Profile{Name: "allow-all", Ingress: []policy.Rule{Allow()}, Egress: []policy.Rule{Allow()}}
	onlyStaged := &policy.Config{Settings: noFailsafes(), HostEndpoints: []policy.HostEndpoint{withProfile}, Profiles: []policy.Profile{allowAll},
		Tiers: []policy.Tier{{Name: "t1", Order: Order(100)}},
		Policies: []policy.GlobalNetworkPolicy{
			gnp("t1.s", "net == 'a'", staged, tier("t1"), in(Deny())),
			gnp("t1.ssh", "net == 'a'", tier("t1"), out(Allow())), // a real policy, egress only
		}}
	stagedBoth(t, "staged-only tier ingress", onlyStaged, func(e evaluator) policy.Decision { return e.Local(0, policy.Ingress, &toHost) }, "ACCEPT profile allow-all")
	stagedBoth(t, "real policy in the other direction", onlyStaged, func(e evaluator) policy.Decision { return e.Local(0, policy.Egress, &toHost) }, "ACCEPT rule t1.ssh")
	// The same tier with a real ingress policy that matches nothing drops.
	real := *onlyStaged
	real.Policies = append(append([]policy.GlobalNetworkPolicy{}, onlyStaged.Policies...), gnp("t1.none", "net == 'a'", tier("t1"), in(Allow(func(r *policy.Rule) { r.Protocol = Proto("UDP") }))))
	stagedBoth(t, "end-of-tier with a real policy", &real, func(e evaluator) policy.Decision { return e.Local(0, policy.Ingress, &toHost) }, "DROP end-of-tier")

	// Felix check: a "*" endpoint's preDNAT Deny of TCP/9000 drops it on
	// eth1 (named endpoint without preDNAT policy); a staged preDNAT policy
	// selecting the named endpoint gives it its own (empty) mangle chain,
	// and TCP/9000 is accepted by the profile.
	wild := hep("all", "*", "all=yes")
	wild.Profiles = []string{"allow-all"}
	pre := &policy.Config{Settings: noFailsafes(), HostEndpoints: []policy.HostEndpoint{withProfile, wild}, Profiles: []policy.Profile{allowAll},
		Policies: []policy.GlobalNetworkPolicy{
			gnp("pre-deny-9000", "all == 'yes'", preDNAT, in(Deny(func(r *policy.Rule) { r.Protocol = Proto("TCP"); r.Destination.Ports = Ports("9000") }))),
		}}
	runWalks(t, pre, []walkCase{{"eth0>local", toHost, "DROP preDNAT/rule pre-deny-9000"}})
	pre.Policies = append(pre.Policies, gnp("staged-pre", "net == 'a'", staged, preDNAT, in(Deny())))
	runWalks(t, pre, []walkCase{{"eth0>local", toHost, "ACCEPT input/profile allow-all"}})
	prog, err := policy.Compile(pre)
	if err != nil {
		t.Fatal(err)
	}
	if b := prog.Bind(ifaces["eth0"]); b.PreDNAT != 0 {
		t.Errorf("eth0's pre-DNAT chain: endpoint %d, want 0 (the named endpoint, whose only preDNAT policy is staged)", b.PreDNAT)
	}
	stagedBoth(t, "staged-only preDNAT chain", pre, func(e evaluator) policy.Decision { return e.PreDNAT(0, &toHost) }, "NONE no-match")

	// A staged doNotTrack policy: the raw chain exists and decides nothing.
	dntCfg := &policy.Config{Settings: noFailsafes(), HostEndpoints: []policy.HostEndpoint{withProfile}, Profiles: []policy.Profile{allowAll},
		Policies: []policy.GlobalNetworkPolicy{gnp("s", "all()", staged, dnt, in(Deny()))}}
	stagedBoth(t, "staged doNotTrack", dntCfg, func(e evaluator) policy.Decision { return e.Untracked(0, policy.Ingress, &toHost) }, "NONE no-match")
	runWalks(t, dntCfg, []walkCase{{"eth0>local", toHost, "ACCEPT input/profile allow-all"}})

	// Pass in a real policy still skips a staged policy's tier remainder.
	passCfg := &policy.Config{Settings: noFailsafes(), HostEndpoints: []policy.HostEndpoint{withProfile}, Profiles: []policy.Profile{allowAll},
		Policies: []policy.GlobalNetworkPolicy{
			gnp("pass", "all()", order(1), in(Pass())),
			gnp("s", "all()", staged, order(2), in(Deny())),
		}}
	stagedBoth(t, "pass then staged", passCfg, func(e evaluator) policy.Decision { return e.Local(0, policy.Ingress, &toHost) }, "ACCEPT profile allow-all")
}
