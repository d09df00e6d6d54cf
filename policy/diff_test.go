package policy_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/oracle"
	. "github.com/nfgate/nfgate/policy/policytest"
)

// Random small configurations and packets: the compiled Program and the
// in-order oracle must give identical decisions at every stage.

// diffOne compares every stage for one configuration seed and some packets.
func diffOne(t *testing.T, seed uint64, packets int) {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	cfg := RandConfig(r)
	prog, err := policy.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	orc := oracle.New(prog)
	eps := []policy.EndpointID{policy.NoEndpoint}
	for i := range prog.Endpoints() {
		eps = append(eps, policy.EndpointID(i))
	}
	check := func(what string, pkt *classify.Packet, got, want policy.Decision) {
		if got != want {
			t.Fatalf("seed %d: %s %s:\n compiled %+v\n oracle   %+v", seed, what, fmtPkt(*pkt), got, want)
		}
	}
	for i := 0; i < packets; i++ {
		pkt := RandPacketAnyState(r)
		for _, ep := range eps {
			for _, dir := range []policy.Dir{policy.Ingress, policy.Egress} {
				check(fmt.Sprintf("Untracked(%d,%v)", ep, dir), &pkt, prog.Untracked(ep, dir, &pkt), orc.Untracked(ep, dir, &pkt))
				check(fmt.Sprintf("Local(%d,%v)", ep, dir), &pkt, prog.Local(ep, dir, &pkt), orc.Local(ep, dir, &pkt))
			}
			check(fmt.Sprintf("PreDNAT(%d)", ep), &pkt, prog.PreDNAT(ep, &pkt), orc.PreDNAT(ep, &pkt))
			for _, out := range eps {
				for _, acc := range []bool{false, true} {
					check(fmt.Sprintf("Forward(%d,%d,%v)", ep, out, acc), &pkt, prog.Forward(ep, out, acc, &pkt), orc.Forward(ep, out, acc, &pkt))
				}
			}
		}
	}
}

func TestCompiledVsOracleRandom(t *testing.T) {
	n := 400
	if testing.Short() {
		n = 60
	}
	for _, limit := range []int{4096, 1} { // 1: nearly every rule takes the slow path
		restore := policy.SetMaxRectsPerRule(limit)
		for seed := uint64(0); seed < uint64(n); seed++ {
			diffOne(t, seed, 60)
		}
		restore()
	}
}

func FuzzCompiledVsOracle(f *testing.F) {
	for s := uint64(0); s < 8; s++ {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, seed uint64, slow bool) {
		if slow {
			defer policy.SetMaxRectsPerRule(2)()
		}
		diffOne(t, seed, 40)
	})
}
