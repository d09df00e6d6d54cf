//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfgate/nfgate/test/netlab"
)

// The diff test's policy: forwarded TCP to the maintenance network on
// the forward ports, and local TCP to the gateway's app0 address on the
// input ports.
const diffPolicy = `
[gateway]
nodeName = "gw"

[[hostEndpoint]]
name = "gw.maint0"
labels = { network = "maintenance" }
interfaceName = "maint0"
node = "gw"

[[hostEndpoint]]
name = "gw.app0"
labels = { network = "application" }
interfaceName = "app0"
node = "gw"

[[globalNetworkPolicy]]
name = "maint-allowed"
selector = "network == 'maintenance'"
applyOnForward = true
types = ["Egress"]
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "TCP"
destination = { ports = [%s] }

[[globalNetworkPolicy]]
name = "app-services"
selector = "network == 'application'"
types = ["Ingress"]
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "TCP"
destination = { ports = [%s] }
`

// diffFlows is the part of `nfgate diff --json` the test reads.
type diffFlows struct {
	Equivalent bool `json:"equivalent"`
	Stages     []struct {
		Stage string `json:"stage"`
	} `json:"stages"`
	Flows struct {
		Flows  int `json:"flows"`
		Live   int `json:"live"`
		Cut    int `json:"cut"`
		Sample []struct {
			Flow string `json:"flow"`
			Cut  bool   `json:"cut"`
		} `json:"sample"`
	} `json:"flows"`
}

func runJSON(t *testing.T, args ...string) diffFlows {
	t.Helper()
	cmd := exec.Command(nfgateBin, args...)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
		err = nil // diff: differences found
	}
	if err != nil {
		t.Fatalf("nfgate %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var d diffFlows
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("nfgate %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return d
}

// cutPorts returns the source ports of the flows a diff marks cut.
func cutPorts(d diffFlows) []int {
	var out []int
	for _, s := range d.Flows.Sample {
		if !s.Cut {
			continue
		}
		// "tcp 198.18.1.2:40000 -> 198.18.2.2:80"
		f := strings.Fields(s.Flow)
		if len(f) < 2 {
			continue
		}
		if _, p, err := net.SplitHostPort(f[1]); err == nil {
			n, _ := strconv.Atoi(p)
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// TestDiffPredictsReloadCuts: with established flows through and to a
// live daemon, `nfgate diff --pid --flows live` and `nfgate reload
// --dry-run` name the flows a tightening reload will cut; the reload then
// cuts exactly those, and the others keep working.
func TestDiffPredictsReloadCuts(t *testing.T) {
	t.Parallel()
	lab := netlab.NewGateway(t)
	for _, p := range []string{"22", "80", "443", "8080"} {
		netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":"+p))
	}
	for _, p := range []string{"7000", "7001"} {
		netlab.EchoServer(lab.Listen(netlab.GW, "tcp", netlab.GWApp+":"+p))
	}
	d := startDaemon(t, lab, fmt.Sprintf(diffPolicy, "22, 80, 443, 8080", "7000, 7001"), "")
	c := checker{t}

	type flow struct {
		conn net.Conn
		to   string
	}
	var flows []flow
	for _, to := range []string{netlab.MaintIP + ":22", netlab.MaintIP + ":80", netlab.MaintIP + ":80", netlab.MaintIP + ":443",
		netlab.MaintIP + ":8080", netlab.GWApp + ":7000", netlab.GWApp + ":7001"} {
		flows = append(flows, flow{dialEstablished(t, lab, to), to})
	}
	port := func(f flow) int { return f.conn.LocalAddr().(*net.TCPAddr).Port }
	var wantCut []int
	for _, f := range flows {
		if strings.HasSuffix(f.to, ":80") || strings.HasSuffix(f.to, ":8080") || strings.HasSuffix(f.to, ":7000") {
			wantCut = append(wantCut, port(f))
		}
	}
	slices.Sort(wantCut)

	// The new policy, beside the running one: forward 22 and 443, input 7001.
	newCfg := fmt.Sprintf(diffPolicy, "22, 443", "7001") + engineTOML(d.dir, "")
	newPath := filepath.Join(d.dir, "new.toml")
	if err := os.WriteFile(newPath, []byte(newCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(d.cmd.Process.Pid)
	df := runJSON(t, "diff", "--config", newPath, "--pid", pid, "--flows", "live", "--json")
	t.Logf("diff --pid: %d flows (%d live), cut %d: %v", df.Flows.Flows, df.Flows.Live, df.Flows.Cut, cutPorts(df))
	c.is("diff sees the 7 established flows as live", df.Flows.Live == 7, true)
	c.is("diff predicts the 4 flows to cut (2x :80, :8080, :7000)", slices.Equal(cutPorts(df), wantCut), true)
	c.is("diff reports forward and input changes", !df.Equivalent && len(df.Stages) >= 2, true)

	// The operator edits the live file; reload --dry-run says the same.
	d.write(newCfg)
	dr := runJSON(t, "reload", "--dry-run", "--pid", pid, "--stats", d.stats, "--json")
	c.is("reload --dry-run predicts the same cuts", slices.Equal(cutPorts(dr), wantCut) && dr.Flows.Cut == len(wantCut), true)
	out, _ := exec.Command(nfgateBin, "reload", "--dry-run", "--pid", pid, "--stats", d.stats).CombinedOutput()
	t.Logf("nfgate reload --dry-run --pid %s:\n%s", pid, out)
	c.is("--dry-run reloaded nothing (generation 1)", d.Stats().Gen == 1, true)

	before := d.Stats()
	s := d.Reload()
	c.is("reload went live (gen 2)", s.Gen == 2, true)
	for _, f := range flows {
		works := netlab.Roundtrip(f.conn, "y", 2*time.Second)
		c.is(fmt.Sprintf("flow %s (port %d) keeps working as predicted", f.to, port(f)), works, !slices.Contains(wantCut, port(f)))
	}
	// The cuts the reload made, from its trace.
	deadline := time.Now().Add(5 * time.Second)
	var cut []int
	for time.Now().Before(deadline) {
		cut = cut[:0]
		for _, r := range d.Trace() {
			if r["note"] == "recheck-cut" {
				if p, ok := r["sport"].(float64); ok && !slices.Contains(cut, int(p)) {
					cut = append(cut, int(p))
				}
			}
		}
		if len(cut) >= len(wantCut) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	slices.Sort(cut)
	t.Logf("re-check cut flows (trace): %v; predicted %v", cut, wantCut)
	c.is("the reload cut exactly the predicted flows", slices.Equal(cut, wantCut), true)
	s = d.Stats()
	t.Logf("cut counter %d -> %d", before.Cut, s.Cut)
	c.is("the reload's cut counter is the predicted number", s.Cut-before.Cut == uint64(len(wantCut)), true)

	// After the reload, the running policy is the new one: no difference.
	df = runJSON(t, "diff", "--config", newPath, "--pid", pid, "--json")
	c.is("diff against the new running policy is empty", df.Equivalent, true)
}
