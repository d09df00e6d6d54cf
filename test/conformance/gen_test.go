package conformance

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nfgate/nfgate/policy/config"
)

func TestGenLoads(t *testing.T) {
	bad := 0
	for seed := uint64(1); seed <= 200; seed++ {
		c := Generate(seed, GenOptions{Clean: true})
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "case.yaml"), c.Res.YAML(), 0o644)
		os.WriteFile(filepath.Join(dir, "nfgate.toml"), []byte("include = [\"case.yaml\"]\n[gateway]\nnodeName = \"gw\"\n"), 0o644)
		if _, err := config.Load(filepath.Join(dir, "nfgate.toml")); err != nil {
			bad++
			if bad < 6 {
				t.Errorf("seed %d: %v\n%s", seed, err, c.Res.YAML())
			}
		}
		for _, p := range c.Res.Policies {
			for _, r := range append(append([]Rule{}, p.Spec.Ingress...), p.Spec.Egress...) {
				if r.Protocol != nil && r.NotProtocol != nil {
					t.Errorf("seed %d: %s has a rule with protocol and notProtocol (Felix cannot program it)", seed, p.Name)
				}
			}
		}
		if len(c.Probes) < 20 {
			t.Errorf("seed %d: only %d probes", seed, len(c.Probes))
		}
	}
	t.Logf("%d of 200 rejected", bad)
	for seed := uint64(1); seed <= 400; seed++ {
		for _, p := range Generate(seed, GenOptions{}).Res.Policies {
			for _, r := range append(append([]Rule{}, p.Spec.Ingress...), p.Spec.Egress...) {
				if r.Protocol != nil && r.NotProtocol != nil {
					t.Errorf("seed %d: %s has a rule with protocol and notProtocol (Felix cannot program it)", seed, p.Name)
				}
			}
		}
	}
}

// The 24 seeds of the sample in `make test` put every valid pair of rule
// fields into some rule.
func TestSampleCoversEveryPair(t *testing.T) {
	covered := map[string]bool{}
	for seed := uint64(1); seed <= sampleSeeds; seed++ {
		for _, p := range Generate(seed, GenOptions{}).Pairs {
			covered[p] = true
		}
	}
	for _, p := range atomPairs(false) {
		if !covered[p[0]+"+"+p[1]] {
			t.Errorf("pair %s+%s not covered by seeds 1..%d", p[0], p[1], sampleSeeds)
		}
	}
	t.Logf("%d pairs covered", len(covered))
}
