//go:build linux

package netbench

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfgate/nfgate/test/netlab"
)

func TestMain(m *testing.M) {
	MaybeChild()
	os.Exit(m.Run())
}

// TestQuick runs the whole harness in quick mode: every contender carries
// traffic, the reload keeps the established flow, and the tables print.
// The figures themselves are not judged here (the machine is shared).
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("namespace harness skipped in -short mode")
	}
	netlab.RequireRoot(t, "nft", "conntrack", "iperf3")
	bin := filepath.Join(t.TempDir(), "nfgate")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/nfgate/nfgate/cmd/nfgate").CombinedOutput(); err != nil {
		t.Fatalf("building nfgate: %v\n%s", err, out)
	}
	src := DefaultBestBareDir
	if d := os.Getenv("NETBENCH_BESTBARE"); d != "" {
		src = d
	}
	if err := BuildBestBare(src, t.TempDir()); err != nil {
		t.Logf("%v: running without the bestbare contender", err)
	}
	res, err := Run(t, Options{Quick: true, NfgateBin: bin, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res.Markdown(&b)
	t.Logf("\n%s", b.String())
	for _, c := range res.Order {
		if v := res.Med(c.Name, mUDPDeep); !(v > 0) {
			t.Errorf("%s: no UDP flow reached the server (%v/s)", c.Name, v)
		}
		if c.Full {
			if v := res.Med(c.Name, mTCP); !(v > 0) {
				t.Errorf("%s: no TCP connection (%v/s)", c.Name, v)
			}
			if v := res.Med(c.Name, mLatP50); !(v > 0) {
				t.Errorf("%s: no latency sample", c.Name)
			}
		}
		if c.Throughput && !(res.Med(c.Name, mTput) > 0) {
			t.Errorf("%s: no iperf3 throughput", c.Name)
		}
		if c.Flood && !(res.Med(c.Name, mFloodA) > 0 && res.Med(c.Name, mFloodB) > 0 && res.Med(c.Name, mFloodASent) > 0) {
			t.Errorf("%s: no flood figure", c.Name)
		}
	}
	for _, n := range []string{"reload-yaml", "reload-toml"} {
		if v := res.Med(n, mReloadMS); math.IsNaN(v) {
			t.Errorf("%s: no reload measured", n)
		}
		if lost := maxOf(res.get(n, mLost)); lost != 0 {
			t.Errorf("%s: established flow lost during a reload", n)
		}
	}
	for _, want := range []string{"| kernel |", "| nfgate-1000 |", "Targets", "flows lost"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("tables lack %q", want)
		}
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
