//go:build linux

package conformance

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfgate/nfgate/test/netlab"
)

// TestRegressionsLive sends each recorded packet through the live nfgate
// daemon in a namespace lab (no Felix needed) and compares what the kernel
// did with the verdicts Felix gave. livePending marks a case the daemon
// still gets wrong.
func TestRegressionsLive(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance: not in -short mode")
	}
	netlab.RequireRoot(t)
	for _, tool := range []string{"nft", "conntrack", "iptables-nft", "ip6tables-nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (.ci/deps.sh installs it)", tool)
			}
			t.Skipf("%s not installed (run `make deps`); skipping", tool)
		}
	}
	files, err := filepath.Glob("testdata/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no regression cases: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "nfgate")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/nfgate/nfgate/cmd/nfgate").CombinedOutput(); err != nil {
		t.Fatalf("building nfgate: %v\n%s", err, out)
	}
	lab := netlab.New(t)
	s := buildSide(t, lab, "nfgate")
	t.Cleanup(s.close)
	g, err := startLive(s, bin, filepath.Join(dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.stop)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := readRegression(f)
			if err != nil {
				t.Fatal(err)
			}
			refused, err := g.load([]byte(r.Resources))
			if err != nil {
				t.Fatal(err)
			}
			var got Verdicts
			_, configCase := r.Felix["config"]
			switch {
			case len(refused) > 0:
				got = Verdicts{"config": "refused"}
			case configCase:
				got = Verdicts{"config": "loaded"}
			default:
				p, err := r.Probe.probe()
				if err != nil {
					t.Fatal(err)
				}
				// Retried only when the trace missed the packet or the
				// daemon's watchdog answered (a busy machine), never for
				// a verdict.
				var o *Observed
				for attempt := 1; o == nil; attempt++ {
					if attempt > 4 {
						t.Fatalf("the probe was never traced with a policy verdict (lost events or deadline verdicts)")
					}
					if err := s.flushConntrack(); err != nil {
						t.Fatal(err)
					}
					off := g.traceSize()
					if len(r.Prelude) > 0 {
						var pre []*Probe
						for i := range r.Prelude {
							q, err := r.Prelude[i].probe()
							if err != nil {
								t.Fatal(err)
							}
							q.ID = uint16(100 + i)
							pre = append(pre, q)
						}
						if _, err := s.probeAll(pre); err != nil {
							t.Logf("attempt %d: prelude: %v", attempt, err)
							continue
						}
					}
					obs, err := s.probeAll([]*Probe{p})
					if err != nil {
						t.Logf("attempt %d: %v", attempt, err)
						continue
					}
					time.Sleep(50 * time.Millisecond)
					if g.deadlines(off) == 0 {
						o = obs[p.ID]
					}
				}
				got = kernelStages(r.Probe.path(p), o)
			}
			agree := sameVerdicts(got, Verdicts(r.Felix))
			switch {
			case r.LivePending != "" && agree:
				t.Errorf("the live nfgate now agrees with Felix (%s): remove livePending %q", sortedVerdicts(got), r.LivePending)
			case r.LivePending != "":
				t.Logf("pending (%s): Felix %s; live %s", r.LivePending, sortedVerdicts(r.Felix), sortedVerdicts(got))
			case !agree:
				t.Errorf("%s\nFelix: %s\nlive:  %s", r.Description, sortedVerdicts(r.Felix), sortedVerdicts(got))
			}
		})
	}
}
