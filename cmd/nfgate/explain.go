package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

func init() {
	commands["explain"] = subcommand{
		summary: "show how a packet passes every stage and why",
		run:     func(args []string) int { return runExplain(args, os.Stdout, os.Stderr) },
	}
}

// ifaceAddrs collects repeated --iface-addr IFACE=ADDR flags.
type ifaceAddrs map[string][]netip.Addr

func (m ifaceAddrs) String() string { return "" }

func (m ifaceAddrs) Set(s string) error {
	name, addr, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return errors.New("want IFACE=ADDR")
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return err
	}
	m[name] = append(m[name], a)
	return nil
}

// loadPolicy loads and validates a configuration (tests replace it).
var loadPolicy = func(path string) (*policy.Config, error) {
	l, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	return l.Policy, nil
}

var protoByName = map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132, "udplite": 136}

func parseProto(s string) (uint8, error) {
	if n, ok := protoByName[strings.ToLower(s)]; ok {
		return n, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("unknown protocol %q (TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or 1-255)", s)
	}
	return uint8(n), nil
}

var ctByName = map[string]classify.CTState{"new": classify.CTNew, "established": classify.CTEstablished,
	"related": classify.CTRelated, "invalid": classify.CTInvalid, "untracked": classify.CTUntracked}

// hostAddrs returns the addresses of a real host interface, or nil.
func hostAddrs(name string) []netip.Addr {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

type explainStage struct {
	Stage     string `json:"stage"`
	Interface string `json:"interface,omitempty"`
	Verdict   string `json:"verdict"`
	Endpoint  string `json:"endpoint,omitempty"`
	Tier      string `json:"tier,omitempty"`
	Policy    string `json:"policy,omitempty"`
	Profile   bool   `json:"profile,omitempty"`
	Rule      int32  `json:"rule"`
	Reason    string `json:"reason"`
	Logged    bool   `json:"logged,omitempty"`
	Where     string `json:"where,omitempty"`
	// Hook names the kernel hook when it is not the stage's usual one:
	// "postrouting" for DNAT'd local traffic (an Allow there only returns).
	Hook string `json:"hook,omitempty"`
}

type explainResult struct {
	Final  string         `json:"final"`
	Stages []explainStage `json:"stages"`
}

func runExplain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfgPath   = fs.String("config", "", "configuration file (TOML)")
		in        = fs.String("in", "", "arrival interface")
		out       = fs.String("out", "", "leaving interface (forwarded or locally originated traffic)")
		local     = fs.Bool("local", false, "delivered to the host itself")
		fromLocal = fs.Bool("from-local", false, "originated by the host itself")
		src       = fs.String("src", "", "source address")
		dst       = fs.String("dst", "", "destination address (before DNAT)")
		sport     = fs.Uint("sport", 0, "source port")
		dport     = fs.Uint("dport", 0, "destination port (before DNAT)")
		proto     = fs.String("proto", "", "protocol: TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number")
		icmpType  = fs.Uint("icmp-type", 0, "ICMP type")
		icmpCode  = fs.Uint("icmp-code", 0, "ICMP code")
		ct        = fs.String("ct", "new", "conntrack state: new, established, related, invalid, untracked")
		dnatTo    = fs.String("dnat-to", "", "destination after DNAT: ADDR or ADDR:PORT ([v6]:PORT)")
		outPre    = fs.String("out-before-dnat", "", "locally originated DNAT'd traffic: the interface the route chose before nat OUTPUT rewrote the destination (raw OUTPUT dispatch; default --out)")
		asJSON    = fs.Bool("json", false, "print JSON")
	)
	addrs := ifaceAddrs{}
	fs.Var(addrs, "iface-addr", "IFACE=ADDR: an interface address for endpoint matching by expectedIPs (repeatable; default: the host's own interfaces)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "nfgate explain: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return usage("unexpected argument %q", fs.Arg(0))
	}
	if *cfgPath == "" || *src == "" || *dst == "" || *proto == "" {
		return usage("--config, --src, --dst and --proto are required")
	}
	if *local && *out != "" {
		return usage("--local and --out exclude each other")
	}
	if !*fromLocal && *in == "" {
		return usage("--in is required unless --from-local")
	}
	if !*local && *out == "" {
		return usage("one of --out or --local is required")
	}
	if *sport > 65535 || *dport > 65535 || *icmpType > 255 || *icmpCode > 255 {
		return usage("port or ICMP field out of range")
	}
	pkt, err := buildPacket(*src, *dst, uint16(*sport), uint16(*dport), *proto, uint8(*icmpType), uint8(*icmpCode), *ct)
	if err != nil {
		return usage("%v", err)
	}

	iface := func(name string) policy.Interface {
		if a, ok := addrs[name]; ok {
			return policy.Interface{Name: name, Addrs: a}
		}
		return policy.Interface{Name: name, Addrs: hostAddrs(name)}
	}
	path := packetPath(*in, *out, *local, *fromLocal, iface)
	if *dnatTo != "" {
		if ap, err := netip.ParseAddrPort(*dnatTo); err == nil {
			path.DNATAddr, path.DNATPort = ap.Addr().Unmap(), ap.Port()
		} else if a, err := netip.ParseAddr(*dnatTo); err == nil {
			path.DNATAddr = a.Unmap()
		} else {
			return usage("--dnat-to %q: want ADDR or ADDR:PORT", *dnatTo)
		}
		if path.DNATAddr.Is4() != pkt.Dst.Is4() {
			return usage("--dnat-to %q is not of the packet's address family", *dnatTo)
		}
	}
	if *outPre != "" {
		if !*fromLocal || *dnatTo == "" {
			return usage("--out-before-dnat needs --from-local and --dnat-to")
		}
		path.OutBeforeDNAT = iface(*outPre)
	}

	cfg, err := loadPolicy(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "nfgate explain: %v\n", err)
		return 1
	}
	prog, err := policy.Compile(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "nfgate explain: %v\n", err)
		return 1
	}
	tr := prog.Walk(path, pkt)
	res := explainResult{Final: tr.Final.String(), Stages: []explainStage{}}
	for _, s := range tr.Stages {
		d := prog.Describe(s.Decision)
		es := explainStage{Stage: s.Stage.String(), Interface: s.Interface, Verdict: d.Verdict, Endpoint: d.Endpoint,
			Tier: d.Tier, Policy: d.Policy, Profile: d.Profile, Rule: d.Rule, Reason: d.Reason, Logged: d.Logged}
		if d.Pos.File != "" {
			es.Where = fmt.Sprintf("%s:%d", d.Pos.File, d.Pos.Line)
		}
		if s.Postrouting {
			es.Hook = "postrouting"
		}
		res.Stages = append(res.Stages, es)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return 1
		}
		return 0
	}
	fmt.Fprintf(stdout, "packet: %s\n", describePacket(&pkt))
	if path.DNATAddr.IsValid() {
		fmt.Fprintf(stdout, "dnat to: %s", path.DNATAddr)
		if path.DNATPort != 0 {
			fmt.Fprintf(stdout, " port %d", path.DNATPort)
		}
		fmt.Fprintln(stdout)
	}
	if len(tr.Stages) == 0 {
		fmt.Fprintln(stdout, "no stage polices this packet")
	}
	for _, s := range tr.Stages {
		fmt.Fprintf(stdout, "%-9s on %-8s %s\n", s.Stage, s.Interface, prog.Describe(s.Decision))
		if s.Postrouting {
			fmt.Fprintln(stdout, "          (DNAT'd local traffic is policed in mangle POSTROUTING: an Allow there only returns, the host's own OUTPUT rules decide)")
		}
	}
	fmt.Fprintf(stdout, "final: %s\n", tr.Final)
	return 0
}

func buildPacket(src, dst string, sport, dport uint16, proto string, icmpType, icmpCode uint8, ct string) (classify.Packet, error) {
	var p classify.Packet
	s, err := netip.ParseAddr(src)
	if err != nil {
		return p, fmt.Errorf("--src: %v", err)
	}
	d, err := netip.ParseAddr(dst)
	if err != nil {
		return p, fmt.Errorf("--dst: %v", err)
	}
	s, d = s.Unmap(), d.Unmap()
	if s.Is4() != d.Is4() {
		return p, errors.New("--src and --dst must be of the same address family")
	}
	p.Src, p.Dst = s, d
	p.Family = classify.IPv6
	if s.Is4() {
		p.Family = classify.IPv4
	}
	if p.Proto, err = parseProto(proto); err != nil {
		return p, err
	}
	p.SrcPort, p.DstPort = sport, dport
	p.ICMPType, p.ICMPCode = icmpType, icmpCode
	st, ok := ctByName[strings.ToLower(ct)]
	if !ok {
		return p, fmt.Errorf("--ct %q: want new, established, related, invalid or untracked", ct)
	}
	p.CT = st
	p.Class = classify.OK
	return p, nil
}

func describePacket(p *classify.Packet) string {
	name := strconv.Itoa(int(p.Proto))
	for n, v := range protoByName {
		if v == p.Proto {
			name = n
		}
	}
	switch {
	case p.HasPorts():
		return fmt.Sprintf("%s %s -> %s (ct %s)", name, netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort), p.CT)
	case p.HasICMP():
		return fmt.Sprintf("%s %s -> %s type %d code %d (ct %s)", name, p.Src, p.Dst, p.ICMPType, p.ICMPCode, p.CT)
	}
	return fmt.Sprintf("%s %s -> %s (ct %s)", name, p.Src, p.Dst, p.CT)
}

// packetPath is the way a packet takes through the host, from the flags
// explain and replay share: --in/--out for forwarded traffic, --local for
// traffic to the host, --from-local for traffic from it, both for traffic
// over lo (or the --in interface).
func packetPath(in, out string, local, fromLocal bool, iface func(string) policy.Interface) policy.Path {
	path := policy.Path{FromLocal: fromLocal, ToLocal: local}
	switch {
	case fromLocal && local:
		lo := "lo"
		if in != "" {
			lo = in
		}
		path.In, path.Out = iface(lo), iface(lo)
	case fromLocal:
		path.Out = iface(out)
	case local:
		path.In = iface(in)
	default:
		path.In, path.Out = iface(in), iface(out)
	}
	return path
}
