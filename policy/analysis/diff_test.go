package analysis_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/analysis"
	"github.com/nfgate/nfgate/policy/dtree"
	"github.com/nfgate/nfgate/policy/oracle"
	. "github.com/nfgate/nfgate/policy/policytest"
)

// oracleEval evaluates a stage call on the in-order oracle.
func oracleEval(o *oracle.Oracle, c policy.StageCall, pkt classify.Packet) policy.Decision {
	pkt.CT = c.CT
	switch c.Stage {
	case policy.StageUntracked:
		return o.Untracked(c.Endpoint, c.Dir, &pkt)
	case policy.StagePreDNAT:
		return o.PreDNAT(c.Endpoint, &pkt)
	case policy.StageInput:
		return o.Local(c.Endpoint, policy.Ingress, &pkt)
	case policy.StageOutput:
		return o.Local(c.Endpoint, policy.Egress, &pkt)
	default:
		return o.Forward(c.In, c.Out, c.Accepted, &pkt)
	}
}

// mutate returns a copy of cfg with a few random edits: rules changed,
// dropped, added or swapped, policies reordered, dropped or added,
// failsafes changed.
func mutate(r *rand.Rand, cfg *policy.Config) *policy.Config {
	c := *cfg
	c.Policies = slices.Clone(cfg.Policies)
	for range 1 + r.IntN(3) {
		if len(c.Policies) == 0 {
			c.Policies = append(c.Policies, RandPolicy(r))
			continue
		}
		i := r.IntN(len(c.Policies))
		p := &c.Policies[i]
		p.Ingress, p.Egress = slices.Clone(p.Ingress), slices.Clone(p.Egress)
		rules := &p.Ingress
		if r.IntN(2) == 0 && !p.PreDNAT {
			rules = &p.Egress
		}
		switch r.IntN(10) {
		case 0:
			if len(*rules) > 0 {
				j := r.IntN(len(*rules))
				(*rules)[j].Action = Pick(r, []policy.Action{policy.Allow, policy.Deny, policy.Pass, policy.Log})
			}
		case 1:
			if len(*rules) > 0 {
				*rules = slices.Delete(*rules, 0, 1)
			}
		case 2:
			*rules = slices.Insert(*rules, r.IntN(len(*rules)+1), RandRule(r))
		case 3:
			if len(*rules) > 1 {
				(*rules)[0], (*rules)[1] = (*rules)[1], (*rules)[0]
			}
		case 4:
			p.Order = Order(float64(r.IntN(4)))
		case 5:
			c.Policies = slices.Delete(c.Policies, i, i+1)
		case 6:
			c.Policies = append(c.Policies, RandPolicy(r))
		case 7:
			c.Settings = RandSettings(r)
		case 8:
			p.Tier = Pick(r, []string{"", "t1", "t2"})
		case 9:
			c.Tiers = []policy.Tier{{Name: "t1", Order: Order(float64(r.IntN(3)) * 1e6), DefaultAction: policy.TierDefault(r.IntN(2))}}
		}
	}
	return &c
}

// diffOne checks Diff for one random pair: a packet whose decisions differ
// (by the oracle) lies in a reported region with those decisions, one whose
// decisions agree lies in none, and packets sampled in every region get the
// region's decisions from the oracle.
func diffOne(t *testing.T, seed uint64, packets, samples, maxScopes int) {
	r := rand.New(rand.NewPCG(seed, 0xd1ff))
	a := RandConfig(r)
	b := mutate(r, a)
	if r.IntN(4) == 0 {
		b = RandConfig(r)
		b.HostEndpoints = a.HostEndpoints
	}
	pa, err := policy.Compile(a)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := policy.Compile(b)
	if err != nil {
		t.Fatal(err)
	}
	oa, ob := oracle.New(pa), oracle.New(pb)
	scopes := analysis.Scopes(pa, pb, analysis.Interfaces(a, b))
	if maxScopes == 0 {
		res := analysis.Diff(pa, pb, analysis.Options{})
		if res.Scopes != len(scopes) {
			t.Fatalf("seed %d: %d scopes compared, %d listed", seed, res.Scopes, len(scopes))
		}
		for _, sd := range res.Stages {
			if cs, _ := analysis.Compare(pa, pb, sd.Old, sd.New); !slices.Equal(cs, sd.Changes) {
				t.Fatalf("seed %d: Diff and Compare disagree at %s", seed, sd.Kind)
			}
		}
	} else {
		r.Shuffle(len(scopes), func(i, j int) { scopes[i], scopes[j] = scopes[j], scopes[i] })
		scopes = scopes[:min(maxScopes, len(scopes))]
	}
	for _, s := range scopes {
		changes, complete := analysis.Compare(pa, pb, s.Old, s.New)
		if !complete {
			t.Fatalf("seed %d: incomplete", seed)
		}
		for range packets {
			pkt := RandPacket(r)
			fam, k, _ := policy.KeyOf(&pkt)
			da, db := oracleEval(oa, s.Old, pkt), oracleEval(ob, s.New, pkt)
			var in *analysis.Change
			for i := range changes {
				if changes[i].Box.Fam == fam && changes[i].Box.Contains(&k) {
					if in != nil {
						t.Fatalf("seed %d: regions overlap", seed)
					}
					in = &changes[i]
				}
			}
			switch {
			case !analysis.Same(da, db) && in == nil:
				t.Fatalf("seed %d %s: %v: decisions differ (%+v, %+v) but no region holds it", seed, s.Kind, pkt, da, db)
			case analysis.Same(da, db) && in != nil:
				t.Fatalf("seed %d %s: %v: decisions agree (%+v) but region %s holds it", seed, s.Kind, pkt, da, in.Box)
			case in != nil && (in.Old != da || in.New != db):
				t.Fatalf("seed %d %s: %v: region %s says %+v -> %+v, oracle %+v -> %+v", seed, s.Kind, pkt, in.Box, in.Old, in.New, da, db)
			}
		}
		for _, c := range changes {
			for _, pkt := range samplePackets(r, c.Box, samples) {
				da, db := oracleEval(oa, s.Old, pkt), oracleEval(ob, s.New, pkt)
				if da != c.Old || db != c.New {
					t.Fatalf("seed %d %s: %v in region %s: oracle %+v -> %+v, region says %+v -> %+v", seed, s.Kind, pkt, c.Box, da, db, c.Old, c.New)
				}
			}
		}
	}
}

func TestDiffRandomPairs(t *testing.T) {
	n := 150
	if testing.Short() {
		n = 30
	}
	for seed := range uint64(n) {
		diffOne(t, seed, 80, 10, 0)
	}
}

func FuzzDiff(f *testing.F) {
	for s := range uint64(4) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed uint64) { diffOne(t, seed, 20, 3, 3) })
}

// samplePackets returns up to n packets of box b (corners and random keys).
func samplePackets(r *rand.Rand, b policy.Box, n int) []classify.Packet {
	var parts []dtree.Box
	for _, s := range policy.PacketSpace(b.Fam) {
		x := b.Box
		if x.Intersect(&s.Box) {
			parts = append(parts, x)
		}
	}
	var out []classify.Packet
	for i := 0; i < n && len(parts) > 0; i++ {
		x := parts[r.IntN(len(parts))]
		var k dtree.Key
		vals := make([]dtree.U128, dtree.NumFields)
		for f := range dtree.NumFields {
			lo, hi := x.Field(f)
			switch r.IntN(3) {
			case 0:
				vals[f] = lo
			case 1:
				vals[f] = hi
			default:
				vals[f] = lo
				if hi.Hi == lo.Hi && hi.Lo-lo.Lo < 1<<62 {
					vals[f].Lo += r.Uint64N(hi.Lo - lo.Lo + 1)
				}
			}
		}
		k = dtree.Key{Src: vals[0], Dst: vals[1], Proto: uint32(vals[2].Lo), SPort: uint32(vals[3].Lo), DPort: uint32(vals[4].Lo),
			ICMPType: uint32(vals[5].Lo), ICMPCode: uint32(vals[6].Lo)}
		out = append(out, policy.PacketAt(b.Fam, &k, classify.CTNew))
	}
	return out
}

var _ = fmt.Sprint
