package policy_test

import (
	"testing"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	. "github.com/nfgate/nfgate/policy/policytest"
)

// Calico turns namespace and service account selectors into selectors over
// pcns./pcsa.-prefixed labels (libcalico-go updateprocessors). Host
// endpoints and network sets carry no such labels, so positive clauses
// select none of them and negated clauses select them all (issue 11 items 3
// and 4; nfgate used to treat them as selecting nothing).

// A GlobalNetworkPolicy's namespaceSelector / serviceAccountSelector:
// globalnetworkpolicyprocessor.go, including the all() rewriting of the
// whole selector text.
func TestPolicyNamespaceSelector(t *testing.T) {
	pkt := TCP("198.18.5.5", 40000, "198.18.0.1", 80)
	for _, c := range []struct {
		name         string
		sel, ns, sa  string
		wantSelector string // what Felix evaluates
		want         string
	}{
		{"no namespace parts", "all()", "", "", "all()", "DROP input/rule deny"},
		{"negated namespaceSelector selects host endpoints", "", "!has(team)", "", "!has(pcns.team)", "DROP input/rule deny"},
		{"with a selector", "role == 'gw'", "!has(team)", "", `role == "gw" && !has(pcns.team)`, "DROP input/rule deny"},
		{"selector not matching", "role == 'x'", "!has(team)", "", `role == "x" && !has(pcns.team)`, "ACCEPT input/rule allow"},
		{"positive namespaceSelector selects none", "", "team == 'a'", "", `pcns.team == "a"`, "ACCEPT input/rule allow"},
		{"not in", "", "team not in {'a'}", "", `pcns.team not in {"a"}`, "DROP input/rule deny"},
		{"all() quirk: selector all() becomes has(projectcalico.org/namespace)", "all()", "!has(team)", "",
			"has(projectcalico.org/namespace) && !has(pcns.team)", "ACCEPT input/rule allow"},
		{"all() quirk: namespaceSelector all()", "", "all()", "", "has(projectcalico.org/namespace)", "ACCEPT input/rule allow"},
		{"all() quirk: inside a value", `role == "all()"`, "!has(team)", "", `role == "has(projectcalico.org/namespace)" && !has(pcns.team)`, "ACCEPT input/rule allow"},
		{"all( ) with a space is not rewritten", "all( )", "!has(team)", "", "all() && !has(pcns.team)", "DROP input/rule deny"},
		{"serviceAccountSelector negated", "", "", "!has(sa)", "!has(pcsa.sa)", "DROP input/rule deny"},
		{"serviceAccountSelector positive", "", "", "sa == 'x'", `pcsa.sa == "x"`, "ACCEPT input/rule allow"},
		{"both, all() rewritten twice", "", "!has(team)", "all()", "!has(pcns.team) && has(projectcalico.org/serviceaccount)", "ACCEPT input/rule allow"},
	} {
		sel, err := policy.PolicySelector(c.sel, c.ns, c.sa)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if sel.String() != c.wantSelector {
			t.Errorf("%s: Felix selector %q, want %q", c.name, sel, c.wantSelector)
		}
		deny := gnp("deny", "all()", order(1), in(Deny()))
		deny.Selector, deny.NamespaceSelector, deny.ServiceAccountSelector = sel, c.ns, c.sa
		cfg := &policy.Config{Settings: noFailsafes(), HostEndpoints: []policy.HostEndpoint{hep("gw.eth0", "eth0", "role=gw")},
			Policies: []policy.GlobalNetworkPolicy{deny, gnp("allow", "all()", order(2), in(Allow()))}}
		cfg.HostEndpoints[0].Node = "gw"
		prog, err := policy.Compile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := summary(prog, prog.Walk(path("eth0>local"), pkt)); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// A rule's namespaceSelector and serviceAccounts (updateprocessors/rules.go
// getEndpointSelector): global() is !has(projectcalico.org/namespace).
func TestRuleNamespaceSelector(t *testing.T) {
	// srv (198.18.0.9) and ns (198.18.0.10, labelled with a namespace) are
	// other nodes' endpoints; set 198.19.7.0/24 is a GlobalNetworkSet.
	toSrv := TCP("198.18.5.5", 40000, "198.18.0.9", 8080)
	toNS := TCP("198.18.5.5", 40000, "198.18.0.10", 8080)
	toSet := TCP("198.18.5.5", 40000, "198.19.7.7", 8080)
	nsSel := func(s string) func(*policy.Rule) {
		return func(r *policy.Rule) { r.Destination.NamespaceSelector = Sel(s) }
	}
	sa := func(sel string, names ...string) func(*policy.Rule) {
		return func(r *policy.Rule) {
			r.Destination.ServiceAccounts = &policy.ServiceAccountMatch{Names: names}
			if sel != "" {
				r.Destination.ServiceAccounts.Selector = Sel(sel)
			}
		}
	}
	for _, c := range []struct {
		name string
		rule policy.Rule
		pkt  classify.Packet
		want string
	}{
		{"global() selects a host endpoint", Allow(nsSel("global()")), toSrv, "ACCEPT rule p"},
		{"global() selects a network set", Allow(nsSel("global()")), toSet, "ACCEPT rule p"},
		{"global() excludes an endpoint labelled with a namespace", Allow(nsSel("global()")), toNS, "DROP end-of-tier"},
		{"global() does not select other addresses", Allow(nsSel("global()")), TCP("198.18.5.5", 40000, "198.18.0.77", 8080), "DROP end-of-tier"},
		{"negated namespaceSelector selects host endpoints", Deny(nsSel("!has(team)")), toSrv, "DROP rule p"},
		{"negated namespaceSelector, with a selector", Deny(nsSel("team != 'a'"), DstSel("role == 'srv'")), toSrv, "DROP rule p"},
		{"positive namespaceSelector selects none", Allow(nsSel("has(team)")), toSrv, "DROP end-of-tier"},
		{"namespaceSelector all() selects only namespace-labelled endpoints", Allow(nsSel("all()")), toNS, "ACCEPT rule p"},
		{"namespaceSelector all(), unlabelled endpoint", Allow(nsSel("all()")), toSrv, "DROP end-of-tier"},
		{"serviceAccounts selector negated", Deny(sa("!has(x)")), toSrv, "DROP rule p"},
		{"serviceAccounts selector all() is not rewritten", Deny(sa("all()")), toSet, "DROP rule p"},
		{"serviceAccounts names", Allow(sa("", "db")), toSrv, "DROP end-of-tier"},
		{"serviceAccounts names, labelled endpoint", Allow(sa("", "db")), toNS, "ACCEPT rule p"},
		{"notSelector stays separate", Allow(nsSel("global()"), func(r *policy.Rule) { r.Destination.NotSelector = Sel("role == 'srv'") }), toSrv, "DROP end-of-tier"},
	} {
		cfg := edgeConfig(c.rule)
		cfg.RemoteHostEndpoints[0].Labels = Labels("role=srv")
		ns := hep("ns", "eth9", "projectcalico.org/namespace=prod", "projectcalico.org/serviceaccount=db")
		ns.Node, ns.ExpectedIPs = "other", Addrs("198.18.0.10")
		cfg.RemoteHostEndpoints = append(cfg.RemoteHostEndpoints, ns)
		cfg.NetworkSets = []policy.GlobalNetworkSet{{Name: "set", Nets: Nets("198.19.7.0/24")}}
		localBoth(t, c.name, cfg, c.pkt, c.want)
	}
}

// A host endpoint naming a profile that does not exist: Felix gives the
// profile one Deny rule each way (active_rules_calculator.go DummyDropRules),
// so traffic that reaches the profiles is dropped there; an earlier profile
// still decides first (issue 11 item 6; nfgate used to reject the whole
// configuration).
func TestMissingProfileDenies(t *testing.T) {
	h := hep("gw.eth0", "eth0")
	h.Profiles = []string{"allow-dns", "nope"}
	cfg := &policy.Config{Settings: noFailsafes(), HostEndpoints: []policy.HostEndpoint{h},
		Profiles: []policy.Profile{{Name: "allow-dns", Ingress: []policy.Rule{Allow(P("UDP"), DstPorts("53"))}}}}
	localBoth(t, "reaches the missing profile", cfg, TCP("198.18.5.5", 1, "198.18.0.1", 80), "DROP profile nope")
	localBoth(t, "an earlier profile decides", cfg, UDP("198.18.5.5", 1, "198.18.0.1", 53), "ACCEPT profile allow-dns")
	cfg.Policies = []policy.GlobalNetworkPolicy{gnp("allow", "all()", in(Allow(P("TCP"))))}
	localBoth(t, "policy decides first", cfg, TCP("198.18.5.5", 1, "198.18.0.1", 80), "ACCEPT rule allow")
	prog, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cfg.Profiles); n != 1 {
		t.Errorf("Compile modified the caller's Config: %d profiles", n)
	}
	if p := prog.Config().Profiles; len(p) != 2 || !p[1].Missing {
		t.Errorf("compiled profiles: %+v", p)
	}
}

// Namespaced NetworkSets: Felix's rule selectors match them like any
// labelled set (updateprocessors/rules.go getEndpointSelector puts no
// namespace restriction on a global policy's rule without a
// namespaceSelector), with projectcalico.org/namespace and the labels of
// Profile kns.<namespace> added (networksetprocessor.go). Every row was run
// on the real Felix v3.32.1 (HEP eth1 with one Allow rule, traffic from the
// set's address to the host).
func TestNamespacedNetworkSets(t *testing.T) {
	pkt := TCP("198.18.1.2", 40000, "198.18.0.1", 80)
	kns := policy.Profile{Name: "kns.ns1", LabelsToApply: Labels("pcns.team=x", "role=untrusted", "extra=gold")}
	for _, c := range []struct {
		name    string
		profile bool // Profile kns.ns1 exists
		sel, ns string
		want    string
	}{
		{"selector", false, "role == 'trusted'", "", "ACCEPT rule p"},
		{"global() excludes namespaced sets", false, "role == 'trusted'", "global()", "DROP end-of-tier"},
		{"namespace label", false, "projectcalico.org/namespace == 'ns1'", "", "ACCEPT rule p"},
		{"has namespace label", false, "has(projectcalico.org/namespace)", "", "ACCEPT rule p"},
		{"namespaceSelector all()", false, "", "all()", "ACCEPT rule p"},
		{"namespaceSelector without the namespace's labels", false, "", "team == 'x'", "DROP end-of-tier"},
		{"negated namespaceSelector", false, "", "!has(team)", "ACCEPT rule p"},
		{"namespace profile labels", true, "", "team == 'x'", "ACCEPT rule p"},
		{"negated, with the namespace profile", true, "", "!has(team)", "DROP end-of-tier"},
		{"own label wins over the profile's", true, "role == 'trusted'", "", "ACCEPT rule p"},
		{"the profile's value is hidden", true, "role == 'untrusted'", "", "DROP end-of-tier"},
		{"a label only the profile has", true, "extra == 'gold'", "", "ACCEPT rule p"},
	} {
		r := Allow(func(r *policy.Rule) {
			if c.sel != "" {
				r.Source.Selector = Sel(c.sel)
			}
			if c.ns != "" {
				r.Source.NamespaceSelector = Sel(c.ns)
			}
		})
		cfg := &policy.Config{Settings: noFailsafes(), HostEndpoints: []policy.HostEndpoint{hep("gw.eth1", "eth0", "net=a")},
			NetworkSets: []policy.GlobalNetworkSet{{Name: "trusted", Namespace: "ns1", Labels: Labels("role=trusted"), Nets: Nets("198.18.1.2/32")}},
			Policies:    []policy.GlobalNetworkPolicy{gnp("p", "net == 'a'", in(r))}}
		if c.profile {
			cfg.Profiles = []policy.Profile{kns}
		}
		localBoth(t, c.name, cfg, pkt, c.want)
	}
}
