package policy_test

import (
	"math/rand/v2"
	"testing"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/oracle"
	. "github.com/nfgate/nfgate/policy/policytest"
)

// benchConfig is a gateway with a named HEP per side, every kind of policy
// and a few hundred rules with nets, ports and selectors.
func benchConfig() *policy.Config {
	r := rand.New(rand.NewPCG(1, 2))
	cfg := RandConfig(r)
	for i := 0; i < 40; i++ {
		c := RandConfig(rand.New(rand.NewPCG(uint64(i), 3)))
		cfg.Policies = append(cfg.Policies, c.Policies...)
	}
	cfg.HostEndpoints = []policy.HostEndpoint{
		{Name: "gw.eth0", InterfaceName: "eth0", Labels: Labels("a=x"), ExpectedIPs: Addrs("198.18.0.1")},
		{Name: "gw.eth1", InterfaceName: "eth1", Labels: Labels("a=y", "b=x"), ExpectedIPs: Addrs("198.19.0.1"), Profiles: []string{"p1"}},
	}
	return cfg
}

func benchPackets() []classify.Packet {
	r := rand.New(rand.NewPCG(7, 7))
	out := make([]classify.Packet, 256)
	for i := range out {
		out[i] = RandPacketAnyState(r)
		if out[i].CT == classify.CTEstablished {
			out[i].CT = classify.CTNew
		}
	}
	return out
}

type stageFn func(*policy.Program, *classify.Packet) policy.Decision

var stages = map[string]stageFn{
	"Untracked":    func(p *policy.Program, k *classify.Packet) policy.Decision { return p.Untracked(0, policy.Ingress, k) },
	"UntrackedOut": func(p *policy.Program, k *classify.Packet) policy.Decision { return p.Untracked(0, policy.Egress, k) },
	"PreDNAT":      func(p *policy.Program, k *classify.Packet) policy.Decision { return p.PreDNAT(0, k) },
	"Input":        func(p *policy.Program, k *classify.Packet) policy.Decision { return p.Local(1, policy.Ingress, k) },
	"Output":       func(p *policy.Program, k *classify.Packet) policy.Decision { return p.Local(1, policy.Egress, k) },
	"Forward":      func(p *policy.Program, k *classify.Packet) policy.Decision { return p.Forward(0, 1, false, k) },
	// after an untracked/preDNAT allow: only the out-endpoint's chain
	"ForwardAccepted": func(p *policy.Program, k *classify.Packet) policy.Decision { return p.Forward(0, 1, true, k) },
}

func TestNoAllocs(t *testing.T) {
	for _, limit := range []int{4096, 1} { // 1: the exact slow matcher for nearly every rule
		restore := policy.SetMaxRectsPerRule(limit)
		prog, err := policy.Compile(benchConfig())
		restore()
		if err != nil {
			t.Fatal(err)
		}
		pkts := benchPackets()
		for name, fn := range stages {
			i := 0
			if n := testing.AllocsPerRun(500, func() { fn(prog, &pkts[i%len(pkts)]); i++ }); n != 0 {
				t.Errorf("%s (rect limit %d) allocates %v per packet", name, limit, n)
			}
		}
		ifc := policy.Interface{Name: "eth5", Addrs: Addrs("198.18.0.1", "2001:db8::1")}
		if n := testing.AllocsPerRun(100, func() { prog.Bind(ifc) }); n != 0 {
			t.Errorf("Bind allocates %v", n)
		}
	}
}

func BenchmarkStages(b *testing.B) {
	prog, err := policy.Compile(benchConfig())
	if err != nil {
		b.Fatal(err)
	}
	orc := oracle.New(prog)
	pkts := benchPackets()
	for name, fn := range stages {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				fn(prog, &pkts[i&255])
			}
		})
	}
	b.Run("Forward/oracle", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			orc.Forward(0, 1, false, &pkts[i&255])
		}
	})
}

func BenchmarkCompile(b *testing.B) {
	cfg := benchConfig()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := policy.Compile(cfg); err != nil {
			b.Fatal(err)
		}
	}
}
