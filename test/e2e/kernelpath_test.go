//go:build linux

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/nfgate/nfgate/test/netlab"
)

// A preDNAT Allow is remembered in the connmark: an unreplied UDP stream
// to the gateway is queued once, not once per datagram, and a reload
// re-checks the flow (found by its nfgate bits).
func TestPreDNATAllowRemembered(t *testing.T) {
	t.Parallel()
	lab := netlab.NewGateway(t)
	sink := lab.ListenPacket(netlab.GW, "udp", ":5000") // reads, never answers
	go func() {
		buf := make([]byte, 64)
		for {
			if _, _, err := sink.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	cfg := `
[gateway]
nodeName = "gw"

[[hostEndpoint]]
name = "gw.app0"
labels = { side = "outside" }
interfaceName = "app0"
node = "gw"

[[globalNetworkPolicy]]
name = "pinhole"
preDNAT = true
applyOnForward = true
selector = "side == 'outside'"
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "UDP"
destination = { ports = [5000] }
`
	d := startDaemon(t, lab, cfg, "")
	c := checker{t}
	conn, err := lab.Dial(netlab.Client, "udp", netlab.GWApp+":5000", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The first datagram is decided before the rest are sent (datagrams
	// arriving while it is being decided would be queued too, and get the
	// same verdict).
	count := func(stage string) int {
		n := 0
		for _, r := range d.Trace() {
			if r["type"] == "verdict" && r["stage"] == stage && r["dport"] == float64(5000) {
				n++
			}
		}
		return n
	}
	conn.Write([]byte("log line"))
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end) && count("preDNAT") < 1; time.Sleep(20 * time.Millisecond) {
	}
	for i := 0; i < 4; i++ {
		conn.Write([]byte("log line"))
		time.Sleep(20 * time.Millisecond)
	}
	d.Stats() // the trace is flushed by now
	if count("preDNAT") != 1 {
		for _, r := range d.Trace() {
			t.Logf("trace: %v", r)
		}
	}
	c.is("5 datagrams of one unreplied UDP flow: queued once at preDNAT", count("preDNAT") == 1, true)
	c.is("... and never at input (the preDNAT Allow accepts there)", count("input") == 0, true)
	ct, _ := lab.Exec(netlab.GW, "conntrack", "-L", "-p", "udp", "--dport", "5000")
	t.Logf("conntrack: %s", strings.TrimSpace(ct))
	c.is("flow's connmark carries nfgate's bits", strings.Contains(ct, "mark=") && !strings.Contains(ct, "mark=0 "), true)
	s := d.Reload()
	c.is("reload re-checks the preDNAT-allowed flow", s.Rechecked >= 1, true)
}
