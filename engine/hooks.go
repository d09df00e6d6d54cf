package engine

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"github.com/nfgate/nfgate/policy"
)

// Stage numbers double as the queue range index: stage s uses queues
// QueueBase + s*Queues ... QueueBase + (s+1)*Queues - 1.
const numStages = 5

// Dispatch says which interfaces a stage polices.
type Dispatch struct {
	// CatchAll: a "*" host endpoint polices every interface except Except.
	CatchAll bool
	// Names: the policed interfaces (CatchAll false), or the interfaces a
	// catch-all does not police (CatchAll true). A trailing "+" is an
	// iptables prefix match (workload interface prefixes).
	Names []string
}

// Empty reports whether the stage polices nothing.
func (d Dispatch) Empty() bool { return !d.CatchAll && len(d.Names) == 0 }

// HookPlan is everything the kernel hooks are derived from. It is computed
// from the compiled policy and the current interfaces (PlanHooks) and
// rendered into iptables chains (Render).
type HookPlan struct {
	Marks     Marks
	QueueBase uint16
	Queues    int  // queues per stage
	FailOpen  bool // --queue-bypass
	Reject    bool // deny action REJECT (filter stages only)
	// InvalidDrop: drop ctstate INVALID at policed stages (Calico default).
	InvalidDrop bool
	FailsafeIn  []policy.ProtoPort
	FailsafeOut []policy.ProtoPort
	Untracked   Dispatch // raw PREROUTING (-i) / raw OUTPUT (-o)
	PreDNAT     Dispatch // mangle PREROUTING (-i)
	Filter      Dispatch // INPUT (-i), OUTPUT and DNAT'd POSTROUTING (-o), FORWARD (-i or -o)
	// Workload: the workload interface patterns ("cali+", from
	// interfacePrefix). nfgate knows no workload endpoint, and Felix drops
	// what an unknown workload interface sends to the host (but for
	// ICMPv6 router/neighbour messages) and what is forwarded from or to
	// it, unless the in-interface's host endpoint forward chain accepts it
	// as ESTABLISHED/RELATED. No verdict there depends on a packet's
	// policy, so these are static kernel rules: nothing is queued.
	Workload []string
}

// QueueRange returns the first and last queue of a stage.
func (p *HookPlan) QueueRange(s policy.Stage) (first, last uint16) {
	first = p.QueueBase + uint16(int(s)*p.Queues)
	return first, first + uint16(p.Queues-1)
}

// StageOfQueue maps a queue number back to its stage.
func StageOfQueue(base uint16, queues int, q uint16) (policy.Stage, bool) {
	if q < base || queues <= 0 {
		return 0, false
	}
	s := int(q-base) / queues
	if s >= numStages {
		return 0, false
	}
	return policy.Stage(s), true
}

// CheckQueues validates the queue layout.
func CheckQueues(base uint16, queues int) error {
	if queues < 1 || queues > 1024 {
		return fmt.Errorf("engine: queues per stage must be 1..1024, got %d", queues)
	}
	if int(base)+numStages*queues-1 > 65535 {
		return fmt.Errorf("engine: queueBase %d + %d stages x %d queues exceeds 65535", base, numStages, queues)
	}
	return nil
}

// Iface is one host interface as the engine sees it.
type Iface struct {
	Index uint32
	Name  string
	Addrs []netip.Addr
}

// probeName is an interface name no endpoint can name (it is longer than
// the 15-byte limit): binding it tells whether a "*" endpoint governs a stage.
const probeName = "nfgate-probe-no-such-interface"

var ifaceNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.@:-]{1,15}$`)

// PlanDispatch derives which interfaces each stage polices from the
// program's bindings over the known interfaces and the interface names the
// endpoints declare (so an endpoint's interface is policed as soon as it
// appears, before the interface map is refreshed).
func PlanDispatch(pol Policy, cfg *policy.Config, ifaces []Iface) (unt, pre, filt Dispatch) {
	names := map[string][]netip.Addr{}
	for _, ifc := range ifaces {
		names[ifc.Name] = ifc.Addrs
	}
	if cfg != nil {
		for _, h := range cfg.HostEndpoints {
			if h.InterfaceName != "" && h.InterfaceName != "*" {
				if _, ok := names[h.InterfaceName]; !ok {
					names[h.InterfaceName] = nil
				}
			}
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		if ifaceNameRE.MatchString(n) {
			sorted = append(sorted, n)
		}
	}
	sort.Strings(sorted)
	binds := make([]policy.Binding, len(sorted))
	for i, n := range sorted {
		binds[i] = pol.Bind(policy.Interface{Name: n, Addrs: names[n]})
	}
	probe := pol.Bind(policy.Interface{Name: probeName})
	prefixes := WorkloadPatterns(cfg)
	build := func(get func(policy.Binding) policy.EndpointID, catchAllPossible bool) Dispatch {
		d := Dispatch{CatchAll: catchAllPossible && get(probe) != policy.NoEndpoint}
		for i, n := range sorted {
			policed := get(binds[i]) != policy.NoEndpoint
			if policed != d.CatchAll {
				d.Names = append(d.Names, n)
			}
		}
		if d.CatchAll {
			d.Names = append(d.Names, prefixes...)
		}
		return d
	}
	unt = build(func(b policy.Binding) policy.EndpointID { return b.Untracked }, false)
	pre = build(func(b policy.Binding) policy.EndpointID { return b.PreDNAT }, true)
	filt = build(func(b policy.Binding) policy.EndpointID { return b.Filter }, true)
	return unt, pre, filt
}

// WorkloadPatterns returns the iptables patterns of the workload interface
// prefixes (interfacePrefix "cali" is "cali+").
func WorkloadPatterns(cfg *policy.Config) []string {
	var r []string
	if cfg != nil {
		for _, p := range cfg.Settings.InterfacePrefix {
			if p != "" && ifaceNameRE.MatchString(p) {
				r = append(r, p+"+")
			}
		}
	}
	return r
}

// Chain is one nfgate-owned chain: its name and rule specs (iptables-restore
// syntax without the leading "-A CHAIN").
type Chain struct {
	Name  string
	Rules []string
}

// Jump is a rule nfgate inserts at the top of a built-in chain.
type Jump struct {
	Builtin string
	Target  string
}

// Table is nfgate's content of one table.
type Table struct {
	Name   string
	Chains []Chain
	Jumps  []Jump
}

// Ruleset is nfgate's content of every table of one family.
type Ruleset struct {
	Family uint8 // 4 or 6
	Tables []Table
}

// Chain names. Every chain nfgate owns starts with ChainPrefix.
const ChainPrefix = "NFGATE-"

// OwnedChains lists, per table, every chain nfgate owns and the built-in
// chain each top-level one is jumped from.
var OwnedChains = map[string][]string{
	"raw": {"NFGATE-PREROUTING", "NFGATE-OUTPUT", "NFGATE-PASS", "NFGATE-UNT-IN", "NFGATE-UNT-OUT"},
	"mangle": {"NFGATE-PREROUTING", "NFGATE-OUTPUT", "NFGATE-POSTROUTING", "NFGATE-PASS", "NFGATE-PRE", "NFGATE-OUT",
		"NFGATE-PRE-DONE", "NFGATE-POST-DONE"},
	"filter": {"NFGATE-INPUT", "NFGATE-FORWARD", "NFGATE-OUTPUT", "NFGATE-PASS", "NFGATE-IN", "NFGATE-FWD", "NFGATE-OUT",
		"NFGATE-IN-DONE", "NFGATE-FWD-DONE", "NFGATE-OUT-DONE", "NFGATE-WL-IN", "NFGATE-WL-FWD"},
}

// OwnedJumps lists the jump rules nfgate keeps at the top of built-in chains.
var OwnedJumps = map[string][]Jump{
	"raw":    {{"PREROUTING", "NFGATE-PREROUTING"}, {"OUTPUT", "NFGATE-OUTPUT"}},
	"mangle": {{"PREROUTING", "NFGATE-PREROUTING"}, {"OUTPUT", "NFGATE-OUTPUT"}, {"POSTROUTING", "NFGATE-POSTROUTING"}},
	"filter": {{"INPUT", "NFGATE-INPUT"}, {"FORWARD", "NFGATE-FORWARD"}, {"OUTPUT", "NFGATE-OUTPUT"}},
}

// TableOrder is the order tables are written in.
var TableOrder = []string{"raw", "mangle", "filter"}

func hex(v uint32) string { return fmt.Sprintf("0x%x", v) }

func markIs(set, mask uint32) string {
	return "-m mark --mark " + hex(set) + "/" + hex(mask)
}

// Render turns a plan into the chains of one family (4 or 6).
func Render(p *HookPlan, family uint8) *Ruleset {
	m := p.Marks
	persist := hex(m.Persist())
	save := "-j CONNMARK --save-mark --nfmask " + persist + " --ctmask " + persist
	restore := "-j CONNMARK --restore-mark --nfmask " + persist + " --ctmask " + persist
	passRule := markIs(m.Pass, m.Pass) + " -g NFGATE-PASS"
	passChain := Chain{Name: "NFGATE-PASS", Rules: []string{"-j MARK --set-xmark 0x0/" + hex(m.Pass)}}
	// In mangle and filter, NONE is a decision too: a flow marked for
	// re-check that the stage hands to the host's rules is re-checked, and
	// its later packets must not be queued again.
	ctPassChain := Chain{Name: "NFGATE-PASS", Rules: []string{"-j MARK --set-xmark 0x0/" + hex(m.Pass),
		"-j CONNMARK --set-xmark 0x0/" + hex(m.Recheck)}}
	// Conntrack rules of a tracked policed chain (Calico's, plus re-check).
	ct := []string{
		"-m conntrack --ctstate RELATED -j ACCEPT",
		"-m conntrack --ctstate ESTABLISHED " + markIs(0, m.Recheck) + " -j ACCEPT",
		"-m conntrack --ctstate ESTABLISHED -m conntrack --ctdir REPLY -j ACCEPT",
	}
	if p.InvalidDrop {
		ct = append(ct, "-m conntrack --ctstate INVALID -j DROP")
	}
	queue := func(s policy.Stage) string {
		a, b := p.QueueRange(s)
		r := "-j NFQUEUE --queue-num " + fmt.Sprint(a)
		if b != a {
			r = fmt.Sprintf("-j NFQUEUE --queue-balance %d:%d", a, b)
		}
		if p.FailOpen {
			r += " --queue-bypass"
		}
		return r
	}
	// trackedQueue is the end of a tracked stage's chain. In failure mode
	// open the flow is first marked for re-check in the connmark: if no
	// reader answers (daemon absent: --queue-bypass; queue full: the
	// kernel's fail-open), the packet passes undecided, and the mark makes
	// the flow's next packet queued again, so once the daemon is back it
	// decides the flow (a flow admitted while nfgate was down used to
	// survive restarts and reloads). A decided packet never reaches this
	// rule (the decision's rules come first), and its save rule replaces
	// the connmark bits.
	trackedQueue := func(s policy.Stage) []string {
		if !p.FailOpen {
			return []string{queue(s)}
		}
		return []string{"-j CONNMARK --set-xmark " + hex(m.Recheck) + "/" + hex(m.Recheck), queue(s)}
	}
	// repeat is the fast path of the NF_REPEAT pass: the kernel runs the
	// whole hook again for a packet nfgate answered, and a packet carrying
	// a stage's fresh decision (its done bit in the packet mark, not yet in
	// the connmark, and no Reject bit) goes straight to the decision's
	// chain: save the bits, then ACCEPT or return (NONE). The rules it
	// skips cannot apply to it: it was queued after them, with the same
	// conntrack state. A later packet of a decided flow (bits restored from
	// the connmark) fails the connmark match and takes the full path
	// (INVALID is dropped there), as does a rejected one. The packet mark is
	// matched first: it is a native nf_tables expression, the connmark an
	// xt match, so a first packet pays one cheap comparison.
	repeat := func(done, excl uint32, target string) string {
		return markIs(done, done|excl) + " -m connmark --mark 0x0/" + hex(done) + " -g " + target
	}
	fsIn := failsafeRules(p.FailsafeIn, family, false, false)
	fsOut := failsafeRules(p.FailsafeOut, family, true, false)
	fsRawIn := append(fsIn[:len(fsIn):len(fsIn)], failsafeRules(p.FailsafeOut, family, false, true)...)
	fsRawOut := append(fsOut[:len(fsOut):len(fsOut)], failsafeRules(p.FailsafeIn, family, true, true)...)

	var rs Ruleset
	rs.Family = family

	// raw: the untracked stage, per packet.
	{
		pre := Chain{Name: "NFGATE-PREROUTING"}
		out := Chain{Name: "NFGATE-OUTPUT"}
		uin := Chain{Name: "NFGATE-UNT-IN"}
		uout := Chain{Name: "NFGATE-UNT-OUT"}
		if !p.Untracked.Empty() {
			for _, c := range []*Chain{&pre, &out} {
				c.Rules = append(c.Rules, passRule,
					markIs(m.Accepted, m.Accepted)+" -j CT --notrack",
					markIs(m.Accepted, m.Accepted)+" -j ACCEPT")
			}
			pre.Rules = append(pre.Rules, dispatch(p.Untracked, "-i", "NFGATE-UNT-IN")...)
			out.Rules = append(out.Rules, dispatch(p.Untracked, "-o", "NFGATE-UNT-OUT")...)
			uin.Rules = append(append(uin.Rules, fsRawIn...), queue(policy.StageUntracked))
			uout.Rules = append(append(uout.Rules, fsRawOut...), queue(policy.StageUntracked))
		}
		rs.Tables = append(rs.Tables, Table{Name: "raw", Chains: []Chain{pre, out, passChain, uin, uout}, Jumps: OwnedJumps["raw"]})
	}

	// mangle: restore the connmark, the preDNAT stage, DNAT'd local egress.
	{
		pre := Chain{Name: "NFGATE-PREROUTING"}
		out := Chain{Name: "NFGATE-OUTPUT"}
		post := Chain{Name: "NFGATE-POSTROUTING"}
		prec := Chain{Name: "NFGATE-PRE"}
		outc := Chain{Name: "NFGATE-OUT"}
		preDone := Chain{Name: "NFGATE-PRE-DONE"}
		postDone := Chain{Name: "NFGATE-POST-DONE"}
		if !p.PreDNAT.Empty() {
			pre.Rules = append(pre.Rules, repeat(m.PreDone, 0, "NFGATE-PRE-DONE"))
			preDone.Rules = []string{save, markIs(m.Accepted, m.Accepted) + " -j ACCEPT"}
		}
		if !p.PreDNAT.Empty() || !p.Filter.Empty() {
			// Once per packet: a packet re-entering after NF_REPEAT at the
			// preDNAT stage carries PreDone and keeps its fresh bits.
			pre.Rules = append(pre.Rules, markIs(0, m.PreDone)+" -m connmark ! --mark 0x0/"+persist+" "+restore)
			out.Rules = append(out.Rules, "-m connmark ! --mark 0x0/"+persist+" "+restore)
		}
		if !p.Untracked.Empty() {
			// Calico's mangle PREROUTING ACCEPTs a packet an untracked
			// Allow accepted (the accept mark, before its pre-DNAT
			// dispatch), on every interface: Accepted without PreDone is
			// the untracked stage's bit (never saved in a connmark, and
			// cleared before a looped-back packet comes in again).
			pre.Rules = append(pre.Rules, markIs(m.Accepted, m.Accepted|m.PreDone)+" -j ACCEPT")
		}
		if !p.PreDNAT.Empty() {
			// NONE without a decision (the fail-open watchdog's answer):
			// back to the host's rules, not into the queue again, and the
			// bit must not reach filter INPUT/FORWARD, where it means NONE.
			pre.Rules = append(pre.Rules, passRule)
			pre.Rules = append(pre.Rules, dispatch(p.PreDNAT, "-i", "NFGATE-PRE")...)
			prec.Rules = append(prec.Rules, ct[:3]...)
			// An untracked Allow (Accepted without PreDone) skips preDNAT.
			// A preDNAT Allow (both bits) must reach the save rule below,
			// or the flow's later packets are queued again and a reload
			// never re-checks it.
			prec.Rules = append(prec.Rules, markIs(m.Accepted, m.Accepted|m.PreDone)+" -j ACCEPT")
			prec.Rules = append(prec.Rules, ct[3:]...)
			prec.Rules = append(prec.Rules, fsIn...)
			prec.Rules = append(prec.Rules,
				markIs(m.PreDone, m.PreDone)+" "+save,
				markIs(m.PreDone|m.Accepted, m.PreDone|m.Accepted)+" -j ACCEPT",
				markIs(m.PreDone, m.PreDone)+" -j RETURN")
			prec.Rules = append(prec.Rules, trackedQueue(policy.StagePreDNAT)...)
		}
		if !p.Untracked.Empty() {
			// A locally originated packet to a local address comes in
			// again on lo with its packet mark: the Accepted bit an
			// untracked egress Allow set (filter OUTPUT has used it) must
			// not accept it in raw PREROUTING or filter INPUT without lo's
			// ingress policy (Felix clears its bits in raw PREROUTING,
			// where nfgate cannot tell them from its own verdict's).
			post.Rules = append(post.Rules, "-o lo "+markIs(m.Accepted, m.Accepted|m.PreDone)+" -j MARK --set-xmark 0x0/"+hex(m.Accepted))
		}
		if !p.Filter.Empty() {
			// Locally originated traffic that nat OUTPUT DNAT'd: Calico
			// polices it here, where nothing is accepted, only returned
			// (the verdict is NONE: the host's filter OUTPUT rules have
			// decided) or dropped; so every ACCEPT of the output chain is
			// a RETURN here. Forwarded traffic is told apart as Calico
			// does, by a mark filter FORWARD leaves on it (FwdDone: the
			// forward stage's decision, or the marker NFGATE-FORWARD sets
			// on what it does not decide), not by its source address: a
			// local packet from a foreign address (a raw or transparent
			// socket, a removed address) is policed like any other.
			post.Rules = append(post.Rules, repeat(m.OutDone, 0, "NFGATE-POST-DONE"), passRule,
				"-m conntrack ! --ctstate DNAT -j RETURN",
				markIs(m.FwdDone(), m.FwdDone())+" -j RETURN")
			post.Rules = append(post.Rules, dispatch(p.Filter, "-o", "NFGATE-OUT")...)
			outc.Rules = acceptToReturn(localChain(p, m, ct, fsOut, m.OutDone, "", save, trackedQueue(policy.StageOutput)))
			postDone.Rules = []string{save}
		}
		rs.Tables = append(rs.Tables, Table{Name: "mangle", Chains: []Chain{pre, out, post, ctPassChain, prec, outc, preDone, postDone},
			Jumps: OwnedJumps["mangle"]})
	}

	// filter: input, forward, output.
	{
		in := Chain{Name: "NFGATE-INPUT"}
		fwd := Chain{Name: "NFGATE-FORWARD"}
		out := Chain{Name: "NFGATE-OUTPUT"}
		inc := Chain{Name: "NFGATE-IN"}
		fwdc := Chain{Name: "NFGATE-FWD"}
		outc := Chain{Name: "NFGATE-OUT"}
		inDone := Chain{Name: "NFGATE-IN-DONE"}
		fwdDone := Chain{Name: "NFGATE-FWD-DONE"}
		outDone := Chain{Name: "NFGATE-OUT-DONE"}
		wlIn := Chain{Name: "NFGATE-WL-IN"}
		wlFwd := Chain{Name: "NFGATE-WL-FWD"}
		// Workload interfaces first: Felix's cali-INPUT sends them to the
		// workload dispatch before anything else (conntrack included), and
		// cali-FORWARD's workload dispatch drops whatever the in-interface's
		// host endpoint forward chain did not end.
		for _, w := range p.Workload {
			in.Rules = append(in.Rules, "-i "+w+" -g NFGATE-WL-IN")
		}
		for _, w := range p.Workload {
			fwd.Rules = append(fwd.Rules, "-i "+w+" -g NFGATE-WL-FWD", "-o "+w+" -g NFGATE-WL-FWD")
		}
		if len(p.Workload) > 0 {
			if family == 6 {
				// Felix's ICMPv6Filter: multicast listener query, report,
				// done, router solicitation, neighbour solicitation and
				// advertisement are allowed before the workload dispatch.
				for _, typ := range []int{130, 131, 132, 133, 135, 136} {
					wlIn.Rules = append(wlIn.Rules, fmt.Sprintf("-p ipv6-icmp -m icmp6 --icmpv6-type %d -j ACCEPT", typ))
				}
			}
			wlIn.Rules = append(wlIn.Rules, "-j DROP")
			wlFwd.Rules = workloadForward(p)
		}
		if !p.Filter.Empty() {
			in.Rules = append(in.Rules, repeat(m.InDone, m.Reject, "NFGATE-IN-DONE"), passRule)
			in.Rules = append(in.Rules, dispatch(p.Filter, "-i", "NFGATE-IN")...)
			inc.Rules = localChain(p, m, ct, fsIn, m.InDone, rejectTarget(p.Reject), save, trackedQueue(policy.StageInput))
			inDone.Rules = []string{save, "-j ACCEPT"}

			out.Rules = append(out.Rules, repeat(m.OutDone, m.Reject, "NFGATE-OUT-DONE"), passRule, "-m conntrack --ctstate DNAT -j RETURN")
			out.Rules = append(out.Rules, dispatch(p.Filter, "-o", "NFGATE-OUT")...)
			outc.Rules = localChain(p, m, ct, fsOut, m.OutDone, rejectTarget(p.Reject), save, trackedQueue(policy.StageOutput))
			outDone.Rules = []string{save, "-j ACCEPT"}

			// Every forwarded packet leaves this hook marked forwarded
			// (FwdDone) for mangle POSTROUTING, which polices DNAT'd
			// local output only (Calico's filter FORWARD tail sets its
			// accept mark for the same purpose): the forward stage's
			// decisions carry the bit, the fail-open NONE and what no
			// policed chain takes get it here. No save rule meets the
			// marker: the forward stage's saves come before it, and
			// mangle POSTROUTING's save (NFGATE-POST-DONE) needs OutDone,
			// which the marker alone never carries. What the ct
			// rules of NFGATE-FWD accept, and a catch-all's unpoliced
			// pairs, mangle POSTROUTING returns anyway (the same ct
			// rules; an unpoliced out-interface).
			marker := "-j MARK --set-xmark " + hex(m.FwdDone()) + "/" + hex(m.FwdDone())
			fwd.Rules = append(fwd.Rules, repeat(m.FwdDone(), m.Reject, "NFGATE-FWD-DONE"),
				markIs(m.Pass, m.Pass)+" "+marker, passRule)
			fwd.Rules = append(fwd.Rules, dispatchForward(p.Filter, "NFGATE-FWD")...)
			fwd.Rules = append(fwd.Rules, marker)
			fwdc.Rules = append(fwdc.Rules, ct...)
			fwdc.Rules = append(fwdc.Rules, markIs(m.FwdDone()|m.Reject, m.FwdDone()|m.Reject)+" -j "+rejectTarget(p.Reject))
			fwdc.Rules = append(fwdc.Rules,
				markIs(m.FwdDone(), m.FwdDone())+" "+save,
				markIs(m.FwdDone()|m.FwdAccept(), m.FwdDone()|m.FwdAccept())+" -j ACCEPT",
				markIs(m.FwdDone(), m.FwdDone())+" -j RETURN")
			fwdc.Rules = append(fwdc.Rules, trackedQueue(policy.StageForward)...)
			// Accepted or NONE (falling off the end returns to FORWARD).
			fwdDone.Rules = []string{save, markIs(m.FwdAccept(), m.FwdAccept()) + " -j ACCEPT"}
		}
		rs.Tables = append(rs.Tables, Table{Name: "filter", Chains: []Chain{in, fwd, out, ctPassChain, inc, fwdc, outc,
			inDone, fwdDone, outDone, wlIn, wlFwd}, Jumps: OwnedJumps["filter"]})
	}
	return &rs
}

// workloadForward is the chain for traffic forwarded from or to a workload
// interface: what Felix's cali-FORWARD gives it. The in-interface's host
// endpoint forward chain runs first (a "*" endpoint's for traffic from a
// workload interface) and ends only an ESTABLISHED or RELATED flow (its
// conntrack ACCEPT) or a policy drop; then the workload dispatch drops the
// packet, since no workload endpoint is known. So: ACCEPT an established
// or related packet whose in-interface has a host endpoint, DROP the rest.
func workloadForward(p *HookPlan) []string {
	const ctAccept = "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
	var r []string
	if p.Filter.CatchAll {
		// Every in-interface has an endpoint (the "*" one, for workload
		// interfaces too) but those the catch-all leaves out.
		for _, n := range p.Filter.Names {
			if !isWorkload(p.Workload, n) {
				r = append(r, "-i "+n+" -j DROP")
			}
		}
		r = append(r, ctAccept)
	} else {
		for _, n := range p.Filter.Names {
			r = append(r, "-i "+n+" "+ctAccept)
		}
	}
	return append(r, "-j DROP")
}

// isWorkload reports whether an interface name (or pattern) is a workload
// interface's.
func isWorkload(patterns []string, name string) bool {
	for _, w := range patterns {
		if name == w || strings.HasPrefix(name, strings.TrimSuffix(w, "+")) {
			return true
		}
	}
	return false
}

// acceptToReturn turns the ACCEPTs of a chain into RETURNs.
func acceptToReturn(rules []string) []string {
	for i, r := range rules {
		if s, ok := strings.CutSuffix(r, " -j ACCEPT"); ok {
			rules[i] = s + " -j RETURN"
		}
	}
	return rules
}

// rejectTarget is what a filter chain does with a packet whose verdict
// carries the Reject bit. The rule exists whatever the deny action: around a
// reload that switches REJECT to DROP, a packet decided under the old policy
// may come back with the bit to rules rendered for the new one, and without
// the rule it would be taken for accepted (done bit) and saved as such.
func rejectTarget(reject bool) string {
	if reject {
		return "REJECT"
	}
	return "DROP"
}

// localChain is the policed chain of the input or output stage. reject is
// the target for the Reject bit ("" in mangle, where denies never carry it).
func localChain(p *HookPlan, m Marks, ct, failsafe []string, done uint32, reject string, save string, queue []string) []string {
	r := []string{markIs(m.Accepted, m.Accepted) + " -j ACCEPT"}
	r = append(r, ct...)
	r = append(r, failsafe...)
	if reject != "" {
		r = append(r, markIs(done|m.Reject, done|m.Reject)+" -j "+reject)
	}
	r = append(r,
		markIs(done, done)+" "+save,
		markIs(done, done)+" -j ACCEPT")
	return append(r, queue...)
}

func dispatch(d Dispatch, flag, target string) []string {
	var r []string
	if d.CatchAll {
		for _, n := range d.Names {
			r = append(r, flag+" "+n+" -j RETURN")
		}
		return append(r, "-g "+target)
	}
	for _, n := range d.Names {
		r = append(r, flag+" "+n+" -g "+target)
	}
	return r
}

// dispatchForward polices a forwarded packet when its in- or out-interface is policed.
func dispatchForward(d Dispatch, target string) []string {
	var r []string
	if d.CatchAll {
		for _, a := range d.Names {
			for _, b := range d.Names {
				r = append(r, "-i "+a+" -o "+b+" -j RETURN")
			}
		}
		return append(r, "-g "+target)
	}
	for _, n := range d.Names {
		r = append(r, "-i "+n+" -g "+target)
	}
	for _, n := range d.Names {
		r = append(r, "-o "+n+" -g "+target)
	}
	return r
}

// failsafeRules renders failsafe ACCEPT rules. out: the entry's net is the
// destination (outbound list); reply: match the source port instead of the
// destination port and swap the net side (raw reply rules, spec §4).
func failsafeRules(list []policy.ProtoPort, family uint8, out, reply bool) []string {
	var r []string
	for _, e := range list {
		proto := "tcp"
		switch e.Protocol {
		case 6:
		case 17:
			proto = "udp"
		case 132:
			proto = "sctp"
		default:
			continue
		}
		s := "-p " + proto + " -m " + proto
		if reply {
			s += fmt.Sprintf(" --sport %d", e.Port)
		} else {
			s += fmt.Sprintf(" --dport %d", e.Port)
		}
		if e.Net.IsValid() {
			if (family == 4) != e.Net.Addr().Is4() {
				continue
			}
			// Inbound entries restrict the source, outbound the destination;
			// a reply rule sees the packet the other way round.
			dst := out
			if dst {
				s += " -d " + e.Net.String()
			} else {
				s += " -s " + e.Net.String()
			}
		}
		r = append(r, s+" -j ACCEPT")
	}
	return r
}

// RestoreText renders a ruleset as iptables-restore --noflush input. Every
// owned chain is declared (which flushes it) and refilled; present counts
// the jump rules that already exist ("table/BUILTIN/TARGET"): missing ones
// are inserted at the top of the built-in chain, duplicates (two daemons
// starting at once, a hand-made copy) are deleted down to one.
func RestoreText(rs *Ruleset, present map[string]int) string {
	var b strings.Builder
	for _, t := range rs.Tables {
		fmt.Fprintf(&b, "*%s\n", t.Name)
		for _, c := range t.Chains {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c.Name)
		}
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				fmt.Fprintf(&b, "-A %s %s\n", c.Name, r)
			}
		}
		for _, j := range t.Jumps {
			n := present[t.Name+"/"+j.Builtin+"/"+j.Target]
			if n == 0 {
				fmt.Fprintf(&b, "-I %s 1 -j %s\n", j.Builtin, j.Target)
			}
			for ; n > 1; n-- {
				fmt.Fprintf(&b, "-D %s -j %s\n", j.Builtin, j.Target)
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// CleanupText renders an iptables-restore --noflush transaction removing
// everything nfgate owns: every copy of its jump rules (a chain still
// referenced cannot be deleted), then its chains.
func CleanupText(present map[string]int, chains map[string]map[string]bool) string {
	var b strings.Builder
	for _, t := range TableOrder {
		if len(chains[t]) == 0 {
			continue
		}
		fmt.Fprintf(&b, "*%s\n", t)
		for _, j := range OwnedJumps[t] {
			for n := present[t+"/"+j.Builtin+"/"+j.Target]; n > 0; n-- {
				fmt.Fprintf(&b, "-D %s -j %s\n", j.Builtin, j.Target)
			}
		}
		names := make([]string, 0, len(chains[t]))
		for c := range chains[t] {
			names = append(names, c)
		}
		sort.Strings(names)
		for _, c := range names {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c)
		}
		for _, c := range names {
			fmt.Fprintf(&b, "-X %s\n", c)
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}
