package netlab

import (
	"fmt"
	"testing"
)

// recTB records what RequireTools does instead of ending the test.
type recTB struct {
	testing.TB
	fatal, skip string
}

func (r *recTB) Fatalf(f string, a ...any) { r.fatal = fmt.Sprintf(f, a...) }
func (r *recTB) Skipf(f string, a ...any)  { r.skip = fmt.Sprintf(f, a...) }

// A missing tool skips a privileged test on a developer's machine, but
// fails it in CI, where .ci/deps.sh installs every tool (bench/netbench's
// TestQuick used to skip there in silence because nft was not installed).
func TestMissingToolFailsInCI(t *testing.T) {
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		r := &recTB{TB: t}
		RequireTools(r, "nfgate-no-such-tool")
		if ci == "true" && (r.fatal == "" || r.skip != "") || ci == "" && (r.skip == "" || r.fatal != "") {
			t.Errorf("CI=%q: fatal %q, skip %q", ci, r.fatal, r.skip)
		}
	}
}
