package policy_test

import (
	"net/netip"
	"regexp"
	"testing"

	"github.com/nfgate/nfgate/policy"
	. "github.com/nfgate/nfgate/policy/policytest"
)

// Spec §1.1: which endpoint governs an interface at each stage.
func TestBind(t *testing.T) {
	byIP := hep("b-by-ip", "", "k=ip")
	byIP.ExpectedIPs = Addrs("198.18.0.1")
	byIP2 := hep("a-by-ip", "", "k=ip2")
	byIP2.ExpectedIPs = Addrs("198.18.0.1", "198.19.0.1")
	cfg := &policy.Config{Settings: defaults(),
		HostEndpoints: []policy.HostEndpoint{
			hep("z-eth0", "eth0", "k=eth0"), byIP, byIP2,
			hep("star-b", "*", "k=star"), hep("star-a", "*", "k=star"),
			hep("other", "eth9", "k=eth9"),
			hep("lo-dnt", "lo", "k=lo"),
		},
		Policies: []policy.GlobalNetworkPolicy{
			gnp("dnt", "k == 'lo' || k == 'star'", dnt, in(Allow())),
			gnp("pre", "k == 'star' || k == 'ip2'", preDNAT, in(Allow())),
		}}
	prog, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	id := func(name string) policy.EndpointID {
		for _, e := range prog.Endpoints() {
			if e.Name == name {
				return e.ID
			}
		}
		return policy.NoEndpoint
	}
	none := policy.NoEndpoint
	for _, c := range []struct {
		ifc                              policy.Interface
		untracked, preDNAT, filter, fwIn policy.EndpointID
		workload                         bool
	}{
		// expectedIPs match on eth0's address; the alphabetically smallest candidate wins over the interfaceName HEP.
		{policy.Interface{Name: "eth0", Addrs: Addrs("198.18.0.1")}, none, id("a-by-ip"), id("a-by-ip"), id("a-by-ip"), false},
		// Only the named HEP: it has no preDNAT policy, so pre-DNAT falls to the * HEP.
		{policy.Interface{Name: "eth0"}, none, id("star-a"), id("z-eth0"), id("z-eth0"), false},
		// No named HEP: the alphabetically smallest * HEP; DNT never applies to *.
		{policy.Interface{Name: "eth2", Addrs: Addrs("198.18.200.1")}, none, id("star-a"), id("star-a"), id("star-a"), false},
		// lo is ordinary: its named HEP has a DNT policy.
		{policy.Interface{Name: "lo", Addrs: Addrs("127.0.0.1")}, id("lo-dnt"), id("star-a"), id("lo-dnt"), id("lo-dnt"), false},
		// Workload interfaces never get a HEP's normal policy.
		{policy.Interface{Name: "cali123", Addrs: Addrs("198.18.0.1")}, none, id("star-a"), none, id("star-a"), true},
	} {
		b := prog.Bind(c.ifc)
		want := policy.Binding{Untracked: c.untracked, PreDNAT: c.preDNAT, Filter: c.filter, ForwardIn: c.fwIn, Workload: c.workload}
		if b != want {
			t.Errorf("%s: got %+v, want %+v", c.ifc.Name, b, want)
		}
	}
	// expectedIPs compare as addresses, the way Felix compares their
	// canonical strings: no zone, v4-mapped written as IPv4.
	ll := hep("a-link-local", "", "k=ll")
	ll.ExpectedIPs = Addrs("fe80::1", "::ffff:198.18.77.1")
	cfg2 := &policy.Config{Settings: defaults(), HostEndpoints: []policy.HostEndpoint{ll}}
	prog2, _ := policy.Compile(cfg2)
	for _, ifc := range []policy.Interface{
		{Name: "eth5", Addrs: []netip.Addr{netip.MustParseAddr("fe80::1%eth5")}},
		{Name: "eth6", Addrs: Addrs("198.18.77.1")},
	} {
		if b := prog2.Bind(ifc); b.Filter != 0 {
			t.Errorf("%s %v: expectedIPs did not match: %+v", ifc.Name, ifc.Addrs, b)
		}
	}
	// Without a * HEP, an interface with no named HEP is not policed.
	cfg.HostEndpoints = cfg.HostEndpoints[:3]
	prog, _ = policy.Compile(cfg)
	if b := prog.Bind(policy.Interface{Name: "eth2"}); b.Filter != none || b.PreDNAT != none {
		t.Errorf("eth2 without * HEP: %+v", b)
	}
	// Plans: tiers present only with policies, DNT/preDNAT forced Pass, SelectedBy.
	e := prog.Endpoint(id("a-by-ip"))
	if e.Plan(policy.PlanPreDNAT).Empty() || !e.Plan(policy.PlanNormal).Empty() || e.Plan(policy.PlanPreDNAT).Tiers[0].DefaultAction != policy.TierPass {
		t.Errorf("plans of a-by-ip: %+v", e.Plans)
	}
	if got := prog.SelectedBy(1); len(got) != 1 || got[0] != id("a-by-ip") {
		t.Errorf("SelectedBy(pre) = %v", got)
	}
}

// Felix's InterfaceExclude (issue 11 item 5): Felix never tracks an excluded
// interface, so no named endpoint governs it, by interfaceName or by
// expectedIPs, and traffic on it is not policed; a "*" endpoint's catch-all
// dispatch (no interface match) still polices it.
func TestBindInterfaceExclude(t *testing.T) {
	named := hep("h-ipvs", "kube-ipvs0", "k=ipvs")
	byIP := hep("h-ip", "", "k=ip")
	byIP.ExpectedIPs = Addrs("198.18.9.1")
	st := defaults()
	st.InterfaceExclude = []*regexp.Regexp{regexp.MustCompile("^kube-ipvs0$"), regexp.MustCompile("^dummy")}
	cfg := &policy.Config{Settings: st, HostEndpoints: []policy.HostEndpoint{named, byIP},
		Policies: []policy.GlobalNetworkPolicy{gnp("deny", "all()", in(Deny()))}}
	prog, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range []policy.Interface{{Name: "kube-ipvs0"}, {Name: "dummy7", Addrs: Addrs("198.18.9.1")}} {
		if b := prog.Bind(ifc); b != policy.NoBinding() {
			t.Errorf("%s: excluded, got %+v", ifc.Name, b)
		}
		tr := prog.Walk(policy.Path{In: ifc, ToLocal: true}, TCP("198.18.5.5", 1000, "198.18.9.1", 80))
		if tr.Final != policy.None {
			t.Errorf("%s: traffic on an excluded interface: got %s, want NONE", ifc.Name, tr.Final)
		}
	}
	// Not excluded: the expectedIPs endpoint governs.
	if b := prog.Bind(policy.Interface{Name: "eth5", Addrs: Addrs("198.18.9.1")}); b.Filter != 1 {
		t.Errorf("eth5: got %+v", b)
	}
	// A "*" endpoint still catches the excluded interface.
	cfg.HostEndpoints = append(cfg.HostEndpoints, hep("star", "*", "k=star"))
	prog, err = policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if b := prog.Bind(policy.Interface{Name: "kube-ipvs0"}); b.Filter != 2 {
		t.Errorf("kube-ipvs0 with a * endpoint: got %+v", b)
	}
}
