//go:build linux

package conformance

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestRecord runs hand-written cases (regression files, verdicts absent or
// stale) through Felix, the live daemon and explain, and writes Felix's
// verdicts into them:
//
//	NFGATE_CONFORMANCE_RECORD='testdata/new-*.toml' go test -run TestRecord ./test/conformance
//
// Without the variable it re-records a copy of a committed case and checks
// that Felix gives the verdicts the file holds: the recorder, and Felix in
// the kit, still reproduce what the regression cases were recorded from.
func TestRecord(t *testing.T) {
	kit := needs(t)
	glob := os.Getenv("NFGATE_CONFORMANCE_RECORD")
	if glob == "" {
		const committed = "testdata/new-loopback-accept-mark.toml"
		var want Regression
		if _, err := toml.DecodeFile(committed, &want); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(committed)
		if err != nil {
			t.Fatal(err)
		}
		cp := filepath.Join(t.TempDir(), filepath.Base(committed))
		if err := os.WriteFile(cp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		record(t, kit, []string{cp})
		var got Regression
		if _, err := toml.DecodeFile(cp, &got); err != nil {
			t.Fatal(err)
		}
		// (The live side is TestRegressionsLive's: it checks the live
		// daemon against the file's Felix verdicts.)
		if !sameVerdicts(Verdicts(got.Felix), Verdicts(want.Felix)) {
			t.Errorf("%s re-recorded: Felix %s; the file has Felix %s", committed, sortedVerdicts(got.Felix), sortedVerdicts(want.Felix))
		}
		return
	}
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no files (%v)", glob, err)
	}
	record(t, kit, files)
}

// record writes Felix's verdicts (and the live daemon's) into each file.
func record(t *testing.T, kit string, files []string) {
	r := newRunner(t, kit)
	r.felixOnly = true
	for _, f := range files {
		var reg Regression
		if _, err := toml.DecodeFile(f, &reg); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		res, err := parseResources([]byte(reg.Resources))
		if err != nil {
			t.Fatalf("%s: resources: %v", f, err)
		}
		c := &Case{Name: filepath.Base(f), Res: *res}
		for i := range reg.Prelude {
			p, err := reg.Prelude[i].probe()
			if err != nil {
				t.Fatalf("%s: prelude: %v", f, err)
			}
			p.ID = uint16(i + 1)
			c.Probes = append(c.Probes, p)
		}
		var main *Probe
		if reg.Probe.From != "" {
			if main, err = reg.Probe.probe(); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			main.ID = uint16(len(c.Probes) + 1)
			c.Probes = append(c.Probes, main)
		}
		o, err := r.runCase(c)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		reg.Pending, reg.LivePending, reg.Cause = "", "", ""
		switch {
		case main == nil:
			felix, live := "loaded", "loaded"
			switch {
			case o.Refused:
				felix, live = "refused", "refused"
			case o.Config != "" && configCause(c, o.Config) != "":
				if len(o.Config) > 9 && o.Config[:9] == "calicoctl" {
					felix = "refused"
				} else {
					live = "refused"
				}
				cause := configCause(c, o.Config)
				reg.Cause = cause + ": " + causeText(cause)
				reg.Pending, reg.LivePending = reg.Cause, reg.Cause
			}
			reg.Felix, reg.Live = map[string]string{"config": felix}, map[string]string{"config": live}
		case o.Config != "" && !o.Refused && !o.NoReference && len(o.Results) > 0:
			// nfgate refuses the configuration; Felix's verdicts say what
			// loading it must give.
			res := resultOf(o.Results, main)
			if res.Harness != "" {
				t.Errorf("%s: %s", f, res.Harness)
				continue
			}
			cause := configCause(c, o.Config)
			reg.Cause = cause + ": " + causeText(cause)
			reg.Pending, reg.LivePending = reg.Cause, reg.Cause
			reg.Felix, reg.Live = map[string]string(res.Felix), map[string]string{"config": "refused"}
			reg.Probe = regressionProbe(main, res.Path)
			t.Logf("%s: Felix %s; nfgate refuses: %s", f, sortedVerdicts(res.Felix), firstLine(o.Config))
		case o.Config != "" || o.Refused || o.NoReference:
			t.Errorf("%s: no probe verdicts: %s", f, o.Config)
			continue
		default:
			res := resultOf(o.Results, main)
			if res.Harness != "" {
				t.Errorf("%s: %s", f, res.Harness)
				continue
			}
			reg.Felix, reg.Live = map[string]string(res.Felix), map[string]string(res.Live)
			reg.Probe = regressionProbe(main, res.Path)
			for _, d := range o.Disagreements {
				if d.Probe == main && !d.Consequence {
					reg.Cause = d.Cause + ": " + causeText(d.Cause)
					break
				}
			}
			if !sameVerdicts(res.Explain, res.Felix) {
				reg.Pending = reg.Cause
			}
			if !sameVerdicts(res.Live, res.Felix) {
				reg.LivePending = reg.Cause
			}
			t.Logf("%s: Felix %s; explain %s; live %s; %s", f, sortedVerdicts(res.Felix), sortedVerdicts(res.Explain), sortedVerdicts(res.Live), reg.Cause)
		}
		if reg.Origin == "" {
			reg.Origin = "hand-written, verdicts recorded by TestRecord"
		}
		if err := reg.write(f); err != nil {
			t.Fatal(err)
		}
	}
}
