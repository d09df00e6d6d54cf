package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

// Every TOML sample in README.md loads and compiles, so the front page never
// shows a configuration nfgate would refuse.
func TestReadmeTOMLSamples(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var samples []string
	var cur []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "```toml"):
			in, cur = true, nil
		case in && strings.HasPrefix(line, "```"):
			in = false
			samples = append(samples, strings.Join(cur, "\n"))
		case in:
			cur = append(cur, line)
		}
	}
	if len(samples) == 0 {
		t.Fatal("README.md has no ```toml sample")
	}
	for i, s := range samples {
		path := filepath.Join(t.TempDir(), "nfgate.toml")
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := config.Load(path)
		if err != nil {
			t.Errorf("README sample %d does not load:\n%v", i, err)
			continue
		}
		if _, err := policy.Compile(l.Policy); err != nil {
			t.Errorf("README sample %d does not compile: %v", i, err)
		}
	}
}
