//go:build linux

package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestConformance runs generated cases through the real Felix, the live
// nfgate and nfgate explain. `make test` runs a fixed-seed sample;
// `make conformance SEEDS=N` runs seeds 1..N.
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance: not in -short mode")
	}
	kit := needs(t)
	seeds, budget := sampleSeeds, 4*time.Minute
	if s := os.Getenv("NFGATE_CONFORMANCE_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("NFGATE_CONFORMANCE_SEEDS=%q: want a positive number", s)
		}
		seeds, budget = n, 24*time.Hour
	}
	first := 1
	if s := os.Getenv("NFGATE_CONFORMANCE_FIRST"); s != "" {
		first, _ = strconv.Atoi(s)
	}
	var cases []*Case
	for s := first; s < first+seeds; s++ {
		cases = append(cases, Generate(uint64(s), GenOptions{}))
	}
	if only := os.Getenv("NFGATE_CONFORMANCE_ONLY"); only != "" {
		cases, budget = nil, 24*time.Hour
		for _, f := range strings.Split(only, ",") {
			n, _ := strconv.Atoi(f)
			cases = append(cases, Generate(uint64(n), GenOptions{}))
		}
	}
	// Cases with the same FelixConfiguration run together: changing it
	// restarts Felix.
	sort.SliceStable(cases, func(i, j int) bool {
		return string(marshalDocs([]doc{felixDoc(cases[i].Res.Felix)})) < string(marshalDocs([]doc{felixDoc(cases[j].Res.Felix)}))
	})
	shrinks, _ := strconv.Atoi(os.Getenv("NFGATE_CONFORMANCE_SHRINK"))
	save := os.Getenv("NFGATE_CONFORMANCE_SAVE")
	if save != "" {
		if err := os.MkdirAll(save, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	shrunk := map[string]bool{}
	r := newRunner(t, kit)
	start := time.Now()
	for _, c := range cases {
		if time.Since(start) > budget {
			t.Logf("time budget of %v reached after %d cases", budget, r.sum.Cases)
			break
		}
		cs := time.Now()
		o, err := r.runCase(c)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		r.record(c, o)
		t.Logf("%s: %d probes, %d disagreements, %s %v", c.Name, len(c.Probes), len(o.Disagreements), o.Config, time.Since(cs).Round(time.Millisecond))
		for _, d := range o.Disagreements {
			t.Logf("  %s", d)
			if os.Getenv("NFGATE_CONFORMANCE_DEBUG") != "" {
				res := resultOf(o.Results, d.Probe)
				t.Logf("      felix chain %q, live chain %q, ct %s, explain: %v", res.FChain[hookOf[d.Stage]], res.LChain[hookOf[d.Stage]], res.CT, res.Why)
			}
		}
		if os.Getenv("NFGATE_CONFORMANCE_DEBUG") != "" && len(o.Disagreements) > 0 {
			t.Logf("%s", c.Res.YAML())
		}
		// Minimise the first disagreement of each kind (cause and verdicts).
		if o.Config != "" && !o.Refused && !o.NoReference {
			cause := configCause(c, o.Config)
			if key := "config|" + cause; !shrunk[key] && len(shrunk) < shrinks {
				shrunk[key] = true
				if reg, err := r.minimiseConfig(c, cause, 40); err != nil {
					t.Logf("minimise %s: %v", c.Name, err)
				} else {
					t.Logf("minimised %s (%s): %s\n%s", c.Name, cause, reg.Origin, reg.Resources)
					if save != "" {
						if err := reg.write(filepath.Join(save, fmt.Sprintf("%s-%s.toml", slug(cause), c.Name))); err != nil {
							t.Errorf("%v", err)
						}
					}
				}
			}
		}
		for _, d := range o.Disagreements {
			key := d.Cause + "|" + d.Stage + "|" + d.Felix + d.Explain + d.Live
			if d.Consequence || shrunk[key] || len(shrunk) >= shrinks {
				continue
			}
			shrunk[key] = true
			ms := time.Now()
			reg, err := r.minimise(c, d, resultOf(o.Results, d.Probe), 60)
			if err != nil {
				t.Logf("minimise %s: %v", d, err)
				continue
			}
			t.Logf("minimised %s in %v: %s\n%s", d, time.Since(ms).Round(time.Second), reg.Origin, reg.Resources)
			if save != "" {
				id, _, _ := strings.Cut(reg.Cause, ":") // the cause on the minimised case
				name := filepath.Join(save, fmt.Sprintf("%s-%s-p%d.toml", slug(id), c.Name, d.Probe.ID))
				if err := reg.write(name); err != nil {
					t.Errorf("%v", err)
				}
			}
		}
	}
	r.sum.Seconds = time.Since(start).Seconds()
	t.Logf("\n%s", r.sum.Table())
	if p := os.Getenv("NFGATE_CONFORMANCE_REPORT"); p != "" {
		if err := os.WriteFile(p, []byte(r.sum.Table()), 0o644); err != nil {
			t.Error(err)
		}
	}
	// Known causes (issue 11's items, recorded findings) are pending on
	// their fixes; anything else is a new disagreement and fails.
	for _, d := range r.sum.Disagreements {
		if !d.Consequence && !pendingCause(d.Cause) {
			t.Errorf("new disagreement with Felix: %s", d)
		}
	}
	for _, c := range r.sum.ConfigRejected {
		if !pendingCause(c.Cause) {
			t.Errorf("new configuration disagreement with Felix: %s: %s", c.Case, c.Msg)
		}
	}
	if r.sum.Probes > 0 && len(r.sum.Harness) > 0 {
		n := 0
		for _, v := range r.sum.Harness {
			n += v
		}
		if n*10 > r.sum.Probes {
			t.Errorf("%d of %d probes could not be compared (harness); see the table", n, r.sum.Probes)
		}
	}
}
