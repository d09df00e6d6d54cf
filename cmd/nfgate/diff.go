package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/analysis"
	"github.com/nfgate/nfgate/policy/config"
)

func init() {
	commands["diff"] = subcommand{"show what a new configuration changes: the packets whose verdict differs, the flows a reload cuts",
		func(args []string) int { return runDiff(args, os.Stdout, os.Stderr) }}
}

// diffSide is one of the two configurations compared.
type diffSide struct {
	Config      string `json:"config"`
	Hash        string `json:"hash"`
	Description string `json:"description,omitempty"`
}

// diffDecision is a stage decision with names.
type diffDecision struct {
	Verdict    string `json:"verdict"`
	AcceptMark bool   `json:"acceptMark,omitempty"`
	Reason     string `json:"reason"`
	Endpoint   string `json:"endpoint,omitempty"`
	Tier       string `json:"tier,omitempty"`
	Policy     string `json:"policy,omitempty"`
	Profile    bool   `json:"profile,omitempty"`
	Rule       *int32 `json:"rule,omitempty"`
	File       string `json:"file,omitempty"`
	Line       int    `json:"line,omitempty"`
	Text       string `json:"text"`
}

// diffChange is one region whose verdict changes.
type diffChange struct {
	Family   int          `json:"family"`
	Src      string       `json:"src"`
	Dst      string       `json:"dst"`
	Proto    string       `json:"proto"`
	SPort    string       `json:"sport"`
	DPort    string       `json:"dport"`
	ICMPType string       `json:"icmpType"`
	ICMPCode string       `json:"icmpCode"`
	Old      diffDecision `json:"old"`
	New      diffDecision `json:"new"`
}

// diffRule is a rule with no counterpart in the other configuration.
type diffRule struct {
	Side string `json:"side"` // old or new
	Text string `json:"text"`
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
}

type diffStage struct {
	Stage string   `json:"stage"`
	In    []string `json:"in,omitempty"`
	Out   []string `json:"out,omitempty"`
	// Endpoints are the endpoints whose chains decide, old then new
	// (forward: in -> out), once per distinct pair.
	Endpoints [][2]string  `json:"endpoints"`
	Changes   []diffChange `json:"changes"`
	Rules     []diffRule   `json:"rules,omitempty"`
}

type flowSample struct {
	Flow    string `json:"flow"`
	Path    string `json:"path"`
	Old     string `json:"old"`
	New     string `json:"new"`
	Cut     bool   `json:"cut,omitempty"`
	Blocked bool   `json:"blocked,omitempty"`
	Guessed string `json:"guessed,omitempty"`
}

type flowReport struct {
	Source    string               `json:"source"`
	Records   int                  `json:"records"`
	Flows     int                  `json:"flows"`
	Live      int                  `json:"live"`
	Changed   int                  `json:"changed"`
	Cut       int                  `json:"cut"`
	Blocked   int                  `json:"blocked"`
	Note      string               `json:"note"`
	ByNewRule []analysis.RuleCount `json:"byNewRule"`
	ByOldRule []analysis.RuleCount `json:"byOldRule"`
	Sample    []flowSample         `json:"sample"`
	ElapsedMS float64              `json:"elapsedMs"`
}

type diffReport struct {
	Old        diffSide    `json:"old"`
	New        diffSide    `json:"new"`
	Equivalent bool        `json:"equivalent"`
	Complete   bool        `json:"complete"`
	Settings   []string    `json:"settings"`
	Stages     []diffStage `json:"stages"`
	Scopes     int         `json:"stagesCompared"`
	Examined   int         `json:"regionsExamined"`
	// CompileMS is compiling both configurations; ElapsedMS comparing them.
	CompileMS float64     `json:"compileMs"`
	ElapsedMS float64     `json:"elapsedMs"`
	Flows     *flowReport `json:"flows,omitempty"`
	// StoppedAt is the stage being compared when the region budget ran
	// out (later stages were not compared).
	StoppedAt string `json:"stoppedAt,omitempty"`
}

// diffInputs is what runDiff compares, for reload --dry-run too.
type diffInputs struct {
	old, new       *config.Loaded
	oldStrip       string // prefix of the old files' names to hide (the running copy's root)
	oldDesc        string
	oldName        string
	newName        string
	pid            int // the daemon, for --flows live (0: this network namespace)
	flows          string
	asJSON         bool
	maxRegions     int
	sample         int
	addrs          ifaceAddrs
	in, out        string
	local, fromLoc bool
}

func runDiff(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("diff", flag.ContinueOnError)
	fs.SetOutput(stderr)
	newPath := fs.String("config", "", "the new configuration (TOML)")
	against := fs.String("against", "", "the configuration to compare with (the one running)")
	pid := fs.Int("pid", 0, "compare with what the daemon with this process id enforces")
	stats := fs.String("stats", "", "with --pid: the daemon's --stats file (default: from its command line)")
	in := diffInputs{addrs: ifaceAddrs{}}
	fs.StringVar(&in.flows, "flows", "", "flows to check: live (the conntrack table; with --pid, the daemon's), a verdict trace (JSON lines) or a capture (pcap, pcapng)")
	fs.BoolVar(&in.asJSON, "json", false, "print the report as JSON")
	fs.IntVar(&in.maxRegions, "max-regions", 200000, "give up after examining this many regions of packet space")
	fs.IntVar(&in.sample, "sample", 10, "changed flows to show")
	fs.Var(in.addrs, "iface-addr", "IFACE=ADDR: an interface's address, for endpoints bound by expectedIPs and for flows from a trace or capture (repeatable)")
	fs.StringVar(&in.in, "in", "", "capture: the interface its packets arrived on")
	fs.StringVar(&in.out, "out", "", "capture: the interface they leave by")
	fs.BoolVar(&in.local, "local", false, "capture: the packets are delivered to the host")
	fs.BoolVar(&in.fromLoc, "from-local", false, "capture: the packets are originated by the host")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: nfgate diff --config NEW (--against RUNNING | --pid PID) [--flows live|TRACE.jsonl|PCAP] [--json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *newPath == "" || (*against == "") == (*pid == 0) || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "nfgate diff: "+format+"\n", a...)
		return 2
	}
	// Both configurations load in parallel: at 10,000 rules each load
	// takes a good part of the time.
	var wg sync.WaitGroup
	var oldErr, newErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		in.new, newErr = config.Load(*newPath)
	}()
	if *pid != 0 {
		in.old, in.oldStrip, in.oldDesc, oldErr = runningConfig(*pid, *stats)
		in.oldName, in.pid = "running", *pid
	} else {
		in.old, oldErr = config.Load(*against)
		in.oldName = *against
	}
	wg.Wait()
	if oldErr != nil {
		return fail("%v", oldErr)
	}
	if newErr != nil {
		return fail("%s: %v", *newPath, newErr)
	}
	in.newName = *newPath
	return in.run(stdout, stderr)
}

// run compiles both configurations, diffs them, checks the flows and
// prints the report. Exit 0: no difference; 1: differences; 2: trouble.
func (in *diffInputs) run(stdout, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "nfgate diff: "+format+"\n", a...)
		return 2
	}
	t0 := time.Now()
	var po, pn *policy.Program
	var eo, en error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); pn, en = policy.Compile(in.new.Policy) }()
	po, eo = policy.Compile(in.old.Policy)
	wg.Wait()
	if eo != nil {
		return fail("old: %v", eo)
	}
	if en != nil {
		return fail("new: %v", en)
	}
	t1 := time.Now()
	res := analysis.Diff(po, pn, analysis.Options{MaxRegions: in.maxRegions})
	rep := &diffReport{
		Old:      diffSide{Config: in.oldName, Hash: hex.EncodeToString(in.old.Hash[:4]), Description: in.oldDesc},
		New:      diffSide{Config: in.newName, Hash: hex.EncodeToString(in.new.Hash[:4])},
		Settings: res.Settings, Scopes: res.Scopes, Examined: res.Examined, Complete: !res.Incomplete,
		Equivalent: res.Empty(), Stages: []diffStage{},
	}
	if rep.Settings == nil {
		rep.Settings = []string{}
	}
	for _, s := range res.Stages {
		rep.Stages = append(rep.Stages, in.stage(po, pn, &s))
	}
	if s := res.Stopped; s != nil {
		rep.StoppedAt = s.Kind.String()
		if len(s.In) > 0 {
			rep.StoppedAt += " in: " + strings.Join(s.In, ", ")
		}
		if len(s.Out) > 0 {
			rep.StoppedAt += " out: " + strings.Join(s.Out, ", ")
		}
	}
	rep.CompileMS, rep.ElapsedMS = ms(t1.Sub(t0)), ms(time.Since(t1))
	if in.flows != "" {
		fr, err := in.flowReport(po, pn)
		if err != nil {
			return fail("flows: %v", err)
		}
		rep.Flows = fr
	}
	code := 0
	if !rep.Equivalent {
		code = 1
	}
	if in.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
		return code
	}
	printDiff(stdout, rep)
	return code
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (in *diffInputs) stage(po, pn *policy.Program, s *analysis.StageDiff) diffStage {
	ds := diffStage{Stage: s.Kind.String(), In: s.In, Out: s.Out, Changes: []diffChange{}}
	for _, sc := range append([]analysis.Scope{s.Scope}, s.Joined...) {
		e := [2]string{callEndpoints(po, sc.Old), callEndpoints(pn, sc.New)}
		if !slices.Contains(ds.Endpoints, e) {
			ds.Endpoints = append(ds.Endpoints, e)
		}
	}
	for _, c := range s.Changes {
		f := map[string]string{}
		for _, kv := range c.Box.Fields() {
			f[kv[0]] = kv[1]
		}
		get := func(k string) string {
			if v, ok := f[k]; ok {
				return v
			}
			return "*"
		}
		ds.Changes = append(ds.Changes, diffChange{Family: int(c.Box.Fam), Src: get("src"), Dst: get("dst"), Proto: get("proto"),
			SPort: get("sport"), DPort: get("dport"), ICMPType: get("icmp-type"), ICMPCode: get("icmp-code"),
			Old: in.decision(po, c.Old, s.Kind, in.oldStrip), New: in.decision(pn, c.New, s.Kind, "")})
	}
	seen := map[string]bool{}
	for _, r := range s.Rules {
		p, strip, side := pn, "", "new"
		if r.Old {
			p, strip, side = po, in.oldStrip, "old"
		}
		text, pos := ruleText(p, &r.Rule)
		file := strings.TrimPrefix(pos.File, strip)
		key := side + text + file + strconv.Itoa(pos.Line)
		if seen[key] {
			continue
		}
		seen[key] = true
		ds.Rules = append(ds.Rules, diffRule{Side: side, Text: text, File: file, Line: pos.Line})
	}
	return ds
}

// callEndpoints names a stage call's endpoints.
func callEndpoints(p *policy.Program, c policy.StageCall) string {
	name := func(id policy.EndpointID) string {
		if n := p.EndpointName(id); n != "" {
			return n
		}
		return "-"
	}
	if c.Stage == policy.StageForward {
		return name(c.In) + " -> " + name(c.Out)
	}
	return name(c.Endpoint)
}

// ruleText describes a chain rule: action, tier/policy, direction and index.
func ruleText(p *policy.Program, r *policy.ChainRule) (string, policy.Pos) {
	if r.EndOfTier {
		return "end-of-tier drop of tier " + p.TierName(r.Tier), policy.Pos{}
	}
	reason := policy.ReasonRule
	if r.Profile {
		reason = policy.ReasonProfile
	}
	d := p.Describe(policy.Decision{Reason: reason, Tier: r.Tier, Policy: r.Policy, Rule: r.Rule, Dir: r.Dir, Endpoint: policy.NoEndpoint})
	kind := "policy " + d.Tier + "/" + d.Policy
	if d.Profile {
		kind = "profile " + d.Policy
	}
	dir := "ingress"
	if r.Dir == policy.Egress {
		dir = "egress"
	}
	s := fmt.Sprintf("%s %s %s rule %d", r.Action, kind, dir, r.Rule)
	if !r.Exact {
		s += " (too large to expand: its bounding box is searched)"
	}
	return s, d.Pos
}

// decision names a decision the way the diff shows it.
func (in *diffInputs) decision(p *policy.Program, d policy.Decision, k analysis.Kind, strip string) diffDecision {
	x := p.Describe(d)
	out := diffDecision{Verdict: x.Verdict, AcceptMark: d.AcceptMark, Reason: x.Reason, Endpoint: x.Endpoint, Tier: x.Tier,
		Policy: x.Policy, Profile: x.Profile, File: strings.TrimPrefix(x.Pos.File, strip), Line: x.Pos.Line}
	if d.Rule >= 0 {
		r := d.Rule
		out.Rule = &r
	}
	out.Text = decisionText(out, k.Stage == policy.StageUntracked || k.Stage == policy.StagePreDNAT)
	return out
}

func decisionText(d diffDecision, showMark bool) string {
	v := d.Verdict
	if showMark && d.AcceptMark {
		v += " (accept-mark)"
	}
	at := ""
	if d.File != "" {
		at = fmt.Sprintf(" (%s:%d)", d.File, d.Line)
	}
	switch d.Reason {
	case "rule":
		return fmt.Sprintf("%s %s/%s#%d%s", v, d.Tier, d.Policy, *d.Rule, at)
	case "profile":
		return fmt.Sprintf("%s profile %s#%d%s", v, d.Policy, *d.Rule, at)
	case "end-of-tier":
		return v + " end of tier " + d.Tier
	case "no-profile":
		return v + " no policy or profile decided"
	case "no-match":
		return v + " no rule matched"
	case "not-policed":
		return v + " not policed"
	case "default-allow-forward":
		return v + " no applyOnForward policy"
	case "failsafe":
		return v + " failsafe"
	case "earlier-stage":
		return v + " accepted by an earlier stage"
	}
	return v + " " + d.Reason
}

// flowReport reads the flows and checks them.
func (in *diffInputs) flowReport(po, pn *policy.Program) (*flowReport, error) {
	t0 := time.Now()
	var flows []analysis.Flow
	var source string
	var err error
	iface := func(name string) policy.Interface { return policy.Interface{Name: name, Addrs: in.addrs[name]} }
	switch in.flows {
	case "live":
		source = "the conntrack table (flows nfgate decided) of this network namespace"
		if in.pid != 0 {
			source = fmt.Sprintf("the conntrack table (flows nfgate decided) of process %d's network namespace", in.pid)
		}
		flows, err = liveFlows(in.pid, in.old.Runtime.MarkMask)
	default:
		var kind string
		flows, kind, err = in.fileFlows(iface, po, pn)
		source = kind + " " + in.flows
	}
	if err != nil {
		return nil, err
	}
	imp := analysis.Impact(po, pn, flows)
	fr := &flowReport{Source: source, Records: imp.Records, Flows: imp.Flows, Live: imp.Live, Changed: len(imp.Changed),
		Cut: imp.Cut, Blocked: imp.Blocked, ByNewRule: imp.ByNewRule, ByOldRule: imp.ByOldRule, Sample: []flowSample{}}
	if fr.ByNewRule == nil {
		fr.ByNewRule, fr.ByOldRule = []analysis.RuleCount{}, []analysis.RuleCount{}
	}
	if imp.Live > 0 {
		fr.Note = fmt.Sprintf("a reload re-checks the %d live flows: it will cut exactly the %d marked cut (as each sends its next packet); the reload reports them as cut", imp.Live, imp.Cut)
	} else {
		fr.Note = "these flows are not live: no reload cuts them, but new flows like them get the new verdicts"
	}
	if imp.Blocked > 0 {
		fr.Note += fmt.Sprintf("; %d flows are dropped by the new untracked (doNotTrack) policy packet by packet, which a reload does not count as cut", imp.Blocked)
	}
	for i, c := range imp.Changed {
		if i >= in.sample {
			break
		}
		fr.Sample = append(fr.Sample, flowSample{Flow: flowText(c.Pkt, c.Path), Path: pathText(c.Path),
			Old: traceText(po, c.Old, in.oldStrip), New: traceText(pn, c.New, ""), Cut: c.Cut, Blocked: c.Blocked, Guessed: c.Guessed})
	}
	fr.ElapsedMS = ms(time.Since(t0))
	return fr, nil
}

// fileFlows reads flows from a trace or a capture, by its first byte.
func (in *diffInputs) fileFlows(iface func(string) policy.Interface, po, pn *policy.Program) ([]analysis.Flow, string, error) {
	f, err := os.Open(in.flows)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	first, err := br.Peek(1)
	if err != nil {
		return nil, "", fmt.Errorf("%s: empty", in.flows)
	}
	if first[0] == '{' {
		local := map[netip.Addr]bool{}
		for _, as := range in.addrs {
			for _, a := range as {
				local[a.Unmap()] = true
			}
		}
		for _, p := range []*policy.Program{po, pn} {
			for _, h := range p.Config().HostEndpoints {
				for _, a := range h.ExpectedIPs {
					local[a.Unmap()] = true
				}
			}
		}
		fl, _, err := analysis.FlowsFromTrace(br, iface, func(a netip.Addr) bool { return local[a.Unmap()] })
		if err != nil {
			return nil, "", fmt.Errorf("%s: %v", in.flows, err)
		}
		return fl, "the verdict trace", nil
	}
	if !in.fromLoc && in.in == "" || !in.local && in.out == "" {
		return nil, "", errors.New("a capture needs its path: --in IF and --out IF, or --local, or --from-local")
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, "", err
	}
	src, err := openCapture(f)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %v", in.flows, err)
	}
	path := packetPath(in.in, in.out, in.local, in.fromLoc, iface)
	fl, err := captureFlows(src, path)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %v", in.flows, err)
	}
	return fl, "the capture", nil
}

// captureFlows takes the first packet of every flow of a capture (a TCP
// flow's SYN; a packet answering a flow already seen is not a new one).
func captureFlows(c capture, path policy.Path) ([]analysis.Flow, error) {
	type key struct {
		proto    uint8
		src, dst netip.Addr
		sp, dp   uint16
	}
	seen := map[key]int{}
	var out []analysis.Flow
	var dec classify.Decoder
	for {
		data, ci, err := c.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		lt, err := linkType(c, ci)
		if err != nil {
			return out, err
		}
		ip, kind, _ := ipPayload(lt, data)
		if kind != linkIP {
			continue
		}
		var p classify.Packet
		dec.Decode(ip, &p)
		if p.Class == classify.Malformed {
			continue
		}
		k := key{p.Proto, p.Src, p.Dst, p.SrcPort, p.DstPort}
		if p.HasICMP() {
			k.sp, k.dp = uint16(p.ICMPType), uint16(p.ICMPCode)
		}
		rev := key{p.Proto, p.Dst, p.Src, p.DstPort, p.SrcPort}
		if i, ok := seen[k]; ok {
			out[i].Count++
			continue
		}
		if _, ok := seen[rev]; ok && !p.HasICMP() {
			continue // a reply
		}
		if p.Proto == classify.ProtoTCP && p.TCPFlags&classify.TCPFlagSYN != 0 && p.TCPFlags&classify.TCPFlagACK != 0 {
			continue // a SYN-ACK answers a flow that started before the capture
		}
		p.CT = classify.CTNew
		seen[k] = len(out)
		out = append(out, analysis.Flow{Path: path, Pkt: p, Count: 1})
	}
}

func flowText(p classify.Packet, path policy.Path) string {
	proto := policy.ProtoName(uint32(p.Proto))
	var s string
	switch {
	case p.HasPorts():
		s = fmt.Sprintf("%s %s -> %s", proto, netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort))
	case p.HasICMP():
		s = fmt.Sprintf("%s %s -> %s type %d code %d", proto, p.Src, p.Dst, p.ICMPType, p.ICMPCode)
	default:
		s = fmt.Sprintf("%s %s -> %s", proto, p.Src, p.Dst)
	}
	if path.DNATAddr.IsValid() {
		to := path.DNATAddr.String()
		if path.DNATPort != 0 {
			to = netip.AddrPortFrom(path.DNATAddr, path.DNATPort).String()
		}
		s += " (DNAT to " + to + ")"
	}
	return s
}

func pathText(p policy.Path) string {
	name := func(i policy.Interface) string {
		if i.Name == "" {
			return "?"
		}
		return i.Name
	}
	switch {
	case p.FromLocal && p.ToLocal:
		return "local"
	case p.FromLocal:
		return "out " + name(p.Out)
	case p.ToLocal:
		return "in " + name(p.In)
	}
	return name(p.In) + " -> " + name(p.Out)
}

// traceText is a walk's outcome and the stage decision giving it.
func traceText(p *policy.Program, t policy.Trace, strip string) string {
	s, ok := analysis.Decider(t)
	if !ok {
		return t.Final.String() + " (not policed)"
	}
	x := p.Describe(s.Decision)
	d := diffDecision{Verdict: t.Final.String(), Reason: x.Reason, Tier: x.Tier, Policy: x.Policy, Profile: x.Profile,
		File: strings.TrimPrefix(x.Pos.File, strip), Line: x.Pos.Line}
	if s.Decision.Rule >= 0 {
		r := s.Decision.Rule
		d.Rule = &r
	}
	return s.Stage.String() + ": " + decisionText(d, false)
}

func printDiff(w io.Writer, r *diffReport) {
	old := fmt.Sprintf("%s (hash %s)", r.Old.Config, r.Old.Hash)
	if r.Old.Description != "" {
		old = r.Old.Description
	}
	fmt.Fprintf(w, "nfgate diff: %s -> %s (hash %s)\n", old, r.New.Config, r.New.Hash)
	if len(r.Settings) > 0 {
		fmt.Fprintln(w, "\nSettings:")
		for _, s := range r.Settings {
			fmt.Fprintln(w, "  "+s)
		}
	}
	regions := 0
	for _, s := range r.Stages {
		regions += len(s.Changes)
		where := ""
		if len(s.In) > 0 {
			where += "  in: " + strings.Join(s.In, ", ")
		}
		if len(s.Out) > 0 {
			where += "  out: " + strings.Join(s.Out, ", ")
		}
		var eps []string
		for _, e := range s.Endpoints {
			if e[0] == e[1] {
				eps = append(eps, e[0])
			} else {
				eps = append(eps, e[0]+" => "+e[1])
			}
		}
		fmt.Fprintf(w, "\n%s%s  (endpoints %s)\n", s.Stage, where, strings.Join(eps, "; "))
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  FAMILY\tSRC\tDST\tPROTO\tSPORT\tDPORT\tICMP\tOLD\tNEW")
		for _, c := range s.Changes {
			icmp := "*"
			if c.ICMPType != "*" || c.ICMPCode != "*" {
				icmp = c.ICMPType + "/" + c.ICMPCode
			}
			fmt.Fprintf(tw, "  ipv%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Family, c.Src, c.Dst, c.Proto, c.SPort, c.DPort, icmp, c.Old.Text, c.New.Text)
		}
		tw.Flush()
		if len(s.Rules) > 0 {
			fmt.Fprintln(w, "  rules without a counterpart on the other side:")
			for _, ru := range s.Rules {
				at := ""
				if ru.File != "" {
					at = fmt.Sprintf(" (%s:%d)", ru.File, ru.Line)
				}
				fmt.Fprintf(w, "    %s: %s%s\n", ru.Side, ru.Text, at)
			}
		}
	}
	if f := r.Flows; f != nil {
		fmt.Fprintf(w, "\nFlows from %s: %d records, %d flows (%d live); %d change verdict, %d cut by a reload, %d dropped by untracked policy.\n",
			f.Source, f.Records, f.Flows, f.Live, f.Changed, f.Cut, f.Blocked)
		fmt.Fprintln(w, "  "+f.Note+".")
		if len(f.ByNewRule) > 0 {
			fmt.Fprintln(w, "  changed flows by the rule deciding them now:")
			printCounts(w, f.ByNewRule)
			fmt.Fprintln(w, "  ... and before:")
			printCounts(w, f.ByOldRule)
		}
		if len(f.Sample) > 0 {
			fmt.Fprintf(w, "  sample (%d of %d):\n", len(f.Sample), f.Changed)
			tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
			for _, s := range f.Sample {
				mark := ""
				switch {
				case s.Cut:
					mark = "CUT"
				case s.Blocked:
					mark = "BLOCKED"
				}
				fmt.Fprintf(tw, "    %s\t%s\t%s\t=> %s\t%s\n", s.Flow, s.Path, s.Old, s.New, mark)
			}
			tw.Flush()
		}
	}
	fmt.Fprintln(w)
	switch {
	case !r.Complete:
		fmt.Fprintf(w, "INCOMPLETE: gave up after %d regions (--max-regions) comparing %s; the changes shown are real, others may be missing,\n"+
			"and later stages were not compared. The two policies share too few rules to narrow the search (an unrelated policy?).\n", r.Examined, r.StoppedAt)
	case r.Equivalent:
		fmt.Fprintf(w, "No difference: every packet gets the same verdict at every stage (%d stages compared, %d regions examined in %.0f ms; compiling took %.0f ms).\n", r.Scopes, r.Examined, r.ElapsedMS, r.CompileMS)
		return
	}
	fmt.Fprintf(w, "%d stage(s) differ in %d region(s) (%d stages compared, %d regions examined in %.0f ms; compiling took %.0f ms).\n", len(r.Stages), regions, r.Scopes, r.Examined, r.ElapsedMS, r.CompileMS)
}

func printCounts(w io.Writer, cs []analysis.RuleCount) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Flows > cs[j].Flows })
	for _, c := range cs {
		what := c.Reason
		if c.Policy != "" {
			what = fmt.Sprintf("%s/%s#%d", c.Tier, c.Policy, c.Rule)
			if c.Tier == "" {
				what = fmt.Sprintf("profile %s#%d", c.Policy, c.Rule)
			}
		} else if c.Tier != "" {
			what += " " + c.Tier
		}
		fmt.Fprintf(tw, "    %d\t%s\t%s\t%s\n", c.Flows, c.Verdict, c.Stage, what)
	}
	tw.Flush()
}

// reloadDryRun is `nfgate reload --dry-run`: the diff a reload of daemon
// pid would make, from the configuration it would load (cfgPath, else its
// --config) against what it runs, with the live flows its re-check would
// cut. Nothing is signalled. Exit 0: shown; 1: the configuration would be
// rejected (its errors are printed); 2: the running policy is unknown.
func reloadDryRun(pid int, stats, cfgPath string, asJSON bool, stdout, stderr io.Writer) int {
	daemonCfg, _, err := daemonArgs(pid)
	if err != nil {
		fmt.Fprintf(stderr, "nfgate reload: %v\n", err)
		return 2
	}
	if cfgPath == "" {
		cfgPath = daemonCfg
	}
	newLd, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "nfgate reload: --dry-run: %s would be rejected; the running policy would stay live:\n%v\n", cfgPath, err)
		return 1
	}
	in := diffInputs{new: newLd, newName: cfgPath, oldName: "running", pid: pid, flows: "live", asJSON: asJSON,
		maxRegions: 200000, sample: 20, addrs: ifaceAddrs{}}
	in.old, in.oldStrip, in.oldDesc, err = runningConfig(pid, stats)
	if err != nil {
		fmt.Fprintf(stderr, "nfgate reload: --dry-run: %v\n", err)
		return 2
	}
	if code := in.run(stdout, stderr); code == 2 {
		return 2
	}
	if !asJSON {
		fmt.Fprintln(stdout, "Dry run: nothing was reloaded.")
	}
	return 0
}
