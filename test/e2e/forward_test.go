//go:build linux

package e2e

import (
	"net"
	"testing"
	"time"

	"github.com/nfgate/nfgate/test/netlab"
)

// Calico's "Apply policy to forwarded traffic" tutorial on real packets,
// plus the queued-packet count of established flows.
func TestForwardedTutorial(t *testing.T) {
	t.Parallel()
	lab := netlab.NewGateway(t)
	for _, p := range []string{"22", "80"} {
		netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":"+p))
	}
	netlab.UDPEcho(lab.ListenPacket(netlab.Maint, "udp", ":53"))
	netlab.EchoServer(lab.Listen(netlab.LanB, "tcp", ":80"))
	d := startDaemon(t, lab, tutorialConfig, "")
	c := checker{t}

	// Established flows: each SSH flow is queued once at the forward stage
	// (the only stage with policy for it), whatever it carries afterwards.
	before := d.Stats()
	var conns []net.Conn
	for i := 0; i < 3; i++ {
		conn, err := lab.Dial(netlab.Client, "tcp", netlab.MaintIP+":22", 2*time.Second)
		if err != nil {
			t.Fatalf("SSH to the maintenance network: %v", err)
		}
		conns = append(conns, conn)
		ok := readGreeting(conn)
		for j := 0; j < 20 && ok; j++ {
			ok = netlab.Roundtrip(conn, "data", time.Second)
		}
		c.is("SSH client->maint:22 forwarded, greeting + 20 round trips", ok, true)
	}
	after := d.Stats()
	q := after.Queued["forward"] - before.Queued["forward"]
	t.Logf("queued at forward for 3 SSH flows x 21 packets each way: %d (accepted %d)", q, after.Accepted["forward"]-before.Accepted["forward"])
	c.is("3 SSH flows queued exactly 3 packets at forward", q == 3, true)
	for _, conn := range conns {
		conn.Close()
	}

	c.is("TCP client->maint:80 forwarded", lab.TCPWorks(netlab.Client, netlab.MaintIP+":80", shortWait), false)
	c.is("UDP client->maint:53 forwarded", lab.UDPWorks(netlab.Client, netlab.MaintIP+":53", shortWait), false)
	c.is("ICMP client->maint forwarded", lab.Ping(netlab.Client, netlab.MaintIP), false)
	c.is("TCP lan0->lan1:80 (no endpoints)", lab.TCPWorks(netlab.LanA, netlab.LanBIP+":80", 2*time.Second), true)
	c.is("TCP client->lan1:80 (no endpoints)", lab.TCPWorks(netlab.Client, netlab.LanBIP+":80", 2*time.Second), true)
	c.is("ICMP lan0->lan1 (no endpoints)", lab.Ping(netlab.LanA, netlab.LanBIP), true)
	s := d.Stats()
	c.is("traffic between interfaces without endpoints never queued (forward accepted == 3)", s.Accepted["forward"] == 3, true)
	tr := d.Trace()
	found := false
	for _, r := range tr {
		if r["stage"] == "forward" && r["verdict"] == "ACCEPT" && r["policy"] == "allow-ssh-maintenance" {
			found = true
		}
	}
	c.is("trace names the policy that accepted SSH", found, true)
}

// An IPv6 forwarded case: applyOnForward ingress policy on the client-side
// endpoint (ICMPv6 allowed so neighbour discovery with the gateway works:
// Calico has no built-in NDP exemption for host endpoints).
func TestIPv6Forwarded(t *testing.T) {
	t.Parallel()
	lab := netlab.NewGateway(t)
	for _, p := range []string{"22", "80"} {
		netlab.EchoServer(lab.Listen(netlab.Maint, "tcp6", "[::]:"+p))
	}
	d := startDaemon(t, lab, `
[gateway]
nodeName = "gw"

[[globalNetworkPolicy]]
name = "app-v6-ssh-only"
selector = "network == 'application'"
applyOnForward = true
types = ["Ingress"]
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "ICMPv6"
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "TCP"
destination = { nets = ["2001:db8:2::/64"], ports = [22] }

[[hostEndpoint]]
name = "gw.app0"
labels = { network = "application" }
interfaceName = "app0"
node = "gw"
profiles = ["projectcalico-default-allow"]
`, "")
	c := checker{t}
	c.is("TCP6 client->[maint]:22 forwarded", lab.TCPWorks(netlab.Client, "["+netlab.MaintIP6+"]:22", 3*time.Second), true)
	c.is("TCP6 client->[maint]:80 forwarded", lab.TCPWorks(netlab.Client, "["+netlab.MaintIP6+"]:80", shortWait), false)
	c.is("TCP4 client->maint:22 (rule is IPv6-only)", lab.TCPWorks(netlab.Client, netlab.MaintIP+":22", shortWait), false)
	c.is("ICMPv6 client->gw", lab.Ping(netlab.Client, netlab.GWApp6), true)
	s := d.Stats()
	c.is("forward stage accepted one IPv6 flow", s.Accepted["forward"] == 1, true)
}

func readGreeting(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 6)
	n := 0
	for n < 6 {
		m, err := c.Read(buf[n:])
		if err != nil {
			return false
		}
		n += m
	}
	return string(buf) == "hello\n"
}
