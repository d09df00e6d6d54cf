//go:build linux

package conformance

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nfgate/nfgate/test/netlab"
)

// side is one copy of the topology: client, gateway, server namespaces,
// a tracer in the gateway, and sockets to send probes from each place.
type side struct {
	name               string // "felix" or "nfgate"
	lab                *netlab.Lab
	client, gw, server string // lab-local namespace names
	tr                 *tracer
	cliFd, srvFd       int // AF_PACKET (SOCK_DGRAM) sockets on the client's/server's eth0
	cliIdx, srvIdx     int
	gwMAC0, gwMAC1     net.HardwareAddr
	gwRaw4, gwRaw6     int // IPPROTO_RAW sockets in the gateway
	ifName             map[uint32]string
	mu                 sync.Mutex
}

// nftTraceRules switches tracing on for every packet except the oracle's
// management link, and reports the conntrack state after the conntrack hook.
const nftTraceRules = `
table inet nfconf {
	chain st-new { }
	chain st-established { }
	chain st-related { }
	chain st-invalid { }
	chain st-untracked { }
	chain pre { type filter hook prerouting priority -350; iifname != "fxmgmt" meta nftrace set 1; }
	chain out { type filter hook output priority -350; oifname != "fxmgmt" meta nftrace set 1; }
	chain prect { type filter hook prerouting priority -190; ct state vmap { new : jump st-new, established : jump st-established, related : jump st-related, invalid : jump st-invalid, untracked : jump st-untracked }; }
	chain outct { type filter hook output priority -190; ct state vmap { new : jump st-new, established : jump st-established, related : jump st-related, invalid : jump st-invalid, untracked : jump st-untracked }; }
}
`

// buildSide creates the namespaces of one side in lab.
func buildSide(t interface {
	Helper()
	Fatalf(string, ...any)
}, lab *netlab.Lab, name string) *side {
	t.Helper()
	p := name[:1]
	s := &side{name: name, lab: lab, client: p + "client", gw: p + "gw", server: p + "server", ifName: map[uint32]string{}}
	for _, n := range []string{s.client, s.gw, s.server} {
		lab.AddNS(n)
	}
	lab.Router(s.gw)
	var gw0, gw1 []string
	for _, a := range gwAddrs["eth0"] {
		gw0 = append(gw0, prefixFor(a))
	}
	for _, a := range gwAddrs["eth1"] {
		gw1 = append(gw1, prefixFor(a))
	}
	lab.Link(s.client, "eth0", []string{prefixFor(clientIP4), prefixFor(clientIP6)}, s.gw, "eth0", gw0)
	lab.Link(s.server, "eth0", []string{prefixFor(serverIP4), prefixFor(serverIP6)}, s.gw, "eth1", gw1)
	lab.Route(s.client, "default", "via", "198.18.1.1")
	lab.Route(s.client, "default", "via", "2001:db8:1::1")
	lab.Route(s.server, "default", "via", "198.18.2.1")
	lab.Route(s.server, "default", "via", "2001:db8:2::1")
	lab.Route(s.gw, "default", "via", serverIP4.String())
	lab.Route(s.gw, "default", "via", serverIP6.String())
	lab.Route(s.gw, vipv4.String(), "via", clientIP4.String())
	lab.Route(s.gw, vipv6.String(), "via", clientIP6.String())
	lab.MustNS(s.gw, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
		"net.ipv4.conf.eth0.rp_filter=0", "net.ipv4.conf.eth1.rp_filter=0",
		"net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.eth0.send_redirects=0", "net.ipv4.conf.eth1.send_redirects=0",
		"net.ipv6.conf.all.accept_ra=0")
	for _, r := range dnatRules {
		for _, chain := range []string{"PREROUTING", "OUTPUT"} {
			if (chain == "PREROUTING" && !r.Prerouts) || (chain == "OUTPUT" && !r.Output) {
				continue
			}
			ipt := "iptables-nft"
			to := r.To.String()
			if r.VIP.Is6() {
				ipt = "ip6tables-nft"
				if r.ToPort != 0 {
					to = "[" + to + "]"
				}
			}
			if r.ToPort != 0 {
				to += fmt.Sprintf(":%d", r.ToPort)
			}
			args := []string{"-w", "-t", "nat", "-A", chain, "-d", r.VIP.String()}
			if r.Proto != 0 {
				pn := map[uint8]string{protoTCP: "tcp", protoUDP: "udp"}[r.Proto]
				args = append(args, "-p", pn, "--dport", fmt.Sprint(r.Port))
			}
			args = append(args, "-j", "DNAT", "--to-destination", to)
			lab.MustNS(s.gw, ipt, args...)
		}
	}
	f, err := os.CreateTemp("", "nfconf-*.nft")
	if err != nil {
		t.Fatalf("%v", err)
	}
	f.WriteString(nftTraceRules)
	f.Close()
	defer os.Remove(f.Name())
	lab.MustNS(s.gw, "nft", "-f", f.Name())

	tr, err := openTracer("/run/netns/" + lab.NS(s.gw))
	if err != nil {
		t.Fatalf("%v", err)
	}
	s.tr = tr
	if err := s.openSockets(); err != nil {
		t.Fatalf("%s: sockets: %v", name, err)
	}
	return s
}

func prefixFor(a netip.Addr) string {
	if a.Is4() {
		return a.String() + "/24"
	}
	return a.String() + "/64"
}

func (s *side) openSockets() error {
	var err error
	pkt := func(ns string, fd, idx *int) error {
		return s.lab.Do(ns, func() error {
			ifc, err := net.InterfaceByName("eth0")
			if err != nil {
				return err
			}
			*idx = ifc.Index
			*fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			return err
		})
	}
	if err = pkt(s.client, &s.cliFd, &s.cliIdx); err != nil {
		return err
	}
	if err = pkt(s.server, &s.srvFd, &s.srvIdx); err != nil {
		return err
	}
	return s.lab.Do(s.gw, func() error {
		for _, n := range []string{"eth0", "eth1", "lo"} {
			ifc, err := net.InterfaceByName(n)
			if err != nil {
				return err
			}
			s.ifName[uint32(ifc.Index)] = n
			switch n {
			case "eth0":
				s.gwMAC0 = ifc.HardwareAddr
			case "eth1":
				s.gwMAC1 = ifc.HardwareAddr
			}
		}
		var err error
		if s.gwRaw4, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW); err != nil {
			return err
		}
		s.gwRaw6, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		return err
	})
}

func (s *side) close() {
	if s.tr != nil {
		s.tr.close()
	}
	for _, fd := range []int{s.cliFd, s.srvFd, s.gwRaw4, s.gwRaw6} {
		if fd > 0 {
			unix.Close(fd)
		}
	}
}

// send puts one probe on the wire from its origin.
func (s *side) send(o Origin, p *Packet) error {
	b, err := p.Bytes()
	if err != nil {
		return err
	}
	eth := uint16(unix.ETH_P_IP)
	if p.Dst.Is6() {
		eth = unix.ETH_P_IPV6
	}
	htons := func(v uint16) uint16 { return v<<8 | v>>8 }
	switch o {
	case FromClient:
		return unix.Sendto(s.cliFd, b, 0, &unix.SockaddrLinklayer{Protocol: htons(eth), Ifindex: s.cliIdx, Halen: 6, Addr: mac8(s.gwMAC0)})
	case FromServer:
		return unix.Sendto(s.srvFd, b, 0, &unix.SockaddrLinklayer{Protocol: htons(eth), Ifindex: s.srvIdx, Halen: 6, Addr: mac8(s.gwMAC1)})
	case FromGW:
		if p.Dst.Is4() {
			return unix.Sendto(s.gwRaw4, b, 0, &unix.SockaddrInet4{Addr: p.Dst.As4()})
		}
		return unix.Sendto(s.gwRaw6, b, 0, &unix.SockaddrInet6{Addr: p.Dst.As16()})
	}
	return fmt.Errorf("unknown origin %q", o)
}

func mac8(m net.HardwareAddr) [8]byte {
	var a [8]byte
	copy(a[:], m)
	return a
}

// probeAll sends the probes (their Packet.ID must be set and unique) and
// returns what the gateway's kernel did with each, by probe ID.
func (s *side) probeAll(probes []*Probe) (map[uint16]*Observed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tr.settle(100*time.Millisecond, time.Second)
	s.tr.take()
	for i, p := range probes {
		// A locally sent packet a firewall drops in OUTPUT fails with EPERM:
		// the trace has the verdict.
		if err := s.send(p.Origin, &p.Packet); err != nil && !errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("%s: send probe %d (%s): %w", s.name, p.ID, p.Describe(), err)
		}
		if i%8 == 7 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	s.tr.settle(300*time.Millisecond, 5*time.Second)
	evs, err := s.tr.take()
	if err != nil {
		return nil, err
	}
	return observe(evs), nil
}

// flushConntrack forgets every flow in the gateway (probes of the next
// case must all be new).
func (s *side) flushConntrack() error {
	out, err := s.lab.Exec(s.gw, "conntrack", "-F")
	if err != nil && !strings.Contains(out, "flow entries have been deleted") {
		return fmt.Errorf("%s: conntrack -F: %v: %s", s.name, err, out)
	}
	return nil
}
