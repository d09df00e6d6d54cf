package policy_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	. "github.com/nfgate/nfgate/policy/policytest"
)

// The gateway used by every scenario: eth0 (outside), eth1 (inside), eth2
// (no endpoint unless a "*" HEP exists), lo.
var ifaces = map[string]policy.Interface{
	"eth0":  {Name: "eth0", Addrs: Addrs("198.18.0.1", "2001:db8::1")},
	"eth1":  {Name: "eth1", Addrs: Addrs("198.19.0.1", "2001:db8:1::1")},
	"eth2":  {Name: "eth2", Addrs: Addrs("198.18.200.1")},
	"lo":    {Name: "lo", Addrs: Addrs("127.0.0.1", "::1")},
	"cali1": {Name: "cali1"},
}

// path shorthands: "eth0>eth1" forwarded, "eth0>local" delivered, "local>eth1" originated, "local>local" via lo.
func path(s string) policy.Path {
	var in, out string
	fmt.Sscanf(s, "%s", &s)
	for i := range s {
		if s[i] == '>' {
			in, out = s[:i], s[i+1:]
		}
	}
	p := policy.Path{}
	switch {
	case in == "local" && out == "local":
		p.FromLocal, p.ToLocal, p.In, p.Out = true, true, ifaces["lo"], ifaces["lo"]
	case in == "local":
		p.FromLocal, p.Out = true, ifaces[out]
	case out == "local":
		p.ToLocal, p.In = true, ifaces[in]
	default:
		p.In, p.Out = ifaces[in], ifaces[out]
	}
	return p
}

type walkCase struct {
	path string
	pkt  classify.Packet
	want string // "FINAL stage/reason [policy]"
}

// summary renders a trace as "FINAL stage/reason [policy]" of its last stage.
func summary(prog *policy.Program, t policy.Trace) string {
	last := t.Stages[len(t.Stages)-1]
	d := prog.Describe(last.Decision)
	s := fmt.Sprintf("%s %s/%s", t.Final, last.Stage, d.Reason)
	if d.Policy != "" {
		s += " " + d.Policy
	}
	return s
}

func runWalks(t *testing.T, cfg *policy.Config, cases []walkCase) {
	t.Helper()
	prog, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		p := path(c.path)
		tr := prog.Walk(p, c.pkt)
		if got := summary(prog, tr); got != c.want {
			t.Errorf("case %d %s %v: got %q, want %q", i, c.path, fmtPkt(c.pkt), got, c.want)
			for _, s := range tr.Stages {
				t.Logf("  %s on %s: %s", s.Stage, s.Interface, prog.Describe(s.Decision))
			}
		}
	}
}

func fmtPkt(p classify.Packet) string {
	return fmt.Sprintf("%d %s:%d->%s:%d icmp %d/%d ct=%s", p.Proto, p.Src, p.SrcPort, p.Dst, p.DstPort, p.ICMPType, p.ICMPCode, p.CT)
}

func hep(name, iface string, labels ...string) policy.HostEndpoint {
	return policy.HostEndpoint{Name: name, InterfaceName: iface, Labels: Labels(labels...)}
}

func gnp(name, sel string, mods ...func(*policy.GlobalNetworkPolicy)) policy.GlobalNetworkPolicy {
	p := policy.GlobalNetworkPolicy{Name: name, Selector: Sel(sel)}
	for _, m := range mods {
		m(&p)
	}
	if len(p.Types) == 0 {
		// API defaulting (spec §1.2)
		switch {
		case len(p.Egress) > 0 && len(p.Ingress) > 0:
			p.Types = []policy.PolicyType{policy.Ingress, policy.Egress}
		case len(p.Egress) > 0:
			p.Types = []policy.PolicyType{policy.Egress}
		default:
			p.Types = []policy.PolicyType{policy.Ingress}
		}
	}
	return p
}

func in(rules ...policy.Rule) func(*policy.GlobalNetworkPolicy) {
	return func(p *policy.GlobalNetworkPolicy) { p.Ingress = append(p.Ingress, rules...) }
}
func out(rules ...policy.Rule) func(*policy.GlobalNetworkPolicy) {
	return func(p *policy.GlobalNetworkPolicy) { p.Egress = append(p.Egress, rules...) }
}
func types(ts ...policy.PolicyType) func(*policy.GlobalNetworkPolicy) {
	return func(p *policy.GlobalNetworkPolicy) { p.Types = ts }
}
func order(o float64) func(*policy.GlobalNetworkPolicy) {
	return func(p *policy.GlobalNetworkPolicy) { p.Order = Order(o) }
}
func tier(n string) func(*policy.GlobalNetworkPolicy) {
	return func(p *policy.GlobalNetworkPolicy) { p.Tier = n }
}

var (
	aof     = func(p *policy.GlobalNetworkPolicy) { p.ApplyOnForward = true }
	preDNAT = func(p *policy.GlobalNetworkPolicy) { p.ApplyOnForward, p.PreDNAT = true, true }
	dnt     = func(p *policy.GlobalNetworkPolicy) { p.ApplyOnForward, p.DoNotTrack = true, true }
)

func defaults() policy.Settings {
	return policy.Settings{
		NodeName:         "gw",
		InterfacePrefix:  []string{"cali"},
		FailsafeInbound:  policy.DefaultFailsafeInbound(),
		FailsafeOutbound: policy.DefaultFailsafeOutbound(),
	}
}

func noFailsafes() policy.Settings {
	s := defaults()
	s.FailsafeInbound, s.FailsafeOutbound = nil, nil
	return s
}

// The forwarded-traffic guide's default-action table, one row per line.
func TestDefaultActionTable(t *testing.T) {
	eth1 := hep("gw.eth1", "eth1", "network=maintenance")
	local := gnp("local-allow-http", "all()", in(Allow(P("TCP"), DstPorts("80"))))
	fwdEgress := gnp("fwd-egress-ssh", "all()", aof, out(Allow(P("TCP"), DstPorts("22"))))
	cfg := func(heps []policy.HostEndpoint, pols ...policy.GlobalNetworkPolicy) *policy.Config {
		return &policy.Config{Settings: noFailsafes(), HostEndpoints: heps, Policies: pols}
	}
	fwd := TCP("198.18.5.5", 40000, "198.19.5.5", 443)
	loc := TCP("198.19.5.5", 40000, "198.19.0.1", 443)
	for _, row := range []struct {
		name string
		cfg  *policy.Config
		path string
		pkt  classify.Packet
		want string
	}{
		{"no HEP, forwarded: allow (not policed)", cfg(nil), "eth0>eth1", fwd, "NONE forward/not-policed"},
		{"no HEP, local: allow (not policed)", cfg(nil), "eth1>local", loc, "NONE input/not-policed"},
		{"HEP, forwarded, no AoF policy, no policy: allow", cfg([]policy.HostEndpoint{eth1}), "eth0>eth1", fwd, "ACCEPT forward/default-allow-forward"},
		{"HEP, forwarded, no AoF policy, some policy: allow", cfg([]policy.HostEndpoint{eth1}, local), "eth0>eth1", fwd, "ACCEPT forward/default-allow-forward"},
		{"HEP, forwarded, AoF policy: deny", cfg([]policy.HostEndpoint{eth1}, fwdEgress), "eth0>eth1", fwd, "DROP forward/end-of-tier"},
		{"HEP, local, no policy: deny", cfg([]policy.HostEndpoint{eth1}), "eth1>local", loc, "DROP input/no-profile"},
		{"HEP, local, policy: deny", cfg([]policy.HostEndpoint{eth1}, local), "eth1>local", loc, "DROP input/end-of-tier"},
		{"HEP, local, AoF policy only egress: ingress still denied", cfg([]policy.HostEndpoint{eth1}, fwdEgress), "eth1>local", loc, "DROP input/no-profile"},
	} {
		prog, err := policy.Compile(row.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := summary(prog, prog.Walk(path(row.path), row.pkt)); got != row.want {
			t.Errorf("%s: got %q, want %q", row.name, got, row.want)
		}
	}
}

// Forwarded-traffic guide tutorial: SSH forwarded to the maintenance network
// is allowed, everything else forwarded to it is dropped.
func TestForwardedSSHToMaintenance(t *testing.T) {
	h := hep("myhost.eth1", "eth1", "network=maintenance")
	h.ExpectedIPs = Addrs("198.19.0.1")
	cfg := &policy.Config{Settings: defaults(), HostEndpoints: []policy.HostEndpoint{h}, Policies: []policy.GlobalNetworkPolicy{
		gnp("allow-ssh-maintenance", "network == 'maintenance'", aof, types(policy.Egress), out(Allow(P("TCP"), DstPorts("22")))),
	}}
	runWalks(t, cfg, []walkCase{
		{"eth0>eth1", TCP("198.18.5.5", 40000, "198.19.7.7", 22), "ACCEPT forward/rule allow-ssh-maintenance"},
		{"eth0>eth1", TCP("198.18.5.5", 40000, "198.19.7.7", 80), "DROP forward/end-of-tier"},
		{"eth0>eth1", UDP("198.18.5.5", 40000, "198.19.7.7", 22), "DROP forward/end-of-tier"},
		{"eth0>eth1", ICMP("198.18.5.5", "198.19.7.7", 8, 0), "DROP forward/end-of-tier"},
		{"eth0>eth1", CT(TCP("198.18.5.5", 40000, "198.19.7.7", 80), classify.CTEstablished), "ACCEPT forward/conntrack"},
		{"eth0>eth1", CT(TCP("198.18.5.5", 40000, "198.19.7.7", 80), classify.CTInvalid), "DROP forward/conntrack"},
		// The uncovered direction: eth1 has AoF policy only for egress, so
		// its ingress returns NONE (code, spec §10.2); eth2 has no HEP.
		{"eth1>eth2", TCP("198.19.7.7", 40000, "198.18.5.5", 80), "NONE forward/no-match"},
		{"eth0>eth2", TCP("198.18.5.5", 40000, "198.18.200.9", 80), "NONE forward/not-policed"},
		// Forwarded traffic gets no failsafes.
		{"eth0>eth1", TCP("198.18.5.5", 40000, "198.19.7.7", 6443), "DROP forward/end-of-tier"},
		// Local traffic: eth1 has no ingress policy: profiles, then drop; failsafes open.
		{"eth1>local", TCP("198.19.7.7", 40000, "198.19.0.1", 80), "DROP input/no-profile"},
		{"eth1>local", TCP("198.19.7.7", 40000, "198.19.0.1", 22), "ACCEPT input/failsafe"},
		{"local>eth1", TCP("198.19.0.1", 40000, "198.19.7.7", 22), "ACCEPT output/rule allow-ssh-maintenance"},
		{"local>eth1", UDP("198.19.0.1", 40000, "198.19.7.7", 53), "ACCEPT output/failsafe"},
		{"local>eth1", TCP("198.19.0.1", 40000, "198.19.7.7", 80), "DROP output/end-of-tier"},
	})
}

// Protect-hosts guide: a k8s worker allows SSH only from the management
// net, ICMP, kubelet 10250; egress to etcd and DNS/DHCP.
func TestK8sWorkerHostProtection(t *testing.T) {
	h := hep("my-host-eth0", "eth0", "role=k8s-worker", "environment=production")
	h.ExpectedIPs = Addrs("198.18.0.1")
	pol := gnp("k8s-worker", "role == 'k8s-worker'", order(0),
		in(Allow(P("TCP"), SrcNets("198.18.100.0/24"), DstPorts("22")),
			Allow(P("ICMP")),
			Allow(P("TCP"), DstPorts("10250"))),
		out(Allow(P("TCP"), DstNets("198.18.50.5/32"), DstPorts("2379")),
			Allow(P("UDP"), DstPorts("53", "67"))))
	cases := []walkCase{
		{"eth0>local", TCP("198.18.100.7", 40000, "198.18.0.1", 22), "ACCEPT input/rule k8s-worker"},
		{"eth0>local", ICMP("198.18.9.9", "198.18.0.1", 8, 0), "ACCEPT input/rule k8s-worker"},
		{"eth0>local", TCP("198.18.9.9", 40000, "198.18.0.1", 10250), "ACCEPT input/rule k8s-worker"},
		{"eth0>local", TCP("198.18.9.9", 40000, "198.18.0.1", 10255), "DROP input/end-of-tier"},
		{"eth0>local", UDP("198.18.9.9", 40000, "198.18.0.1", 10250), "DROP input/end-of-tier"},
		// ICMP named protocol is IPv4 only: ICMPv6 does not match.
		{"eth0>local", ICMP("2001:db8::9", "2001:db8::1", 128, 0), "DROP input/end-of-tier"},
		{"local>eth0", TCP("198.18.0.1", 40000, "198.18.50.5", 2379), "ACCEPT output/rule k8s-worker"},
		{"local>eth0", TCP("198.18.0.1", 40000, "198.18.50.6", 2379), "DROP output/end-of-tier"},
		{"local>eth0", UDP("198.18.0.1", 40000, "198.18.53.53", 67), "ACCEPT output/rule k8s-worker"},
		{"local>eth0", TCP("198.18.0.1", 40000, "198.18.53.53", 53), "DROP output/end-of-tier"},
		// Replies of allowed flows.
		{"eth0>local", CT(TCP("198.18.50.5", 2379, "198.18.0.1", 40000), classify.CTEstablished), "ACCEPT input/conntrack"},
	}
	t.Run("no failsafes", func(t *testing.T) {
		cfg := &policy.Config{Settings: noFailsafes(), HostEndpoints: []policy.HostEndpoint{h}, Policies: []policy.GlobalNetworkPolicy{pol}}
		runWalks(t, cfg, append(cases,
			walkCase{"eth0>local", TCP("198.18.9.9", 40000, "198.18.0.1", 22), "DROP input/end-of-tier"}))
	})
	t.Run("default failsafes beat the policy for local traffic", func(t *testing.T) {
		deny := gnp("deny-ssh", "all()", order(-1), in(Deny(P("TCP"), DstPorts("22"))))
		cfg := &policy.Config{Settings: defaults(), HostEndpoints: []policy.HostEndpoint{h}, Policies: []policy.GlobalNetworkPolicy{pol, deny}}
		runWalks(t, cfg, []walkCase{
			{"eth0>local", TCP("198.18.9.9", 40000, "198.18.0.1", 22), "ACCEPT input/failsafe"},
			{"eth0>local", CT(TCP("198.18.9.9", 40000, "198.18.0.1", 22), classify.CTInvalid), "DROP input/conntrack"},
		})
	})
}

// Failsafes beat a Deny for local traffic but not for forwarded traffic.
func TestFailsafesLocalNotForwarded(t *testing.T) {
	cfg := &policy.Config{Settings: defaults(),
		HostEndpoints: []policy.HostEndpoint{hep("gw.eth0", "eth0"), hep("gw.eth1", "eth1")},
		Policies: []policy.GlobalNetworkPolicy{
			gnp("deny-all", "all()", aof, in(Deny()), out(Deny())),
		}}
	runWalks(t, cfg, []walkCase{
		{"eth0>local", TCP("198.18.9.9", 40000, "198.18.0.1", 22), "ACCEPT input/failsafe"},
		{"eth0>local", TCP("198.18.9.9", 40000, "198.18.0.1", 23), "DROP input/rule deny-all"},
		{"local>eth0", UDP("198.18.0.1", 40000, "198.18.9.9", 53), "ACCEPT output/failsafe"},
		{"eth0>eth1", TCP("198.18.9.9", 40000, "198.19.9.9", 22), "DROP forward/rule deny-all"},
	})
}

// Pre-DNAT guide: cluster-internal sources allowed, everything else needs an
// explicit deny (pre-DNAT has no default drop); pinholes match the pre-DNAT port.
func TestPreDNAT(t *testing.T) {
	heps := []policy.HostEndpoint{hep("gw.eth0", "eth0", "host-endpoint=eth0"), hep("gw.eth1", "eth1", "host-endpoint=eth1")}
	allowInternal := gnp("allow-cluster-internal-ingress", "has(host-endpoint)", order(10), preDNAT,
		in(Allow(SrcNets("198.19.0.0/16", "198.18.128.0/17"))))
	dropOther := gnp("drop-other-ingress", "has(host-endpoint)", order(20), preDNAT, in(Deny()))
	nodePort := gnp("allow-nodeport", "has(host-endpoint)", order(15), preDNAT, in(Allow(P("TCP"), DstPorts("32010"))))
	allowFwd := gnp("allow-forward", "all()", aof, in(Allow()), out(Allow()))

	t.Run("allow internal only", func(t *testing.T) {
		cfg := &policy.Config{Settings: noFailsafes(), HostEndpoints: heps, Policies: []policy.GlobalNetworkPolicy{allowInternal}}
		runWalks(t, cfg, []walkCase{
			// Without the explicit deny, external traffic is not stopped by pre-DNAT...
			{"eth0>eth1", TCP("198.18.9.9", 40000, "198.19.9.9", 80), "ACCEPT forward/default-allow-forward"},
			// ...and allowed traffic skips normal ingress policy.
			{"eth1>local", TCP("198.19.9.9", 40000, "198.19.0.1", 80), "ACCEPT input/earlier-stage"},
			{"eth0>local", TCP("198.18.9.9", 40000, "198.18.0.1", 80), "DROP input/no-profile"},
		})
	})
	t.Run("allow internal, drop others", func(t *testing.T) {
		cfg := &policy.Config{Settings: defaults(), HostEndpoints: heps, Policies: []policy.GlobalNetworkPolicy{dropOther, allowInternal}}
		runWalks(t, cfg, []walkCase{
			{"eth0>eth1", TCP("198.18.9.9", 40000, "198.19.9.9", 80), "DROP preDNAT/rule drop-other-ingress"},
			{"eth0>eth1", TCP("198.18.200.9", 40000, "198.19.9.9", 80), "ACCEPT forward/default-allow-forward"},
			// Replies are ESTABLISHED: pre-DNAT does not evaluate them.
			{"eth0>eth1", CT(TCP("198.18.9.9", 80, "198.19.9.9", 40000), classify.CTEstablished), "ACCEPT forward/conntrack"},
			// Failsafe ports pass a pre-DNAT deny-all, also when forwarded (spec §4).
			{"eth0>eth1", TCP("198.18.9.9", 40000, "198.19.9.9", 22), "ACCEPT forward/default-allow-forward"},
			// A pre-DNAT failsafe accept sets no accept-mark: normal policy still runs.
			{"eth0>local", TCP("198.18.9.9", 40000, "198.18.0.1", 22), "ACCEPT input/failsafe"},
		})
	})
	t.Run("NodePort pinhole matches the pre-DNAT port", func(t *testing.T) {
		cfg := &policy.Config{Settings: noFailsafes(), HostEndpoints: heps, Policies: []policy.GlobalNetworkPolicy{dropOther, allowInternal, nodePort, allowFwd}}
		prog, _ := policy.Compile(cfg)
		p := path("eth0>eth1")
		p.DNATAddr, p.DNATPort = netip.MustParseAddr("198.19.8.8"), 8055
		tr := prog.Walk(p, TCP("198.18.9.9", 40000, "198.18.0.1", 32010))
		// The pre-DNAT allow skips eth0's AoF ingress; eth1's AoF egress still decides (spec §10.1).
		if got := summary(prog, tr); got != "ACCEPT forward/rule allow-forward" {
			t.Errorf("nodeport 32010: got %q", got)
		}
		if tr.Stages[len(tr.Stages)-1].Packet.DstPort != 8055 {
			t.Errorf("forward stage did not see the DNAT'd port")
		}
		tr = prog.Walk(p, TCP("198.18.9.9", 40000, "198.18.0.1", 8055))
		if got := summary(prog, tr); got != "DROP preDNAT/rule drop-other-ingress" {
			t.Errorf("post-DNAT port 8055: got %q", got)
		}
	})
}

// A "*" endpoint polices local traffic (via lo) to a DNAT'd address.
func TestWildcardPolicesLocalDNAT(t *testing.T) {
	cfg := &policy.Config{Settings: noFailsafes(),
		HostEndpoints: []policy.HostEndpoint{hep("gw.all", "*", "all=true"), hep("zz.all", "*")},
		Policies: []policy.GlobalNetworkPolicy{
			gnp("allow-web", "all == 'true'", in(Allow(P("TCP"), DstPorts("8080"))), out(Allow(P("TCP"), DstPorts("8080")))),
		}}
	prog, _ := policy.Compile(cfg)
	if w := prog.Wildcard(); prog.Endpoint(w).Name != "gw.all" {
		t.Fatalf("wildcard = %v, want gw.all (alphabetically smallest)", w)
	}
	p := path("local>local")
	p.DNATAddr, p.DNATPort = netip.MustParseAddr("127.0.0.1"), 8080
	// The output stage is mangle POSTROUTING (DNAT'd): its Allow is NONE.
	if got := summary(prog, prog.Walk(p, TCP("127.0.0.1", 40000, "198.18.0.1", 80))); got != "NONE input/rule allow-web" {
		t.Errorf("DNAT'd to 8080: got %q", got)
	}
	p.DNATPort = 9090
	if got := summary(prog, prog.Walk(p, TCP("127.0.0.1", 40000, "198.18.0.1", 80))); got != "DROP output/end-of-tier" {
		t.Errorf("DNAT'd to 9090: got %q", got)
	}
	runWalks(t, cfg, []walkCase{
		{"eth2>local", TCP("198.18.9.9", 40000, "198.18.200.1", 8080), "ACCEPT input/rule allow-web"},
		{"eth2>local", TCP("198.18.9.9", 40000, "198.18.200.1", 22), "DROP input/end-of-tier"},
	})
}

// Pass, Log, tiers, the order tie-break and profiles.
func TestOrderingPassLogProfiles(t *testing.T) {
	pkt := TCP("198.18.9.9", 40000, "198.18.0.1", 80)
	h := hep("gw.eth0", "eth0")
	h.Profiles = []string{"p1", "p2"}
	base := func(pols ...policy.GlobalNetworkPolicy) *policy.Config {
		return &policy.Config{Settings: noFailsafes(), HostEndpoints: []policy.HostEndpoint{h}, Policies: pols,
			Tiers: []policy.Tier{{Name: "security", Order: Order(100)}, {Name: "platform", Order: Order(200), DefaultAction: policy.TierPass}},
			Profiles: []policy.Profile{
				{Name: "p1", Ingress: []policy.Rule{Pass(P("TCP"), DstPorts("80")), Deny(P("UDP"))}},
				{Name: "p2", Ingress: []policy.Rule{Allow(P("TCP"))}},
			}}
	}
	for _, c := range []struct {
		name string
		cfg  *policy.Config
		want string
	}{
		{"'a-b' sorts before 'a' (name/namespace/kind key)", base(gnp("a", "all()", in(Deny())), gnp("a-b", "all()", in(Allow()))), "ACCEPT input/rule a-b"},
		{"'a.b' sorts before 'a'", base(gnp("a", "all()", in(Allow())), gnp("a.b", "all()", in(Deny()))), "DROP input/rule a.b"},
		{"lower order first", base(gnp("a", "all()", order(2), in(Allow())), gnp("b", "all()", order(1), in(Deny()))), "DROP input/rule b"},
		{"nil order last", base(gnp("a", "all()", in(Allow())), gnp("b", "all()", order(1e9), in(Deny()))), "DROP input/rule b"},
		{"tier order beats policy order", base(gnp("a", "all()", order(1), in(Allow())), gnp("b", "all()", tier("security"), order(50), in(Deny()))), "DROP input/rule b"},
		{"Pass skips rest of tier, continues with next tier", base(gnp("a", "all()", tier("security"), in(Pass())), gnp("b", "all()", tier("security"), in(Deny())), gnp("c", "all()", in(Allow()))), "ACCEPT input/rule c"},
		{"Pass in last tier goes to profiles", base(gnp("a", "all()", in(Pass()))), "ACCEPT input/profile p2"},
		{"end-of-tier drop without match", base(gnp("a", "all()", tier("security"), in(Allow(P("UDP")))), gnp("c", "all()", in(Allow()))), "DROP input/end-of-tier"},
		{"tier defaultAction Pass falls through", base(gnp("a", "all()", tier("platform"), in(Allow(P("UDP")))), gnp("c", "all()", in(Allow()))), "ACCEPT input/rule c"},
		{"empty policy arms end-of-tier", base(gnp("a", "all()", types(policy.Ingress))), "DROP input/end-of-tier"},
		{"policy of other direction only: straight to profiles", base(gnp("a", "all()", out(Deny()))), "ACCEPT input/profile p2"},
	} {
		prog, _ := policy.Compile(c.cfg)
		if got := summary(prog, prog.Walk(path("eth0>local"), pkt)); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	// Log continues and marks the decision.
	prog, _ := policy.Compile(base(gnp("a", "all()", in(Log(P("TCP")), Allow()))))
	tr := prog.Walk(path("eth0>local"), pkt)
	if d := tr.Stages[len(tr.Stages)-1].Decision; d.Verdict != policy.Accept || !d.Logged || d.Rule != 1 {
		t.Errorf("log then allow: %+v", d)
	}
	// A Log rule skipped by Pass does not log.
	prog, _ = policy.Compile(base(gnp("a", "all()", in(Pass(), Log())), gnp("z", "all()", tier("security"), in(Pass()))))
	tr = prog.Walk(path("eth0>local"), pkt)
	if d := tr.Stages[len(tr.Stages)-1].Decision; d.Logged {
		t.Errorf("log after pass logged: %+v", d)
	}
	// Profile order and labels: HEP labels include profiles' labelsToApply, own wins.
	cfg := base(gnp("sel", "env == 'prod' && team == 'net'", in(Deny())))
	cfg.Profiles[0].LabelsToApply = Labels("env=prod", "team=ops")
	cfg.HostEndpoints[0].Labels = Labels("team=net")
	prog, _ = policy.Compile(cfg)
	if got := summary(prog, prog.Walk(path("eth0>local"), pkt)); got != "DROP input/rule sel" {
		t.Errorf("inherited labels: got %q", got)
	}
}

// Spec §10: where code and docs disagree, code wins.
func TestCodeVersusDocs(t *testing.T) {
	heps := []policy.HostEndpoint{hep("gw.eth0", "eth0", "side=out"), hep("gw.eth1", "eth1", "side=in")}
	pre := gnp("pre-allow", "side == 'out'", preDNAT, in(Allow()))
	egressDeny := gnp("eth1-egress", "side == 'in'", aof, out(Deny(P("TCP"), DstPorts("80")), Allow()))
	cfg := &policy.Config{Settings: noFailsafes(), HostEndpoints: heps, Policies: []policy.GlobalNetworkPolicy{pre, egressDeny}}
	runWalks(t, cfg, []walkCase{
		// §10.1: the out-HEP's AoF egress still decides after a pre-DNAT allow.
		{"eth0>eth1", TCP("198.18.9.9", 40000, "198.19.9.9", 80), "DROP forward/rule eth1-egress"},
		{"eth0>eth1", TCP("198.18.9.9", 40000, "198.19.9.9", 443), "ACCEPT forward/rule eth1-egress"},
		// §10.2: eth1 has AoF egress only: its ingress direction is NONE, not allow.
		{"eth1>eth2", TCP("198.19.9.9", 40000, "198.18.200.9", 443), "NONE forward/no-match"},
		// ...and an out-HEP with no AoF policy at all allows by default.
		{"eth1>eth0", TCP("198.19.9.9", 40000, "198.18.9.9", 443), "ACCEPT forward/default-allow-forward"},
	})
}

// IPv6: nets of the other family never match, even negated; ICMP/ICMPv6 inference.
func TestIPv6Family(t *testing.T) {
	h := hep("gw.eth0", "eth0")
	mk := func(r policy.Rule) *policy.Config {
		return &policy.Config{Settings: noFailsafes(), HostEndpoints: []policy.HostEndpoint{h},
			Policies: []policy.GlobalNetworkPolicy{gnp("p", "all()", in(r))}}
	}
	v6 := TCP("2001:db8::9", 40000, "2001:db8::1", 80)
	v4 := TCP("198.18.9.9", 40000, "198.18.0.1", 80)
	for _, c := range []struct {
		name string
		rule policy.Rule
		pkt  classify.Packet
		want string
	}{
		{"v4 nets, v6 packet", Allow(SrcNets("198.18.0.0/15")), v6, "DROP input/end-of-tier"},
		{"v4 notNets, v6 packet: rule not rendered for v6", Allow(SrcNotNets("10.0.0.0/8")), v6, "DROP input/end-of-tier"},
		{"v4 notNets, v4 packet outside", Allow(SrcNotNets("10.0.0.0/8")), v4, "ACCEPT input/rule p"},
		{"v6 nets, v6 packet", Allow(SrcNets("2001:db8::/32")), v6, "ACCEPT input/rule p"},
		{"v6 notNets, v4 packet", Allow(DstNotNets("2001:db8:ff::/48")), v4, "DROP input/end-of-tier"},
		{"no nets: both families", Allow(P("TCP")), v6, "ACCEPT input/rule p"},
		{"ipVersion 4 skips v6", Allow(IPv(4)), v6, "DROP input/end-of-tier"},
		{"ICMPv6 name implies v6", Allow(P("ICMPv6")), ICMP("2001:db8::9", "2001:db8::1", 128, 0), "ACCEPT input/rule p"},
		{"numeric 58 has no inference", Allow(P("58")), ICMP("2001:db8::9", "2001:db8::1", 128, 0), "ACCEPT input/rule p"},
		{"icmp type/code", Allow(P("ICMPv6"), ICMPTypeCode(128, 0)), ICMP("2001:db8::9", "2001:db8::1", 128, 0), "ACCEPT input/rule p"},
		{"icmp other code", Allow(P("ICMPv6"), ICMPTypeCode(128, 1)), ICMP("2001:db8::9", "2001:db8::1", 128, 0), "DROP input/end-of-tier"},
		{"notICMP matches other types", Allow(P("ICMP"), NotICMPType(8)), ICMP("198.18.9.9", "198.18.0.1", 0, 0), "ACCEPT input/rule p"},
		{"notICMP excludes its type", Allow(P("ICMP"), NotICMPType(8)), ICMP("198.18.9.9", "198.18.0.1", 8, 0), "DROP input/end-of-tier"},
		{"notICMP never matches non-ICMP", Allow(NotICMPType(8)), v4, "DROP input/end-of-tier"},
		{"notProtocol", Allow(NotP("UDP")), v4, "ACCEPT input/rule p"},
		{"notProtocol excludes", Allow(NotP("TCP")), v4, "DROP input/end-of-tier"},
		{"notPorts", Allow(P("TCP"), DstNotPorts("1:79")), v4, "ACCEPT input/rule p"},
		{"notPorts excludes", Allow(P("TCP"), DstNotPorts("80:90")), v4, "DROP input/end-of-tier"},
		{"source port range", Allow(P("TCP"), SrcPorts("30000:50000")), v4, "ACCEPT input/rule p"},
	} {
		prog, _ := policy.Compile(mk(c.rule))
		if got := summary(prog, prog.Walk(path("eth0>local"), c.pkt)); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// Selectors in rules match endpoint expectedIPs and network-set nets.
func TestRuleSelectors(t *testing.T) {
	h0 := hep("gw.eth0", "eth0", "zone=outside")
	h0.ExpectedIPs = Addrs("198.18.0.1")
	h1 := hep("gw.eth1", "eth1", "zone=inside")
	h1.ExpectedIPs = Addrs("198.19.0.1")
	h1.Ports = []policy.EndpointPort{{Name: "web", Protocol: 6, Port: 8443}}
	sets := []policy.GlobalNetworkSet{
		{Name: "bad", Labels: Labels("list=bad", "zone=outside"), Nets: Nets("198.18.66.0/24")},
		{Name: "partners", Labels: Labels("list=partners"), Nets: Nets("198.18.77.0/24", "2001:db8:77::/48")},
	}
	remote := hep("other.eth0", "eth0", "zone=remote")
	remote.Node, remote.ExpectedIPs = "other", Addrs("198.18.44.4")
	remote.Ports = []policy.EndpointPort{{Name: "web", Protocol: 6, Port: 9443}}
	mk := func(r policy.Rule) *policy.Config {
		return &policy.Config{Settings: noFailsafes(), HostEndpoints: []policy.HostEndpoint{h0, h1}, NetworkSets: sets,
			RemoteHostEndpoints: []policy.HostEndpoint{remote},
			Policies:            []policy.GlobalNetworkPolicy{gnp("p", "all()", in(r))}}
	}
	for _, c := range []struct {
		name string
		rule policy.Rule
		pkt  classify.Packet
		want string
	}{
		{"selector matches a network set", Allow(SrcSel("list == 'partners'")), TCP("198.18.77.5", 1, "198.18.0.1", 80), "ACCEPT input/rule p"},
		{"selector v6 net", Allow(SrcSel("list == 'partners'")), TCP("2001:db8:77::5", 1, "2001:db8::1", 80), "ACCEPT input/rule p"},
		{"selector misses unknown address", Allow(SrcSel("list == 'partners'")), TCP("198.18.78.5", 1, "198.18.0.1", 80), "DROP input/end-of-tier"},
		{"all() is every known address, not any", Allow(SrcSel("all()")), TCP("198.18.78.5", 1, "198.18.0.1", 80), "DROP input/end-of-tier"},
		{"all() includes HEP expectedIPs", Allow(SrcSel("all()")), TCP("198.19.0.1", 1, "198.18.0.1", 80), "ACCEPT input/rule p"},
		{"notSelector matches unknown addresses", Allow(SrcNotSel("list == 'bad'")), TCP("198.18.78.5", 1, "198.18.0.1", 80), "ACCEPT input/rule p"},
		{"notSelector excludes", Allow(SrcNotSel("list == 'bad'")), TCP("198.18.66.5", 1, "198.18.0.1", 80), "DROP input/end-of-tier"},
		{"selector and notSelector are folded over endpoints", Allow(SrcSel("zone == 'outside'"), SrcNotSel("has(list)")), TCP("198.18.0.1", 1, "198.18.0.1", 80), "ACCEPT input/rule p"},
		{"folded selector excludes the set itself", Allow(SrcSel("zone == 'outside'"), SrcNotSel("has(list)")), TCP("198.18.66.1", 1, "198.18.0.1", 80), "DROP input/end-of-tier"},
		{"namespaceSelector global()", Allow(SrcSel("list == 'partners'"), SrcNS("global()")), TCP("198.18.77.5", 1, "198.18.0.1", 80), "ACCEPT input/rule p"},
		{"namespaceSelector all() selects nothing", Allow(SrcSel("list == 'partners'"), SrcNS("all()")), TCP("198.18.77.5", 1, "198.18.0.1", 80), "DROP input/end-of-tier"},
		{"named port", Allow(P("TCP"), DstPorts("web")), TCP("198.18.9.9", 1, "198.19.0.1", 8443), "ACCEPT input/rule p"},
		{"named port other address", Allow(P("TCP"), DstPorts("web")), TCP("198.18.9.9", 1, "198.18.0.1", 8443), "DROP input/end-of-tier"},
		{"named port other protocol", Allow(DstPorts("web")), UDP("198.18.9.9", 1, "198.19.0.1", 8443), "DROP input/end-of-tier"},
		{"named or numeric", Allow(P("TCP"), DstPorts("web", "80")), TCP("198.18.9.9", 1, "198.18.0.1", 80), "ACCEPT input/rule p"},
		{"named port limited by selector", Allow(P("TCP"), DstSel("zone == 'outside'"), DstPorts("web")), TCP("198.18.9.9", 1, "198.19.0.1", 8443), "DROP input/end-of-tier"},
		{"named notPorts", Allow(P("TCP"), DstNotPorts("web")), TCP("198.18.9.9", 1, "198.19.0.1", 8443), "DROP input/end-of-tier"},
		{"selector matches another node's HEP expectedIPs", Allow(SrcSel("zone == 'remote'")), TCP("198.18.44.4", 1, "198.18.0.1", 80), "ACCEPT input/rule p"},
		{"another node's HEP selects only its expectedIPs", Allow(SrcSel("zone == 'remote'")), TCP("198.18.44.5", 1, "198.18.0.1", 80), "DROP input/end-of-tier"},
		{"another node's named port", Allow(P("TCP"), DstPorts("web")), TCP("198.18.9.9", 1, "198.18.44.4", 9443), "ACCEPT input/rule p"},
		{"named notPorts other port", Allow(P("TCP"), DstNotPorts("web")), TCP("198.18.9.9", 1, "198.19.0.1", 8444), "ACCEPT input/rule p"},
	} {
		prog, _ := policy.Compile(mk(c.rule))
		if got := summary(prog, prog.Walk(path("eth0>local"), c.pkt)); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}
