package conformance

import (
	"net/netip"
)

// The topology both gateways share (identical addresses, in separate
// namespaces): a client on eth0, a server on eth1, a gateway routing
// between them with DNAT rules for a few service addresses (VIPs).
//
//	client eth0 198.18.1.2/24 2001:db8:1::2/64 --- eth0 gw eth1 --- eth0 server 198.18.2.2/24 2001:db8:2::2/64
//	gw eth0: 198.18.1.1/24, 198.18.1.100/24, 2001:db8:1::1/64, 2001:db8:1::100/64
//	gw eth1: 198.18.2.1/24, 2001:db8:2::1/64
//	gw routes: default via the server, 198.18.3.0/24 (the VIPs) via the client
//	DNAT (nat PREROUTING and OUTPUT):
//	  198.18.3.10          -> 198.18.2.2        (any protocol, ports kept)
//	  198.18.3.11 tcp 8080 -> 198.18.2.2:80, udp 8053 -> 198.18.2.2:53
//	  198.18.3.12 tcp 2222 -> 198.18.1.1:22     (to the gateway itself; PREROUTING only)
//	and the same with 2001:db8:3::10/11/12, 2001:db8:2::2 and 2001:db8:1::1.
var (
	clientIP4 = netip.MustParseAddr("198.18.1.2")
	clientIP6 = netip.MustParseAddr("2001:db8:1::2")
	serverIP4 = netip.MustParseAddr("198.18.2.2")
	serverIP6 = netip.MustParseAddr("2001:db8:2::2")

	gwAddrs = map[string][]netip.Addr{
		"eth0": {netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("198.18.1.100"),
			netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("2001:db8:1::100")},
		"eth1": {netip.MustParseAddr("198.18.2.1"), netip.MustParseAddr("2001:db8:2::1")},
		"lo":   {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
	}

	net1v4 = netip.MustParsePrefix("198.18.1.0/24")
	net2v4 = netip.MustParsePrefix("198.18.2.0/24")
	vipv4  = netip.MustParsePrefix("198.18.3.0/24")
	net1v6 = netip.MustParsePrefix("2001:db8:1::/64")
	net2v6 = netip.MustParsePrefix("2001:db8:2::/64")
	vipv6  = netip.MustParsePrefix("2001:db8:3::/64")

	// Addresses probes may use: the test ranges, minus the oracle's
	// management link (198.18.254.0/30) kept well clear of.
	testV4  = netip.MustParsePrefix("198.18.0.0/15")
	testV6  = netip.MustParsePrefix("2001:db8::/32")
	avoidV4 = netip.MustParsePrefix("198.18.254.0/23")
)

// dnatRule is one of the gateway's DNAT rules.
type dnatRule struct {
	VIP      netip.Addr
	Proto    uint8  // 0: any
	Port     uint16 // 0: any
	To       netip.Addr
	ToPort   uint16 // 0: keep
	Prerouts bool   // nat PREROUTING
	Output   bool   // nat OUTPUT
}

var dnatRules = func() []dnatRule {
	var r []dnatRule
	for _, f := range []struct {
		vip10, vip11, vip12, srv, gw netip.Addr
	}{
		{mustAddr("198.18.3.10"), mustAddr("198.18.3.11"), mustAddr("198.18.3.12"), serverIP4, mustAddr("198.18.1.1")},
		{mustAddr("2001:db8:3::10"), mustAddr("2001:db8:3::11"), mustAddr("2001:db8:3::12"), serverIP6, mustAddr("2001:db8:1::1")},
	} {
		r = append(r,
			dnatRule{VIP: f.vip10, To: f.srv, Prerouts: true, Output: true},
			dnatRule{VIP: f.vip11, Proto: protoTCP, Port: 8080, To: f.srv, ToPort: 80, Prerouts: true, Output: true},
			dnatRule{VIP: f.vip11, Proto: protoUDP, Port: 8053, To: f.srv, ToPort: 53, Prerouts: true, Output: true},
			dnatRule{VIP: f.vip12, Proto: protoTCP, Port: 2222, To: f.gw, ToPort: 22, Prerouts: true},
		)
	}
	return r
}()

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// isLocal reports whether a is one of the gateway's addresses (as a
// destination it is delivered locally). The IPv6 subnet-router anycast
// addresses of the gateway's subnets are local too (forwarding is on).
func isLocal(a netip.Addr) bool {
	for _, l := range gwAddrs {
		for _, x := range l {
			if x == a {
				return true
			}
		}
	}
	return a == net1v6.Addr() || a == net2v6.Addr()
}

// usable reports whether a probe may carry address a: inside the test
// ranges, not the management link, not a subnet's network or broadcast
// address, not loopback.
func usable(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	if a.Is4() {
		if !testV4.Contains(a) || avoidV4.Contains(a) {
			return false
		}
		for _, p := range []netip.Prefix{net1v4, net2v4, vipv4} {
			if a == p.Addr() || a == lastAddr(p) {
				return false
			}
		}
		return true
	}
	return testV6.Contains(a) && a != net1v6.Addr() && a != net2v6.Addr() && a != vipv6.Addr()
}

// Origin is where a probe is sent from.
type Origin string

const (
	FromClient Origin = "client" // arrives on the gateway's eth0
	FromServer Origin = "server" // arrives on the gateway's eth1
	FromGW     Origin = "gw"     // sent by the gateway itself
)

// Path is the way a probe takes through the gateway, as the kernel routes it.
type Path struct {
	In            string // arrival interface ("" when FromLocal, "lo" when local to local)
	Out           string // leaving interface ("" when delivered locally)
	OutBeforeDNAT string // the route before nat OUTPUT (locally originated), if different
	Local         bool   // delivered to the gateway
	FromLocal     bool   // sent by the gateway
	DNAT          netip.Addr
	DNATPort      uint16
}

// routeOut is the gateway's route for a destination (no DNAT).
func routeOut(dst netip.Addr) string {
	switch {
	case isLocal(dst):
		return "lo"
	case net1v4.Contains(dst) || net1v6.Contains(dst) || vipv4.Contains(dst) || vipv6.Contains(dst):
		return "eth0"
	default:
		return "eth1"
	}
}

// dnatFor returns the DNAT rule a packet meets at nat PREROUTING
// (prerouting) or nat OUTPUT.
func dnatFor(p *Packet, prerouting bool) (dnatRule, bool) {
	for _, r := range dnatRules {
		if r.VIP != p.Dst || (prerouting && !r.Prerouts) || (!prerouting && !r.Output) {
			continue
		}
		if r.Proto != 0 && (r.Proto != p.Proto || r.Port != p.DPort) {
			continue
		}
		return r, true
	}
	return dnatRule{}, false
}

// route computes a probe's path. nat: the packet is tracked (conntrack
// gives it a flow), so the nat table can DNAT it; packets conntrack
// calls INVALID or UNTRACKED never meet a nat rule.
func route(o Origin, p *Packet, nat bool) Path {
	var path Path
	switch o {
	case FromClient:
		path.In = "eth0"
	case FromServer:
		path.In = "eth1"
	case FromGW:
		path.FromLocal = true
	}
	dst := p.Dst
	if o == FromGW {
		path.Out = routeOut(dst)
		if r, ok := dnatFor(p, false); ok && nat {
			dst = r.To
			path.DNAT, path.DNATPort = r.To, r.ToPort
			if out := routeOut(dst); out != path.Out {
				path.OutBeforeDNAT, path.Out = path.Out, out
			}
		}
		if path.Out == "lo" {
			path.Out, path.In, path.Local = "lo", "lo", true
		}
		return path
	}
	if r, ok := dnatFor(p, true); ok && nat {
		dst = r.To
		path.DNAT, path.DNATPort = r.To, r.ToPort
	}
	if isLocal(dst) {
		path.Local = true
	} else {
		path.Out = routeOut(dst)
	}
	return path
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	b := a.AsSlice()
	bits := p.Bits()
	for i := range b {
		for j := 0; j < 8; j++ {
			if i*8+j >= bits {
				b[i] |= 0x80 >> j
			}
		}
	}
	r, _ := netip.AddrFromSlice(b)
	return r
}
