package policy_test

import (
	"math/rand/v2"
	"testing"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/oracle"
	. "github.com/nfgate/nfgate/policy/policytest"
)

// slotCall is the stage evaluation whose decision a chain's rule gives.
func slotCall(ep policy.EndpointID, slot policy.ChainSlot) policy.StageCall {
	c := policy.StageCall{Endpoint: ep, In: policy.NoEndpoint, Out: policy.NoEndpoint, CT: classify.CTNew}
	switch slot {
	case policy.SlotUntrackedIn:
		c.Stage, c.Dir = policy.StageUntracked, policy.Ingress
	case policy.SlotUntrackedOut:
		c.Stage, c.Dir = policy.StageUntracked, policy.Egress
	case policy.SlotPreDNAT:
		c.Stage = policy.StagePreDNAT
	case policy.SlotNormalIn:
		c.Stage = policy.StageInput
	case policy.SlotNormalOut:
		c.Stage = policy.StageOutput
	case policy.SlotForwardIn:
		c.Stage, c.In = policy.StageForward, ep
	default:
		c.Stage, c.Out = policy.StageForward, ep
	}
	return c
}

func decides(d policy.Decision, r *policy.ChainRule) bool {
	return d.Policy == r.Policy && d.Rule == r.Rule && d.Dir == r.Dir && (d.Reason == policy.ReasonProfile) == r.Profile &&
		(d.Reason == policy.ReasonRule || d.Reason == policy.ReasonProfile)
}

// TestReachRandom: a rule Reach finds met decides its witness (by the
// oracle), unless a failsafe comes first; a rule it proves unreachable
// decides no packet sampled in its rectangles.
func TestReachRandom(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 40
	}
	for seed := range uint64(n) {
		r := rand.New(rand.NewPCG(seed, 0x7eac))
		cfg := RandConfig(r)
		prog, err := policy.Compile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		orc := oracle.New(prog)
		prog.ReachAll(5000, func(uses []policy.ChainUse, fam uint8, rules []policy.ChainRule, reach []policy.RuleReach) {
			for i := range rules {
				ru, rr := &rules[i], reach[i]
				if ru.EndOfTier || ru.Action == policy.Pass || !ru.Exact {
					continue
				}
				for _, u := range uses {
					c := slotCall(u.Endpoint, u.Slot)
					if rr.Met {
						pkt := policy.PacketAt(fam, &rr.Witness, classify.CTNew)
						d := oracleEval(orc, c, pkt)
						if !decides(d, ru) && d.Reason != policy.ReasonFailsafe {
							t.Fatalf("seed %d: rule %+v met at %s, but the oracle says %+v", seed, ru, fmtPkt(pkt), d)
						}
						continue
					}
					if !rr.Complete {
						continue
					}
					for _, b := range ru.Boxes {
						k := b.Low()
						for _, pkt := range samplePackets(r, policy.Box{Fam: fam, Box: b}, &k, classify.CTNew, 20) {
							if d := oracleEval(orc, c, pkt); decides(d, ru) {
								t.Fatalf("seed %d: rule %+v unreachable, but the oracle decides %s by it", seed, ru, fmtPkt(pkt))
							}
						}
					}
				}
			}
		})
	}
}
