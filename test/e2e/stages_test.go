//go:build linux

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/nfgate/nfgate/test/netlab"
)

// Rows of the default-action table (spec §3.1) on real packets. The host's
// own FORWARD policy is DROP, so a NONE verdict (host rules decide) is
// visible as a drop while nfgate's ACCEPT passes.
func TestDefaultActions(t *testing.T) {
	t.Parallel()
	lab := netlab.NewGateway(t)
	lab.MustNS(netlab.GW, "iptables", "-P", "FORWARD", "DROP")
	for _, p := range []string{"22", "80"} {
		netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":"+p))
	}
	netlab.EchoServer(lab.Listen(netlab.LanB, "tcp", ":80"))
	netlab.EchoServer(lab.Listen(netlab.Client, "tcp", ":80"))
	netlab.EchoServer(lab.Listen(netlab.GW, "tcp", ":8080"))
	netlab.EchoServer(lab.Listen(netlab.GW, "tcp", ":22"))
	d := startDaemon(t, lab, `
[gateway]
nodeName = "gw"

# lan0: an endpoint no policy selects.
[[hostEndpoint]]
name = "gw.lan0"
labels = { net = "lan" }
interfaceName = "lan0"
node = "gw"

# app0: applyOnForward policy only in the egress direction.
[[hostEndpoint]]
name = "gw.app0"
labels = { net = "app" }
interfaceName = "app0"
node = "gw"

[[globalNetworkPolicy]]
name = "app-egress-all"
selector = "net == 'app'"
applyOnForward = true
types = ["Egress"]
[[globalNetworkPolicy.egress]]
action = "Allow"

# maint0: applyOnForward egress policy allowing SSH only.
[[hostEndpoint]]
name = "gw.maint0"
labels = { net = "maint" }
interfaceName = "maint0"
node = "gw"

[[globalNetworkPolicy]]
name = "maint-ssh"
selector = "net == 'maint'"
applyOnForward = true
types = ["Egress"]
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "TCP"
destination = { ports = [22] }
`, "")
	c := checker{t}
	c.is("endpoint without policy, local ingress lana->gw:8080 (profiles -> DROP)", lab.TCPWorks(netlab.LanA, netlab.GWLanA+":8080", shortWait), false)
	c.is("endpoint without policy, failsafe lana->gw:22", lab.TCPWorks(netlab.LanA, netlab.GWLanA+":22", 2*time.Second), true)
	c.is("endpoint without AoF policy, forward lana->lanb:80 (default ACCEPT, host FORWARD DROP)", lab.TCPWorks(netlab.LanA, netlab.LanBIP+":80", 2*time.Second), true)
	c.is("AoF policy only in the other direction, client->lanb:80 (NONE -> host FORWARD DROP)", lab.TCPWorks(netlab.Client, netlab.LanBIP+":80", shortWait), false)
	c.is("AoF egress Allow, lana->client:80", lab.TCPWorks(netlab.LanA, netlab.ClientIP+":80", 2*time.Second), true)
	c.is("policy in direction, no rule matches, lana->maint:80 (end-of-tier DROP)", lab.TCPWorks(netlab.LanA, netlab.MaintIP+":80", shortWait), false)
	c.is("rule Allow, lana->maint:22", lab.TCPWorks(netlab.LanA, netlab.MaintIP+":22", 2*time.Second), true)
	none := false
	for _, r := range d.Trace() {
		if r["stage"] == "forward" && r["verdict"] == "NONE" && r["in"] == "app0" {
			none = true
		}
	}
	c.is("trace shows the NONE verdict for app0 ingress", none, true)
}

// Host protection, Calico's k8s-worker example: SSH only from the
// management network, ICMP, the kubelet port; egress to DNS and etcd.
// Then a deny-all (reload): failsafe SSH still connects.
func TestHostProtection(t *testing.T) {
	t.Parallel()
	lab := netlab.NewGateway(t)
	for _, p := range []string{"22", "10250", "8080"} {
		netlab.EchoServer(lab.Listen(netlab.GW, "tcp", ":"+p))
	}
	netlab.UDPEcho(lab.ListenPacket(netlab.Client, "udp", ":53"))
	netlab.EchoServer(lab.Listen(netlab.Client, "tcp", ":80"))
	netlab.EchoServer(lab.Listen(netlab.Client, "tcp", ":2379"))
	endpoints := `
[[hostEndpoint]]
name = "gw.app0"
labels = { role = "k8s-worker" }
interfaceName = "app0"
node = "gw"

[[hostEndpoint]]
name = "gw.lan0"
labels = { role = "k8s-worker" }
interfaceName = "lan0"
node = "gw"
`
	worker := `
[gateway]
nodeName = "gw"
failsafeInboundHostPorts = "none"
failsafeOutboundHostPorts = "none"

[[globalNetworkPolicy]]
name = "k8s-worker"
selector = "role == 'k8s-worker'"
order = 0
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "TCP"
source = { nets = ["198.18.3.0/24"] }
destination = { ports = [22] }
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "ICMP"
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "TCP"
destination = { ports = [10250] }
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "TCP"
destination = { nets = ["198.18.1.2/32"], ports = [2379] }
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "UDP"
destination = { ports = [53, 67] }
` + endpoints
	d := startDaemon(t, lab, worker, "")
	c := checker{t}
	c.is("SSH from the management net lana->gw:22", lab.TCPWorks(netlab.LanA, netlab.GWLanA+":22", 2*time.Second), true)
	c.is("SSH from elsewhere client->gw:22 (no failsafes)", lab.TCPWorks(netlab.Client, netlab.GWApp+":22", shortWait), false)
	c.is("kubelet client->gw:10250", lab.TCPWorks(netlab.Client, netlab.GWApp+":10250", 2*time.Second), true)
	c.is("ICMP client->gw", lab.Ping(netlab.Client, netlab.GWApp), true)
	c.is("other port client->gw:8080", lab.TCPWorks(netlab.Client, netlab.GWApp+":8080", shortWait), false)
	c.is("egress DNS gw->client udp/53", lab.UDPWorks(netlab.GW, netlab.ClientIP+":53", 2*time.Second), true)
	c.is("egress etcd gw->client:2379", lab.TCPWorks(netlab.GW, netlab.ClientIP+":2379", 2*time.Second), true)
	c.is("egress other gw->client:80", lab.TCPWorks(netlab.GW, netlab.ClientIP+":80", shortWait), false)

	// Deny-all with Felix's default failsafe ports.
	d.write(`
[gateway]
nodeName = "gw"

[[globalNetworkPolicy]]
name = "deny-all"
selector = "all()"
types = ["Ingress", "Egress"]
[[globalNetworkPolicy.ingress]]
action = "Deny"
[[globalNetworkPolicy.egress]]
action = "Deny"
` + endpoints + engineTOML(d.dir, ""))
	s := d.Reload()
	c.is("deny-all reload succeeded", s.ReloadErrs == 0 && s.Gen == 2, true)
	c.is("failsafe SSH client->gw:22 under deny-all", lab.TCPWorks(netlab.Client, netlab.GWApp+":22", 2*time.Second), true)
	c.is("kubelet client->gw:10250 under deny-all", lab.TCPWorks(netlab.Client, netlab.GWApp+":10250", shortWait), false)
	c.is("ICMP client->gw under deny-all", lab.Ping(netlab.Client, netlab.GWApp), false)
}

// preDNAT with a real DNAT rule, NodePort style (Calico's pre-DNAT
// tutorial): the pinhole on the pre-DNAT port works, cluster-internal
// sources are allowed, everything else arriving on the endpoints is dropped.
func TestPreDNATNodePort(t *testing.T) {
	t.Parallel()
	lab := netlab.NewGateway(t)
	lab.MustNS(netlab.GW, "iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "30080", "-j", "DNAT", "--to-destination", netlab.MaintIP+":8080")
	lab.MustNS(netlab.GW, "iptables", "-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "30081", "-j", "DNAT", "--to-destination", netlab.MaintIP+":8081")
	for _, p := range []string{"8080", "8081"} {
		netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":"+p))
	}
	netlab.EchoServer(lab.Listen(netlab.GW, "tcp", ":22"))
	startDaemon(t, lab, `
[gateway]
nodeName = "gw"

[[hostEndpoint]]
name = "gw.app0"
labels = { host-endpoint = "ingress" }
interfaceName = "app0"
node = "gw"
expectedIPs = ["198.18.1.1"]

[[hostEndpoint]]
name = "gw.lan0"
labels = { host-endpoint = "ingress" }
interfaceName = "lan0"
node = "gw"
expectedIPs = ["198.18.3.1"]

[[globalNetworkPolicy]]
name = "allow-cluster-internal-ingress"
order = 10
preDNAT = true
applyOnForward = true
selector = "has(host-endpoint)"
[[globalNetworkPolicy.ingress]]
action = "Allow"
source = { nets = ["198.18.3.0/24"] }

[[globalNetworkPolicy]]
name = "drop-other-ingress"
order = 20
preDNAT = true
applyOnForward = true
selector = "has(host-endpoint)"
[[globalNetworkPolicy.ingress]]
action = "Deny"

[[globalNetworkPolicy]]
name = "allow-nodeport"
order = 10
preDNAT = true
applyOnForward = true
selector = "has(host-endpoint)"
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "TCP"
destination = { selector = "has(host-endpoint)", ports = [30080] }

[[globalNetworkPolicy]]
name = "allow-outbound-external"
order = 10
selector = "has(host-endpoint)"
[[globalNetworkPolicy.egress]]
action = "Allow"
`, "")
	c := checker{t}
	c.is("pinhole client->gw:30080 (DNAT to maint:8080)", lab.TCPWorks(netlab.Client, netlab.GWApp+":30080", 2*time.Second), true)
	c.is("other NodePort client->gw:30081", lab.TCPWorks(netlab.Client, netlab.GWApp+":30081", shortWait), false)
	c.is("direct client->maint:8080 (post-DNAT port is not the pinhole)", lab.TCPWorks(netlab.Client, netlab.MaintIP+":8080", shortWait), false)
	c.is("cluster-internal lana->gw:30081", lab.TCPWorks(netlab.LanA, netlab.GWLanA+":30081", 2*time.Second), true)
	c.is("failsafe client->gw:22 despite the pre-DNAT deny", lab.TCPWorks(netlab.Client, netlab.GWApp+":22", 2*time.Second), true)
}

// A "*" endpoint polices local traffic on every interface, lo included.
func TestStarEndpointLocal(t *testing.T) {
	t.Parallel()
	lab := netlab.NewGateway(t)
	for _, p := range []string{"8080", "9090"} {
		netlab.EchoServer(lab.Listen(netlab.GW, "tcp", ":"+p))
	}
	netlab.EchoServer(lab.Listen(netlab.LanB, "tcp", ":80"))
	startDaemon(t, lab, `
[gateway]
nodeName = "gw"

[[hostEndpoint]]
name = "gw.all"
labels = { role = "gateway" }
interfaceName = "*"
node = "gw"

[[globalNetworkPolicy]]
name = "host-in"
selector = "role == 'gateway'"
types = ["Ingress"]
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "TCP"
destination = { ports = [8080] }

[[globalNetworkPolicy]]
name = "host-out"
selector = "role == 'gateway'"
types = ["Egress"]
[[globalNetworkPolicy.egress]]
action = "Allow"
`, "")
	c := checker{t}
	c.is("client->gw:8080 via app0", lab.TCPWorks(netlab.Client, netlab.GWApp+":8080", 2*time.Second), true)
	c.is("client->gw:9090 via app0", lab.TCPWorks(netlab.Client, netlab.GWApp+":9090", shortWait), false)
	c.is("lana->gw:9090 via lan0", lab.TCPWorks(netlab.LanA, netlab.GWLanA+":9090", shortWait), false)
	c.is("gw->127.0.0.1:8080 via lo", lab.TCPWorks(netlab.GW, "127.0.0.1:8080", 2*time.Second), true)
	c.is("gw->127.0.0.1:9090 via lo", lab.TCPWorks(netlab.GW, "127.0.0.1:9090", shortWait), false)
	c.is("forwarded lana->lanb:80 (no AoF policy: allowed)", lab.TCPWorks(netlab.LanA, netlab.LanBIP+":80", 2*time.Second), true)
}

// doNotTrack policy: evaluated per packet in raw, Allow NOTRACKs the flow
// (both directions need untracked rules), Deny wins over normal policy,
// no match falls through to tracked policy.
func TestUntracked(t *testing.T) {
	t.Parallel()
	lab := netlab.NewGateway(t)
	netlab.EchoServer(lab.Listen(netlab.GW, "tcp", ":8080"))
	netlab.UDPEcho(lab.ListenPacket(netlab.GW, "udp", ":9000"))
	netlab.UDPEcho(lab.ListenPacket(netlab.GW, "udp", ":9001"))
	d := startDaemon(t, lab, `
[gateway]
nodeName = "gw"

[[hostEndpoint]]
name = "gw.app0"
labels = { net = "app" }
interfaceName = "app0"
node = "gw"
profiles = ["projectcalico-default-allow"]

[[globalNetworkPolicy]]
name = "dnt"
selector = "net == 'app'"
doNotTrack = true
applyOnForward = true
types = ["Ingress", "Egress"]
[[globalNetworkPolicy.ingress]]
action = "Deny"
protocol = "UDP"
destination = { ports = [9000] }
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "TCP"
destination = { ports = [8080] }
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "TCP"
source = { ports = [8080] }
`, "")
	c := checker{t}
	conn, err := lab.Dial(netlab.Client, "tcp", netlab.GWApp+":8080", 2*time.Second)
	ok := err == nil && readGreeting(conn) && netlab.Roundtrip(conn, "1", time.Second) && netlab.Roundtrip(conn, "2", time.Second)
	c.is("untracked Allow both ways: client->gw:8080 with round trips", ok, true)
	ct, _ := lab.Exec(netlab.GW, "conntrack", "-L", "-p", "tcp", "--dport", "8080")
	c.is("no conntrack entry for the untracked flow", !strings.Contains(ct, "dport=8080"), true)
	if conn != nil {
		conn.Close()
	}
	c.is("untracked Deny beats the allow-all profile: udp/9000", lab.UDPWorks(netlab.Client, netlab.GWApp+":9000", shortWait), false)
	c.is("no untracked match falls through to tracked policy: udp/9001", lab.UDPWorks(netlab.Client, netlab.GWApp+":9001", 2*time.Second), true)
	s := d.Stats()
	t.Logf("untracked stage queued %d packets (per packet, by definition)", s.Queued["untracked"])
	c.is("untracked stage queues every packet (>= 8 for the TCP exchange)", s.Queued["untracked"] >= 8, true)
}

// Egress of DNAT'd local traffic is judged in mangle POSTROUTING on the
// post-DNAT tuple and the re-routed out-interface (spec §2.1).
func TestDNATLocalEgress(t *testing.T) {
	t.Parallel()
	lab := netlab.NewGateway(t)
	for _, p := range []string{"22", "80"} {
		netlab.EchoServer(lab.Listen(netlab.Maint, "tcp", ":"+p))
	}
	// 198.18.9.9 is a service address the gateway DNATs to the maintenance host.
	lab.MustNS(netlab.GW, "ip", "route", "add", "198.18.9.9/32", "dev", "app0")
	for _, p := range []string{"22", "80"} {
		lab.MustNS(netlab.GW, "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "198.18.9.9", "--dport", p,
			"-j", "DNAT", "--to-destination", netlab.MaintIP+":"+p)
	}
	d := startDaemon(t, lab, `
[gateway]
nodeName = "gw"
failsafeOutboundHostPorts = "none"

[[hostEndpoint]]
name = "gw.maint0"
labels = { net = "maint" }
interfaceName = "maint0"
node = "gw"

[[globalNetworkPolicy]]
name = "maint-out"
selector = "net == 'maint'"
types = ["Egress"]
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "TCP"
destination = { nets = ["198.18.2.2/32"], ports = [22] }
`, "")
	c := checker{t}
	c.is("gw->198.18.9.9:22 DNAT'd to maint:22, allowed on the post-DNAT tuple", lab.TCPWorks(netlab.GW, "198.18.9.9:22", 2*time.Second), true)
	c.is("gw->198.18.9.9:80 DNAT'd to maint:80, dropped", lab.TCPWorks(netlab.GW, "198.18.9.9:80", shortWait), false)
	c.is("gw->maint:80 directly, dropped by filter OUTPUT", lab.TCPWorks(netlab.GW, netlab.MaintIP+":80", shortWait), false)
	s := d.Stats()
	// An Allow there only returns in Calico: NONE, in the counters too.
	c.is("output stage decided the DNAT'd flows (none >= 1, dropped >= 1)", s.None["output"] >= 1 && s.Dropped["output"] >= 1, true)
}
