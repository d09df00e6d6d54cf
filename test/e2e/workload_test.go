//go:build linux

package e2e

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nfgate/nfgate/test/netlab"
)

// Workload interfaces on a gateway (issue 11): an interface matching
// interfacePrefix ("cali") is an unknown workload interface to Felix,
// which drops what it sends to the host (ICMPv6 neighbour discovery
// excepted) and what is forwarded from or to it, unless the in-interface's
// host endpoint accepts the packet as part of an established flow; what
// the host sends to it is NONE. The live daemon must give what `nfgate
// explain` gives (which was checked on the real Felix v3.32.1): each check
// below compares the real packets with explain's verdict for them.
func TestWorkloadInterface(t *testing.T) {
	const policy = `
[[globalNetworkPolicy]]
name = "fwd-allow"
selector = "all == 'yes'"
applyOnForward = true
types = ["Ingress", "Egress"]
[[globalNetworkPolicy.ingress]]
action = "Allow"
[[globalNetworkPolicy.egress]]
action = "Allow"
`
	for _, c := range []struct {
		name     string
		endpoint string
	}{
		{"star", `
[[hostEndpoint]]
name = "gw.all"
labels = { all = "yes" }
interfaceName = "*"
node = "gw"
profiles = ["projectcalico-default-allow"]
`},
		{"named", `
[[hostEndpoint]]
name = "gw.app0"
labels = { all = "yes" }
interfaceName = "app0"
node = "gw"
`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			workloadCase(t, c.name == "star", `
[gateway]
nodeName = "gw"
defaultEndpointToHostAction = "Accept"
`+c.endpoint+policy)
		})
	}
}

const (
	wlNS    = "wl"
	wlIP    = "198.18.9.2"
	wlGW    = "198.18.9.1"
	wlIP6   = "2001:db8:9::2"
	wlGW6   = "2001:db8:9::1"
	wlIface = "cali0"
)

func workloadCase(t *testing.T, star bool, cfg string) {
	lab := netlab.NewGateway(t)
	lab.AddNS(wlNS)
	lab.Link(wlNS, "eth0", []string{wlIP + "/24", wlIP6 + "/64"}, netlab.GW, wlIface, []string{wlGW + "/24", wlGW6 + "/64"})
	lab.Route(wlNS, "default", "via", wlGW)
	netlab.EchoServer(lab.Listen(wlNS, "tcp", ":80"))
	netlab.EchoServer(lab.Listen(netlab.Client, "tcp", ":80"))
	netlab.EchoServer(lab.Listen(netlab.GW, "tcp", ":22"))
	netlab.EchoServer(lab.Listen(netlab.GW, "tcp", ":8080"))
	udp := lab.ListenPacket(wlNS, "udp", ":9998")
	// The host's own rule after nfgate's: a NONE from nfgate leaves the
	// packet to it, an ACCEPT would not.
	lab.MustNS(netlab.GW, "iptables", "-A", "OUTPUT", "-o", wlIface, "-p", "udp", "--dport", "9997", "-j", "DROP")
	udp2 := lab.ListenPacket(wlNS, "udp", ":9997")

	// A flow established before the daemon starts, client <-> workload;
	// a rule of the host's makes the namespace track connections from the
	// start (conntrack is enabled in a namespace only when a rule needs it).
	lab.MustNS(netlab.GW, "iptables", "-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED", "-j", "ACCEPT")
	pre, err := lab.Dial(netlab.Client, "tcp", wlIP+":80", 2*time.Second)
	if err != nil {
		t.Fatalf("before nfgate: client->workload: %v", err)
	}
	defer pre.Close()
	greet := make([]byte, 6)
	pre.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := pre.Read(greet); err != nil || !netlab.Roundtrip(pre, "x\n", 2*time.Second) {
		t.Fatalf("before nfgate: the flow does not work (%v)", err)
	}

	d := startDaemon(t, lab, cfg, "")
	c := checker{t}
	explain := func(args ...string) string {
		t.Helper()
		out, err := lab.Exec(netlab.GW, nfgateBin, append([]string{"explain", "--config", d.cfg, "--json"}, args...)...)
		if err != nil {
			t.Fatalf("explain %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		var res struct {
			Final string `json:"final"`
		}
		if i := strings.Index(out, "{"); i < 0 || json.Unmarshal([]byte(out[i:]), &res) != nil {
			t.Fatalf("explain output: %s", out)
		}
		return res.Final
	}
	// agree checks that the packets went as explain says: passes is
	// whether they got through; they should unless a verdict is DROP (a
	// NONE leaves them to the host's rules, which accept).
	agree := func(what string, passes bool, verdicts ...string) {
		t.Helper()
		want := true
		for _, v := range verdicts {
			if v == "DROP" {
				want = false
			}
		}
		c.is(what+" (explain: "+strings.Join(verdicts, ", ")+")", passes, want)
	}
	tcp := func(in, out, src, dst, port, ct string) string {
		where := []string{"--out", out}
		switch {
		case out == "local":
			where = []string{"--local"}
		case in == "local":
			where = []string{"--from-local", "--out", out}
		}
		args := append([]string{"--src", src, "--dst", dst, "--proto", "TCP", "--sport", "40000", "--dport", port, "--ct", ct}, where...)
		if in != "local" {
			args = append(args, "--in", in)
		}
		return explain(args...)
	}

	agree("workload -> gw:22, a failsafe port", lab.TCPWorks(wlNS, wlGW+":22", shortWait),
		tcp(wlIface, "local", wlIP, wlGW, "22", "new"))
	agree("workload -> gw:8080", lab.TCPWorks(wlNS, wlGW+":8080", shortWait),
		tcp(wlIface, "local", wlIP, wlGW, "8080", "new"))
	agree("workload -> client:80, forwarded", lab.TCPWorks(wlNS, netlab.ClientIP+":80", shortWait),
		tcp(wlIface, "app0", wlIP, netlab.ClientIP, "80", "new"))
	agree("client -> workload:80, forwarded", lab.TCPWorks(netlab.Client, wlIP+":80", shortWait),
		tcp("app0", wlIface, netlab.ClientIP, wlIP, "80", "new"))
	// gw -> workload: the SYN leaves (NONE), the SYN-ACK is dropped on the
	// way in, like every packet from a workload interface to the host.
	agree("gw -> workload:80 (SYN out, SYN-ACK in)", lab.TCPWorks(netlab.GW, wlIP+":80", shortWait),
		tcp("local", wlIface, wlGW, wlIP, "80", "new"), tcp(wlIface, "local", wlIP, wlGW, "40000", "established"))
	none := explain("--from-local", "--out", wlIface, "--src", wlGW, "--dst", wlIP, "--proto", "UDP", "--sport", "40000", "--dport", "9998")
	c.is("explain: gw -> workload UDP is NONE", none == "NONE", true)
	c.is("gw -> workload udp/9998: NONE, the host's rules pass it", udpArrives(t, lab, udp, wlIP+":9998"), true)
	c.is("gw -> workload udp/9997: NONE, the host's own DROP rule decides", udpArrives(t, lab, udp2, wlIP+":9997"), false)

	// The flow established before: the in-interface's endpoint forward
	// chain accepts it as ESTABLISHED, each way: from app0 (an endpoint in
	// both cases), from cali0 only through a "*" endpoint.
	agree("the established flow client <-> workload", netlab.Roundtrip(pre, "y\n", shortWait),
		tcp("app0", wlIface, netlab.ClientIP, wlIP, "80", "established"), tcp(wlIface, "app0", wlIP, netlab.ClientIP, "40000", "established"))
	if !star {
		c.is("explain: without a * endpoint, replies from the workload are dropped",
			tcp(wlIface, "app0", wlIP, netlab.ClientIP, "40000", "established") == "DROP", true)
	}

	// IPv6 neighbour discovery from the workload is accepted, an echo
	// request is not.
	lab.Exec(wlNS, "ip", "-6", "neigh", "flush", "dev", "eth0")
	pinged := lab.Ping(wlNS, wlGW6)
	neigh, _ := lab.Exec(wlNS, "ip", "-6", "neigh", "show", wlGW6, "dev", "eth0")
	icmp6 := func(typ string) string {
		return explain("--in", wlIface, "--local", "--src", wlIP6, "--dst", wlGW6, "--proto", "ICMPv6", "--icmp-type", typ)
	}
	agree("workload -> gw ICMPv6 neighbour solicitation: gw's address resolved ("+strings.TrimSpace(neigh)+")",
		strings.Contains(neigh, "lladdr"), icmp6("135"))
	agree("workload -> gw ICMPv6 echo request", pinged, icmp6("128"))

	// None of it was queued: the kernel rules decide workload traffic.
	for _, r := range d.Trace() {
		if r["in"] == wlIface || r["out"] == wlIface {
			t.Errorf("a workload-interface packet reached the queue: %v", r)
		}
	}
}

// udpArrives sends one datagram from the gateway to addr and reports
// whether pc (in the workload) receives it.
func udpArrives(t *testing.T, lab *netlab.Lab, pc net.PacketConn, addr string) bool {
	t.Helper()
	c, err := lab.Dial(netlab.GW, "udp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hi"))
	pc.SetReadDeadline(time.Now().Add(shortWait))
	buf := make([]byte, 16)
	n, _, err := pc.ReadFrom(buf)
	return err == nil && string(buf[:n]) == "hi"
}
