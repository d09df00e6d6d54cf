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
		if len(c.Probes) < 20 {
			t.Errorf("seed %d: only %d probes", seed, len(c.Probes))
		}
	}
	t.Logf("%d of 200 rejected", bad)
}
