package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

func init() {
	commands["check"] = subcommand{
		summary: "validate a configuration and show what it enforces",
		run:     func(args []string) int { return runCheck(args, os.Stdout, os.Stderr) },
	}
}

// loadConfig loads a configuration with everything check reports (tests replace it).
var loadConfig = config.Load

// hostInterfaces lists the host's interfaces and their addresses (tests replace it).
var hostInterfaces = func() []policy.Interface {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	out := make([]policy.Interface, 0, len(ifs))
	for _, ifc := range ifs {
		out = append(out, policy.Interface{Name: ifc.Name, Addrs: hostAddrs(ifc.Name)})
	}
	return out
}

// checkReport is what `nfgate check --json` prints. The text form shows the same.
type checkReport struct {
	OK     bool     `json:"ok"`
	Config string   `json:"config"`
	Files  []string `json:"files"`
	Hash   string   `json:"hash"`
	Node   string   `json:"node,omitempty"`
	// InterfaceExclude is Felix's interfaceExclude: names, or /regex/.
	InterfaceExclude []string          `json:"interfaceExclude"`
	Interfaces       []checkInterface  `json:"interfaces,omitempty"`
	Endpoints        []checkEndpoint   `json:"endpoints,omitempty"`
	Policies         []checkPolicy     `json:"policies,omitempty"`
	Failsafe         *checkFailsafe    `json:"failsafe,omitempty"`
	Warnings         []config.Diag     `json:"warnings"`
	Errors           []config.Diag     `json:"errors"`
	Engine           map[string]string `json:"engine,omitempty"`
}

type checkInterface struct {
	Name string `json:"name"`
	// Endpoint is the host endpoint whose normal and forward chains police
	// the interface ("" when not policed).
	Endpoint string `json:"endpoint,omitempty"`
	// How: "named", "expectedIPs", "*", "workload (unknown: dropped)"
	// (interfacePrefix: to Felix an unknown workload interface, whose
	// traffic to the host and forwarded traffic it drops) or "not policed".
	How string `json:"how"`
	// Excluded: interfaceExclude matches the interface, so no named endpoint
	// governs it (a "*" endpoint still does).
	Excluded  bool   `json:"excluded,omitempty"`
	Untracked string `json:"untracked,omitempty"`
	PreDNAT   string `json:"preDNAT,omitempty"`
}

type checkStage struct {
	Stage     string   `json:"stage"`     // untracked, preDNAT, normal, forward
	Direction string   `json:"direction"` // ingress, egress
	Policies  []string `json:"policies"`  // tier/name in evaluation order
	// Default is what happens when no policy decides.
	Default string `json:"default"`
}

type checkEndpoint struct {
	Name          string            `json:"name"`
	InterfaceName string            `json:"interfaceName,omitempty"`
	ExpectedIPs   []string          `json:"expectedIPs,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Profiles      []string          `json:"profiles,omitempty"`
	Stages        []checkStage      `json:"stages"`
}

type checkPolicy struct {
	Name    string   `json:"name"`
	Tier    string   `json:"tier"`
	Order   *float64 `json:"order,omitempty"`
	Kind    string   `json:"kind"` // normal, applyOnForward, preDNAT, doNotTrack; "staged " before it for a StagedGlobalNetworkPolicy
	Types   []string `json:"types"`
	Selects []string `json:"selects"`
}

type checkFailsafe struct {
	Inbound  []string `json:"inbound"`
	Outbound []string `json:"outbound"`
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (TOML)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	useHost := fs.Bool("host-interfaces", true, "resolve endpoints against this host's interfaces")
	addrs := ifaceAddrs{}
	fs.Var(addrs, "iface-addr", "IFACE=ADDR: an interface (and an address of it) to resolve endpoints against, in addition to or instead of the host's (repeatable)")
	var names stringList
	fs.Var(&names, "iface", "IFACE: an interface without addresses to resolve endpoints against (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: nfgate check --config FILE [--json] [--host-interfaces=false] [--iface IFACE] [--iface-addr IFACE=ADDR]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}

	rep := checkReport{Config: *cfgPath, Warnings: []config.Diag{}, Errors: []config.Diag{}}
	l, err := loadConfig(*cfgPath)
	if l != nil {
		rep.Files, rep.Hash = l.Files, hex.EncodeToString(l.Hash[:])
		rep.Warnings = append(rep.Warnings, l.Warnings...)
		for _, p := range configPermProblems(l.Files) {
			rep.Warnings = append(rep.Warnings, config.Diag{Msg: p + " (`nfgate run` refuses it)"})
		}
	}
	var prog *policy.Program
	if err == nil {
		prog, err = policy.Compile(l.Policy)
	}
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			rep.Errors = append(rep.Errors, errs...)
		} else {
			rep.Errors = append(rep.Errors, config.Diag{File: *cfgPath, Msg: err.Error()})
		}
		return printCheck(&rep, *asJSON, stdout, stderr)
	}
	rep.OK = true
	ifaces := checkInterfaces(*useHost, addrs, names)
	fillCheck(&rep, l, prog, ifaces, *useHost || len(ifaces) > 0)
	return printCheck(&rep, *asJSON, stdout, stderr)
}

// stringList collects a repeated string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// checkInterfaces merges the host's interfaces (when asked) with the ones
// named on the command line, sorted by name.
func checkInterfaces(useHost bool, addrs ifaceAddrs, names []string) []policy.Interface {
	byName := map[string]*policy.Interface{}
	var order []string
	add := func(name string, as ...netip.Addr) {
		ifc, ok := byName[name]
		if !ok {
			ifc = &policy.Interface{Name: name}
			byName[name] = ifc
			order = append(order, name)
		}
		ifc.Addrs = append(ifc.Addrs, as...)
	}
	if useHost {
		for _, ifc := range hostInterfaces() {
			add(ifc.Name, ifc.Addrs...)
		}
	}
	for _, n := range names {
		add(n)
	}
	for n, as := range addrs {
		add(n, as...)
	}
	sort.Strings(order)
	out := make([]policy.Interface, 0, len(order))
	for _, n := range order {
		out = append(out, *byName[n])
	}
	return out
}

func fillCheck(rep *checkReport, l *config.Loaded, prog *policy.Program, ifaces []policy.Interface, ifacesKnown bool) {
	cfg := prog.Config()
	st := &cfg.Settings
	rep.Node = st.NodeName
	rep.InterfaceExclude = []string{}
	for _, re := range st.InterfaceExclude {
		rep.InterfaceExclude = append(rep.InterfaceExclude, config.ExcludePattern(re))
	}
	warn := func(pos policy.Pos, res, field, format string, args ...any) {
		rep.Warnings = append(rep.Warnings, config.Diag{File: pos.File, Line: pos.Line, Col: pos.Col, Resource: res, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	epName := func(id policy.EndpointID) string {
		if id == policy.NoEndpoint {
			return ""
		}
		return prog.Endpoint(id).Name
	}

	// Interfaces: which endpoint governs each (spec §1.1).
	present := map[string]bool{}
	governing := map[policy.EndpointID]bool{}
	for _, ifc := range ifaces {
		present[ifc.Name] = true
		b := prog.Bind(ifc)
		ci := checkInterface{Name: ifc.Name, Endpoint: epName(b.Filter), Untracked: epName(b.Untracked), PreDNAT: epName(b.PreDNAT)}
		ci.Excluded = !b.Workload && st.Excluded(ifc.Name)
		switch {
		case b.Workload:
			ci.How = "workload (unknown: dropped)"
		case b.Filter == policy.NoEndpoint && ci.Excluded:
			ci.How = "excluded (not policed)"
		case b.Filter == policy.NoEndpoint:
			ci.How = "not policed"
		default:
			governing[b.Filter] = true
			e := prog.Endpoint(b.Filter)
			switch {
			case e.Wildcard && ci.Excluded:
				ci.How = "* (excluded: no named endpoint)"
			case e.Wildcard:
				ci.How = "*"
			case e.InterfaceName == ifc.Name:
				ci.How = "named"
			default:
				ci.How = "expectedIPs"
			}
		}
		rep.Interfaces = append(rep.Interfaces, ci)
	}

	// Endpoints and, per stage and direction, their ordered policies.
	tiers := prog.Tiers()
	for _, e := range prog.Endpoints() {
		h := &cfg.HostEndpoints[e.ID]
		ce := checkEndpoint{Name: e.Name, InterfaceName: e.InterfaceName, Labels: e.Labels}
		for _, a := range h.ExpectedIPs {
			ce.ExpectedIPs = append(ce.ExpectedIPs, a.String())
		}
		for _, pi := range e.Profiles {
			pr := &cfg.Profiles[pi]
			if pr.Missing {
				ce.Profiles = append(ce.Profiles, pr.Name+" (missing: deny)")
				continue
			}
			ce.Profiles = append(ce.Profiles, pr.Name)
		}
		for _, kind := range []policy.PlanKind{policy.PlanUntracked, policy.PlanPreDNAT, policy.PlanNormal, policy.PlanForward} {
			plan := e.Plan(kind)
			for _, dir := range []policy.Dir{policy.Ingress, policy.Egress} {
				if kind == policy.PlanPreDNAT && dir == policy.Egress {
					continue
				}
				cs := checkStage{Stage: kind.String(), Direction: strings.ToLower(dir.String()), Policies: []string{}}
				for ti := range plan.Tiers {
					pt := &plan.Tiers[ti]
					for _, pi := range pt.Policies(dir) {
						name := tiers[pt.Tier].Name + "/" + cfg.Policies[pi].Name
						if cfg.Policies[pi].Staged {
							name += " (staged)"
						}
						cs.Policies = append(cs.Policies, name)
					}
				}
				cs.Default = stageDefault(cfg, kind, plan, dir, len(e.Profiles) > 0)
				if kind != policy.PlanNormal && len(cs.Policies) == 0 && cs.Default == "" {
					continue // nothing of this kind: the stage has no chain for this endpoint
				}
				ce.Stages = append(ce.Stages, cs)
			}
		}
		rep.Endpoints = append(rep.Endpoints, ce)

		if ifacesKnown {
			switch {
			case e.Wildcard:
			case e.InterfaceName != "" && st.Excluded(e.InterfaceName):
				warn(h.Pos, "HostEndpoint/"+e.Name, "interfaceName", "interface %q is excluded by interfaceExclude: Felix does not track it, so the endpoint polices nothing", e.InterfaceName)
			case e.InterfaceName != "" && !present[e.InterfaceName]:
				warn(h.Pos, "HostEndpoint/"+e.Name, "interfaceName", "interface %q does not exist on this host: the endpoint polices nothing until it appears", e.InterfaceName)
			case e.InterfaceName == "" && !governing[e.ID]:
				warn(h.Pos, "HostEndpoint/"+e.Name, "expectedIPs", "no interface of this host has any of the expected IPs: the endpoint polices nothing")
			}
		}
		if fp := e.Plan(policy.PlanForward); !fp.Empty() && onlyStaged(cfg, fp) {
			warn(h.Pos, "HostEndpoint/"+e.Name, "", "only staged policies have applyOnForward for this endpoint: as in Calico, its forwarded traffic is no longer allowed by default (NONE: the host's FORWARD rules decide), though staged policies enforce nothing")
		}
		if e.Wildcard && !e.Plan(policy.PlanUntracked).Empty() {
			warn(h.Pos, "HostEndpoint/"+e.Name, "interfaceName", "doNotTrack policy is not supported for a host endpoint with interfaceName \"*\"; it is ignored (as Felix does)")
		}
	}

	// Policies in evaluation order, with the endpoints each selects.
	for _, pi := range prog.SortedPolicies() {
		p := &cfg.Policies[pi]
		tierName := p.Tier
		if tierName == "" {
			tierName = "default"
		}
		cp := checkPolicy{Name: p.Name, Tier: tierName, Order: p.Order, Kind: policyKind(p), Selects: []string{}}
		for _, t := range p.Types {
			cp.Types = append(cp.Types, t.String())
		}
		for _, id := range prog.SelectedBy(int(pi)) {
			cp.Selects = append(cp.Selects, prog.Endpoint(id).Name)
		}
		rep.Policies = append(rep.Policies, cp)
		res := "GlobalNetworkPolicy/" + p.Name
		if p.Staged {
			res = "StagedGlobalNetworkPolicy/" + p.Name
		}
		switch {
		case len(cp.Selects) == 0 && (p.NamespaceSelector != "" || p.ServiceAccountSelector != ""):
			warn(p.Pos, res, "selector", "selects no host endpoint of node %q: with namespaceSelector or serviceAccountSelector, Felix evaluates %s", st.NodeName, p.Selector)
		case len(cp.Selects) == 0:
			warn(p.Pos, res, "selector", "selects no host endpoint of node %q", st.NodeName)
		}
	}

	rep.Failsafe = &checkFailsafe{Inbound: failsafeStrings(st.FailsafeInbound), Outbound: failsafeStrings(st.FailsafeOutbound)}
	// Any host endpoint means a default deny for local traffic on its interfaces.
	if len(cfg.HostEndpoints) > 0 && !hasSSHFailsafe(st.FailsafeInbound) {
		warn(policy.Pos{File: rep.Config}, "", "gateway.failsafeInboundHostPorts", "tcp:22 is not an inbound failsafe port while host endpoints impose a default deny on local traffic: make sure policy allows your SSH access")
	}
	rt := l.Runtime
	rep.Engine = map[string]string{
		"queueBase": strconv.Itoa(int(rt.QueueBase)), "queues": strconv.Itoa(rt.Queues),
		"failureMode": rt.FailureMode.String(), "markMask": fmt.Sprintf("%#08x", rt.MarkMask),
		"traceFile": rt.TraceFile,
	}
}

// onlyStaged reports whether every policy of the plan is staged.
func onlyStaged(cfg *policy.Config, plan *policy.Plan) bool {
	for ti := range plan.Tiers {
		for _, dir := range []policy.Dir{policy.Ingress, policy.Egress} {
			for _, pi := range plan.Tiers[ti].Policies(dir) {
				if !cfg.Policies[pi].Staged {
					return false
				}
			}
		}
	}
	return true
}

// stageDefault says what happens at a stage when no policy decides (spec
// §3.1). Staged policies decide nothing and add no end-of-tier drop, but
// they do take away the forward default allow.
func stageDefault(cfg *policy.Config, kind policy.PlanKind, plan *policy.Plan, dir policy.Dir, hasProfiles bool) string {
	inDir, enforced := false, false // a policy, an enforced (not staged) policy in this direction
	for ti := range plan.Tiers {
		for _, pi := range plan.Tiers[ti].Policies(dir) {
			inDir, enforced = true, enforced || !cfg.Policies[pi].Staged
		}
	}
	switch kind {
	case policy.PlanUntracked, policy.PlanPreDNAT:
		if !inDir {
			return ""
		}
		return "continue (no default drop)"
	case policy.PlanNormal:
		if hasProfiles {
			return "end-of-tier deny, else profiles then deny"
		}
		if enforced {
			return "end-of-tier deny"
		}
		return "deny (no policy, no profile)"
	case policy.PlanForward:
		switch {
		case plan.Empty():
			return "allow (no applyOnForward policy)"
		case enforced:
			return "end-of-tier deny"
		default:
			return "none (host FORWARD rules decide)"
		}
	}
	return ""
}

func policyKind(p *policy.GlobalNetworkPolicy) string {
	k := "normal"
	switch {
	case p.DoNotTrack:
		k = "doNotTrack"
	case p.PreDNAT:
		k = "preDNAT"
	case p.ApplyOnForward:
		k = "applyOnForward"
	}
	if p.Staged {
		return "staged " + k
	}
	return k
}

func protoName(n uint8) string {
	switch n {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 132:
		return "sctp"
	}
	return strconv.Itoa(int(n))
}

func failsafeStrings(ps []policy.ProtoPort) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		s := protoName(p.Protocol) + ":"
		if p.Net.IsValid() {
			if p.Net.Addr().Is6() {
				s += "[" + p.Net.String() + "]:"
			} else {
				s += p.Net.String() + ":"
			}
		}
		out = append(out, s+strconv.Itoa(int(p.Port)))
	}
	return out
}

func hasSSHFailsafe(ps []policy.ProtoPort) bool {
	for _, p := range ps {
		if p.Protocol == 6 && p.Port == 22 && !p.Net.IsValid() {
			return true
		}
	}
	return false
}

func printCheck(rep *checkReport, asJSON bool, stdout, stderr io.Writer) int {
	code := 0
	if !rep.OK {
		code = 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
		return code
	}
	if !rep.OK {
		for _, d := range rep.Errors {
			fmt.Fprintln(stderr, d.String())
		}
		for _, d := range rep.Warnings {
			fmt.Fprintln(stderr, "warning: "+d.String())
		}
		fmt.Fprintf(stderr, "nfgate check: %s: %d error(s)\n", rep.Config, len(rep.Errors))
		return code
	}
	short := rep.Hash
	if len(short) > 12 {
		short = short[:12]
	}
	fmt.Fprintf(stdout, "%s: OK (node %q, %d file(s), hash %s)\n", rep.Config, rep.Node, len(rep.Files), short)

	if len(rep.InterfaceExclude) > 0 {
		fmt.Fprintf(stdout, "\nExcluded interfaces (interfaceExclude; only a \"*\" endpoint polices them): %s\n", strings.Join(rep.InterfaceExclude, ", "))
	}
	fmt.Fprintln(stdout, "\nInterfaces:")
	if len(rep.Interfaces) == 0 {
		fmt.Fprintln(stdout, "  (none known: pass --iface or --iface-addr, or run on the gateway)")
	} else {
		tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  INTERFACE\tENDPOINT\tHOW\tUNTRACKED\tPRE-DNAT")
		for _, i := range rep.Interfaces {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", i.Name, dash(i.Endpoint), i.How, dash(i.Untracked), dash(i.PreDNAT))
		}
		tw.Flush()
	}

	fmt.Fprintln(stdout, "\nEndpoints:")
	if len(rep.Endpoints) == 0 {
		fmt.Fprintln(stdout, "  (none for this node: nothing is policed)")
	}
	for _, e := range rep.Endpoints {
		where := "interfaceName " + e.InterfaceName
		if e.InterfaceName == "" {
			where = "expectedIPs " + strings.Join(e.ExpectedIPs, ",")
		}
		fmt.Fprintf(stdout, "  %s (%s)\n", e.Name, where)
		tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
		for _, s := range e.Stages {
			pols := strings.Join(s.Policies, ", ")
			if pols == "" {
				pols = "-"
			}
			fmt.Fprintf(tw, "    %s %s:\t%s\t[%s]\n", s.Stage, s.Direction, pols, s.Default)
		}
		tw.Flush()
	}

	fmt.Fprintln(stdout, "\nPolicies (evaluation order):")
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	for _, p := range rep.Policies {
		order := "-"
		if p.Order != nil {
			order = strconv.FormatFloat(*p.Order, 'g', -1, 64)
		}
		fmt.Fprintf(tw, "  %s/%s\torder %s\t%s\t%s\tselects: %s\n", p.Tier, p.Name, order, p.Kind, strings.Join(p.Types, ","), dash(strings.Join(p.Selects, ", ")))
	}
	tw.Flush()

	fmt.Fprintln(stdout, "\nFailsafe ports (kernel rules, ahead of all policy):")
	fmt.Fprintf(stdout, "  inbound:  %s\n", dash(strings.Join(rep.Failsafe.Inbound, ", ")))
	fmt.Fprintf(stdout, "  outbound: %s\n", dash(strings.Join(rep.Failsafe.Outbound, ", ")))

	if len(rep.Warnings) > 0 {
		fmt.Fprintln(stdout, "\nWarnings:")
		for _, d := range rep.Warnings {
			fmt.Fprintln(stdout, "  "+d.String())
		}
	}
	return code
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
