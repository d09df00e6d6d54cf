package conformance

import (
	"path/filepath"
	"testing"
)

// TestRegressions checks nfgate (the explain path: load, compile, walk)
// against the verdicts the real Felix gave each minimised case under
// testdata/. A case marked pending still disagrees, waiting for the fix it
// names: it is logged, and it fails once nfgate agrees, so that the marker
// is removed.
func TestRegressions(t *testing.T) {
	files, err := filepath.Glob("testdata/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no regression cases under testdata/")
	}
	for _, f := range files {
		f := f
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := readRegression(f)
			if err != nil {
				t.Fatal(err)
			}
			got, why, agree, err := r.check(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case r.Pending != "" && agree:
				t.Errorf("nfgate now agrees with Felix (%s): remove the pending marker %q", sortedVerdicts(got), r.Pending)
			case r.Pending != "":
				t.Logf("pending (%s): Felix %s; nfgate %s; %v", r.Pending, sortedVerdicts(r.Felix), sortedVerdicts(got), why)
			case !agree:
				t.Errorf("%s\nFelix:  %s\nnfgate: %s\nwhy: %v", r.Description, sortedVerdicts(r.Felix), sortedVerdicts(got), why)
			}
		})
	}
}
