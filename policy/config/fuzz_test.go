package config

import (
	"os"
	"path/filepath"
	"testing"
)

func addSeeds(f *testing.F, pattern string) {
	files, _ := filepath.Glob(pattern)
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
}

// FuzzLoadTOML: any main TOML file gives a configuration or an error, never a panic.
func FuzzLoadTOML(f *testing.F) {
	addSeeds(f, "../../examples/*/*.toml")
	addSeeds(f, "testdata/broken/*.toml")
	f.Add([]byte("a = [1, [2, {b = \"\"\"x\ny\"\"\"}]]\n[[t]]\n[t.u]\nv = 1979-05-27 07:32:00Z"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := LoadBytes("nfgate.toml", data)
		if l == nil || err == nil && l.Policy == nil {
			t.Fatalf("Load returned %v, %v", l, err)
		}
		if err != nil && len(err.(Errors)) == 0 {
			t.Fatal("empty Errors")
		}
	})
}

// FuzzLoadYAML: any manifest included from a valid main file gives a
// configuration or an error, never a panic.
func FuzzLoadYAML(f *testing.F) {
	addSeeds(f, "../../examples/*/*.yaml")
	addSeeds(f, "testdata/broken/*.yaml")
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("apiVersion: projectcalico.org/v3\nkind: List\nitems: [{kind: Tier, metadata: {name: t}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		src := memSource{"nfgate.toml": []byte(mainIncludeR), "r.yaml": data}
		l, err := load(src, "nfgate.toml")
		if l == nil || err == nil && l.Policy == nil {
			t.Fatalf("load returned %v, %v", l, err)
		}
		if err != nil && len(err.(Errors)) == 0 {
			t.Fatal("empty Errors")
		}
	})
}

const mainIncludeR = "include = [\"r.yaml\"]\n[gateway]\nnodeName = \"gw\"\n"
