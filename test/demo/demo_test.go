//go:build linux

// Package demo runs `make demo`'s lab (test/lab) as a test: real traffic
// through `nfgate run` in a namespace lab, every attempt's outcome and
// deciding policy checked. It needs root; without it, it skips saying why.
package demo

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfgate/nfgate/test/lab"
	"github.com/nfgate/nfgate/test/netlab"
)

func TestDemo(t *testing.T) {
	netlab.RequireRoot(t)
	bin := filepath.Join(t.TempDir(), "nfgate")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/nfgate/nfgate/cmd/nfgate").CombinedOutput(); err != nil {
		t.Fatalf("building nfgate: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var report strings.Builder
	res, err := lab.Run(ctx, t, lab.Options{Nfgate: bin, Config: "../../examples/lab/nfgate.toml", Out: &report})
	t.Logf("demo report:\n%s", report.String())
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	for _, f := range res.Failed() {
		t.Errorf("%s", f)
	}
	if len(res.Attempts) == 0 || len(res.Records) == 0 {
		t.Errorf("demo sent %d attempts and saw %d decisions; want some of each", len(res.Attempts), len(res.Records))
	}
	if t.Failed() {
		t.Logf("nfgate's log:\n%s", res.NfgateLog)
	}
}
