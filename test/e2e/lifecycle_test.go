//go:build linux

package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nfgate/nfgate/test/netlab"
)

const maintTwoPorts = `
[gateway]
nodeName = "gw"

[[globalNetworkPolicy]]
name = "maint-allowed"
selector = "network == 'maintenance'"
applyOnForward = true
types = ["Egress"]
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "TCP"
destination = { ports = [%s] }

[[hostEndpoint]]
name = "gw.maint0"
labels = { network = "maintenance" }
interfaceName = "maint0"
node = "gw"
`

func dialEstablished(t *testing.T, lab *netlab.Lab, addr string) net.Conn {
	t.Helper()
	c, err := lab.Dial(netlab.Client, "tcp", addr, 2*time.Second)
	if err != nil || !readGreeting(c) || !netlab.Roundtrip(c, "x", time.Second) {
		t.Fatalf("establishing %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Reload: tightening the policy cuts an established flow it now denies and
// keeps the one it still allows; a bad file keeps the old policy.
func TestReload(t *testing.T) {
	t.Parallel()
	lab := netlab.NewGateway(t)
	for _, p := range []string{"22", "80"} {
		netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":"+p))
	}
	d := startDaemon(t, lab, fmt.Sprintf(maintTwoPorts, "22, 80"), "")
	c := checker{t}
	ssh := dialEstablished(t, lab, netlab.MaintIP+":22")
	web := dialEstablished(t, lab, netlab.MaintIP+":80")

	d.write(fmt.Sprintf(maintTwoPorts, "22") + engineTOML(d.dir, ""))
	s := d.Reload()
	c.is("tightening reload went live (gen 2)", s.Gen == 2 && s.ReloadErrs == 0, true)
	t.Logf("flows marked for re-check: %d", s.Rechecked)
	c.is("established SSH flow still works", netlab.Roundtrip(ssh, "y", 2*time.Second), true)
	c.is("established TCP/80 flow cut", netlab.Roundtrip(web, "y", 2*time.Second), false)
	c.is("new TCP/80 flow", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), false)
	s = d.Stats()
	t.Logf("after reload: rechecked=%d cut=%d", s.Rechecked, s.Cut)
	c.is("re-check counted >= 2 flows and cut >= 1", s.Rechecked >= 2 && s.Cut >= 1, true)
	ct, _ := lab.Exec(netlab.GW, "conntrack", "-L", "-p", "tcp", "--dport", "80")
	c.is("cut flow's conntrack entry deleted", !strings.Contains(ct, "ESTABLISHED"), true)

	// A bad file: the old policy keeps running.
	d.write(fmt.Sprintf(maintTwoPorts, "22, 80") + "\n[[globalNetworkPolicy]]\nname = \"Bad_Name\"\nselectr = \"x\"\n" + engineTOML(d.dir, ""))
	s = d.Reload()
	c.is("bad reload rejected, generation stays 2", s.ReloadErrs == 1 && s.Gen == 2, true)
	c.is("old policy still enforced: new TCP/80", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), false)
	c.is("old policy still enforced: new SSH", lab.TCPWorks(netlab.Client, netlab.MaintIP+":22", 2*time.Second), true)
	var bad map[string]any
	for _, r := range d.Trace() {
		if r["ok"] == false {
			bad = r
		}
	}
	c.is("trace has the failed reload with file:line errors", bad != nil && strings.Contains(fmt.Sprint(bad["errors"]), "nfgate.toml:"), true)
	if bad != nil {
		t.Logf("reload trace line: %v", bad)
	}
}

// The daemon-killed cells (closed and open, restart, cleanup) are part of
// TestFailureMatrix (failmatrix_test.go).
