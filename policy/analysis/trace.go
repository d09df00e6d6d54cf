package analysis

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
)

// traceLine is the part of a verdict trace line (engine/trace) a flow is
// rebuilt from.
type traceLine struct {
	Type     string `json:"type"`
	Stage    string `json:"stage"`
	In       string `json:"in"`
	Out      string `json:"out"`
	Proto    string `json:"proto"`
	Src      string `json:"src"`
	Dst      string `json:"dst"`
	SPort    *int   `json:"sport"`
	DPort    *int   `json:"dport"`
	ICMPType *int   `json:"icmp_type"`
	ICMPCode *int   `json:"icmp_code"`
	CT       string `json:"ct"`
	Note     string `json:"note"`
	Policy   string `json:"policy"`
	Rule     *int32 `json:"rule"`
	Verdict  string `json:"verdict"`
}

// TraceStats counts what FlowsFromTrace read.
type TraceStats struct {
	Lines    int // lines read
	Verdicts int // verdict lines used
	Skipped  int // verdict lines without a usable packet (malformed, not IP)
}

var protoNums = map[string]uint8{"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "sctp": 132, "udplite": 136}

func (l *traceLine) packet() (classify.Packet, bool) {
	var p classify.Packet
	src, err1 := netip.ParseAddr(l.Src)
	dst, err2 := netip.ParseAddr(l.Dst)
	if err1 != nil || err2 != nil || src.Is4() != dst.Is4() {
		return p, false
	}
	p.Src, p.Dst = src, dst
	p.Family = classify.IPv6
	if src.Is4() {
		p.Family = classify.IPv4
	}
	if n, ok := protoNums[l.Proto]; ok {
		p.Proto = n
	} else if n, err := strconv.ParseUint(l.Proto, 10, 8); err == nil {
		p.Proto = uint8(n)
	} else {
		return p, false
	}
	if l.SPort != nil && l.DPort != nil {
		p.SrcPort, p.DstPort = uint16(*l.SPort), uint16(*l.DPort)
	}
	if l.ICMPType != nil && l.ICMPCode != nil {
		p.ICMPType, p.ICMPCode = uint8(*l.ICMPType), uint8(*l.ICMPCode)
	}
	if (p.HasPorts() && l.SPort == nil) || (p.HasICMP() && l.ICMPType == nil) || strings.HasPrefix(l.Note, "fragment") {
		p.Class = classify.Fragment
	}
	return p, true
}

// flowKey groups the lines of one flow: on the way in by protocol, source
// and source port (or ICMP type, code and destination) and in-interface,
// which stay the same across DNAT; locally originated flows by their
// whole tuple and out-interface.
type flowKey struct {
	out       bool
	proto     uint8
	src, dst  netip.Addr
	sp, dp    uint16
	icmp      uint16
	ifc       string
	fragments bool
}

type traceFlow struct {
	pre, post *classify.Packet
	in, out   string
	toLocal   bool
	forward   bool
	fromLocal bool
	lines     int
}

// FlowsFromTrace rebuilds flows from a verdict trace (nfgate run's
// traceFile, or nfgate replay's output): every stage line of a flow's
// first packet, grouped; the stages a flow passed give its path, a
// preDNAT or untracked line before a filter line with another destination
// gives its DNAT. iface returns the interface of a name (with its
// addresses, for endpoints bound by expectedIPs); local reports the
// gateway's own addresses, used when the trace shows no filter stage of a
// flow (dropped or accepted before it).
func FlowsFromTrace(r io.Reader, iface func(string) policy.Interface, local func(netip.Addr) bool) ([]Flow, TraceStats, error) {
	var st TraceStats
	flows := map[flowKey]*traceFlow{}
	var order []flowKey
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		st.Lines++
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		var l traceLine
		if err := json.Unmarshal(line, &l); err != nil {
			return nil, st, fmt.Errorf("line %d: %v", st.Lines, err)
		}
		if l.Type != "verdict" {
			continue
		}
		p, ok := l.packet()
		if !ok || strings.HasPrefix(l.Note, "malformed") || strings.HasPrefix(l.Note, "not-ip") {
			st.Skipped++
			continue
		}
		st.Verdicts++
		egress := l.Stage == "output" || (l.Stage == "untracked" && l.In == "" && l.Out != "")
		k := flowKey{out: egress, proto: p.Proto, src: p.Src, sp: p.SrcPort, fragments: p.Class == classify.Fragment}
		if p.HasICMP() || !p.HasPorts() {
			k.icmp = uint16(p.ICMPType)<<8 | uint16(p.ICMPCode)
			k.dst = p.Dst
		}
		if egress {
			k.dst, k.dp, k.ifc = p.Dst, p.DstPort, l.Out
		} else {
			k.ifc = l.In
		}
		f := flows[k]
		if f == nil {
			f = &traceFlow{}
			flows[k] = f
			order = append(order, k)
		}
		f.lines++
		pp := p
		switch l.Stage {
		case "untracked", "preDNAT":
			if f.pre == nil {
				f.pre = &pp
			}
			if egress {
				f.fromLocal, f.out = true, l.Out
			} else {
				f.in = l.In
			}
		case "input":
			f.post, f.in, f.toLocal = &pp, l.In, true
		case "forward":
			f.post, f.in, f.out, f.forward = &pp, l.In, l.Out, true
		case "output":
			f.post, f.out, f.fromLocal = &pp, l.Out, true
			if f.pre == nil {
				f.pre = &pp
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, st, err
	}
	out := make([]Flow, 0, len(order))
	for _, k := range order {
		f := flows[k]
		fl := Flow{Count: f.lines}
		pre, post := f.pre, f.post
		if pre == nil {
			pre = post
		}
		fl.Pkt = *pre
		switch {
		case f.fromLocal:
			fl.Path = policy.Path{FromLocal: true, Out: iface(f.out)}
		case f.forward:
			fl.Path = policy.Path{In: iface(f.in), Out: iface(f.out)}
		case f.toLocal:
			fl.Path = policy.Path{In: iface(f.in), ToLocal: true}
		case local(pre.Dst):
			fl.Path = policy.Path{In: iface(f.in), ToLocal: true}
			fl.Guessed = "no filter stage in the trace: delivered locally (destination is the gateway's)"
		default:
			fl.Path = policy.Path{In: iface(f.in), Out: iface("")}
			fl.Guessed = "no filter stage in the trace: forwarded to an interface no endpoint names"
		}
		if post != nil && !f.fromLocal && (post.Dst != pre.Dst || post.DstPort != pre.DstPort) {
			fl.Path.DNATAddr = post.Dst
			if post.DstPort != pre.DstPort {
				fl.Path.DNATPort = post.DstPort
			}
		}
		out = append(out, fl)
	}
	return out, st, nil
}

// hitLine is what HitsFromTrace reads of a verdict line.
type hitLine struct {
	Type     string `json:"type"`
	Time     string `json:"time"`
	Hash     string `json:"hash"`
	Stage    string `json:"stage"`
	In       string `json:"in"`
	Out      string `json:"out"`
	Endpoint string `json:"endpoint"`
	Policy   string `json:"policy"`
	Rule     *int32 `json:"rule"`
	Reason   string `json:"reason"`
}

// HitsFromTrace counts, per rule of cfg, the decisions a verdict trace
// records (lines naming a policy or profile and a rule). A line carries no
// direction: it is the stage's (forward: the deciding endpoint's side).
func HitsFromTrace(r io.Reader, cfg *policy.Config) (*RuleHits, error) {
	h := &RuleHits{hits: map[ruleID]int{}}
	pols, profs, ifOf := map[string]int32{}, map[string]int32{}, map[string]string{}
	for i := range cfg.Policies {
		pols[cfg.Policies[i].Name] = int32(i)
	}
	for i := range cfg.Profiles {
		profs[cfg.Profiles[i].Name] = int32(i)
	}
	for _, e := range cfg.HostEndpoints {
		ifOf[e.Name] = e.InterfaceName
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l hitLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("line %d: %v", n, err)
		}
		if l.Type != "verdict" {
			continue
		}
		h.Verdicts++
		if h.First == "" {
			h.First = l.Time
		}
		h.Last = l.Time
		if l.Hash != "" && !slicesContains(h.Hashes, l.Hash) {
			h.Hashes = append(h.Hashes, l.Hash)
		}
		if l.Policy == "" || l.Rule == nil {
			continue
		}
		id := ruleID{rule: *l.Rule}
		var ok bool
		if l.Reason == "profile" {
			id.profile = true
			id.policy, ok = profs[l.Policy]
		} else {
			id.policy, ok = pols[l.Policy]
		}
		if !ok {
			continue
		}
		var dirs []policy.Dir
		switch l.Stage {
		case "output":
			dirs = []policy.Dir{policy.Egress}
		case "untracked":
			if l.In == "" {
				dirs = []policy.Dir{policy.Egress}
			} else {
				dirs = []policy.Dir{policy.Ingress}
			}
		case "forward":
			ifc := ifOf[l.Endpoint]
			switch {
			case ifc == l.In && ifc != l.Out:
				dirs = []policy.Dir{policy.Ingress}
			case ifc == l.Out && ifc != l.In:
				dirs = []policy.Dir{policy.Egress}
			default:
				dirs = []policy.Dir{policy.Ingress, policy.Egress}
			}
		default:
			dirs = []policy.Dir{policy.Ingress}
		}
		for _, d := range dirs {
			id.dir = d
			h.hits[id]++
		}
	}
	return h, sc.Err()
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
