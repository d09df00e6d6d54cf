package conformance

import (
	"fmt"
	"sort"
	"strings"
)

// hookOf names the hook whose verdict is a stage's verdict.
var hookOf = map[string]string{
	"untracked-out": "raw OUTPUT",
	"output":        "filter OUTPUT",
	"untracked-in":  "raw PREROUTING",
	"preDNAT":       "mangle PREROUTING",
	"input":         "filter INPUT",
	"forward":       "filter FORWARD",
}

// kernelStages turns what a gateway's kernel did into a verdict per stage.
// The output stage of DNAT'd local traffic is decided in mangle
// POSTROUTING (spec §2.1): a DROP there is the stage's DROP; an ACCEPT
// or RETURN there changes nothing for the host's filter rules, which ran
// before it.
func kernelStages(path Path, o *Observed) Verdicts {
	v := Verdicts{}
	for _, k := range pathStages(path) {
		h, ok := o.Hooks[hookOf[k]]
		if !ok {
			h = vUnreached
		}
		if k == "output" && h != vDrop && o.Hooks["mangle POSTROUTING"] == vDrop {
			h = vDrop
		}
		v[k] = h
	}
	return v
}

// checkPath compares the interfaces the kernel used with the probe's path
// model; it returns what differs ("" when all agree).
func checkPath(path Path, o *Observed, ifName map[uint32]string) string {
	var bad []string
	want := func(hook string, idx uint32, name string) {
		if _, ok := o.Hooks[hook]; !ok || name == "" {
			return
		}
		if got := ifName[idx]; got != name {
			bad = append(bad, fmt.Sprintf("%s on %s, model %s", hook, got, name))
		}
	}
	if path.FromLocal {
		b0 := path.OutBeforeDNAT
		if b0 == "" {
			b0 = path.Out
		}
		want("raw OUTPUT", o.OIF["raw OUTPUT"], b0)
		// filter OUTPUT's -o is the route before DNAT: the kernel re-routes
		// a DNAT'd local packet only after that hook (spec §2.1).
		want("filter OUTPUT", o.OIF["filter OUTPUT"], b0)
	}
	if path.In != "" {
		want("raw PREROUTING", o.IIF["raw PREROUTING"], path.In)
		if path.Local {
			want("filter INPUT", o.IIF["filter INPUT"], path.In)
		} else {
			want("filter FORWARD", o.OIF["filter FORWARD"], path.Out)
		}
	}
	for _, h := range o.Order {
		if (path.Local && h == "filter FORWARD") || (!path.Local && h == "filter INPUT") {
			bad = append(bad, "reached "+h)
		}
	}
	return strings.Join(bad, "; ")
}

// Result is one probe through the three evaluations.
type Result struct {
	Probe       *Probe
	Path        Path // Felix's way through the gateway
	LivePath    Path // the live nfgate's (differs after a different untracked verdict)
	ExplainPath Path // the way explain was told
	Felix       Verdicts
	Live        Verdicts
	Explain     Verdicts
	Why         []string // explain's reasons
	Decided     map[string]Decided
	FChain      map[string]string
	LChain      map[string]string
	CT          string
	Harness     string // non-empty: the probe could not be compared (why)
	// CmdChecked: `nfgate explain --json` ran for the probe and agreed
	// with the walk.
	CmdChecked bool
}

// Disagreement is one stage where the three differ.
type Disagreement struct {
	Case    string
	Probe   *Probe
	Stage   string
	Felix   string
	Explain string
	Live    string
	Cause   string
	// Consequence: an earlier stage of the same probe already differs.
	Consequence bool
}

func (d Disagreement) String() string {
	c := d.Cause
	if d.Consequence {
		c = "follows: " + c
	}
	return fmt.Sprintf("%s probe %d %s: stage %s: felix %s, explain %s, live %s [%s]",
		d.Case, d.Probe.ID, d.Probe.Describe(), d.Stage, d.Felix, d.Explain, d.Live, c)
}

// disagreements lists the stages where a result's evaluations differ.
func (r *Result) disagreements(caseName string) []Disagreement {
	var out []Disagreement
	for _, k := range r.stages() {
		f, l, x := orUnreached(r.Felix[k]), orUnreached(r.Live[k]), orUnreached(r.Explain[k])
		if f == l && f == x {
			continue
		}
		out = append(out, Disagreement{Case: caseName, Probe: r.Probe, Stage: k, Felix: f, Explain: x, Live: l})
	}
	return out
}

// ---------------------------------------------------------------- summary

// Summary accumulates a run's numbers.
type Summary struct {
	Cases, CasesCompared, Probes, Compared int
	CmdChecked                             int // probes `nfgate explain` itself evaluated
	ConfigAgree                            int // both refused, or both accepted
	ConfigRejected                         []configDiff
	ConfigBoth                             []string
	NoReference                            []string
	Harness                                map[string]int
	// stage -> Felix verdict -> counts
	Stage          map[string]map[string]*tally
	Disagreements  []Disagreement
	ByCause        map[string]int
	PairsCovered   map[string]bool
	FelixRestarts  int
	Seconds        float64
	ProbesPerStage map[string]int
}

type tally struct{ N, ExplainAgree, LiveAgree, AllAgree int }

func newSummary() *Summary {
	return &Summary{Harness: map[string]int{}, Stage: map[string]map[string]*tally{}, ByCause: map[string]int{},
		PairsCovered: map[string]bool{}, ProbesPerStage: map[string]int{}}
}

func (s *Summary) add(r *Result) {
	s.Probes++
	if r.Harness != "" {
		s.Harness[r.Harness]++
		return
	}
	s.Compared++
	if r.CmdChecked {
		s.CmdChecked++
	}
	for _, k := range r.stages() {
		f := orUnreached(r.Felix[k])
		m := s.Stage[k]
		if m == nil {
			m = map[string]*tally{}
			s.Stage[k] = m
		}
		t := m[f]
		if t == nil {
			t = &tally{}
			m[f] = t
		}
		t.N++
		x, l := orUnreached(r.Explain[k]), orUnreached(r.Live[k])
		if x == f {
			t.ExplainAgree++
		}
		if l == f {
			t.LiveAgree++
		}
		if x == f && l == f {
			t.AllAgree++
		}
	}
}

// Table renders the summary.
func (s *Summary) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "conformance: %d cases (%d compared probe by probe), %d probes (%d compared), %.0f s, %.1f cases/min\n",
		s.Cases, s.CasesCompared, s.Probes, s.Compared, s.Seconds, float64(s.Cases)/(s.Seconds/60))
	fmt.Fprintf(&b, "configurations: %d accepted or refused alike; %d refused by one side only\n", s.ConfigAgree, len(s.ConfigRejected))
	fmt.Fprintf(&b, "the nfgate explain command ran for %d compared probes (the others: routes its flags cannot express) and agreed with the walk\n", s.CmdChecked)
	fmt.Fprintf(&b, "rule field pairs covered: %d of %d\n", len(s.PairsCovered), len(atomPairs(false)))
	fmt.Fprintf(&b, "\n%-14s %-8s %7s %15s %15s %15s\n", "stage", "Felix", "probes", "explain agrees", "live agrees", "all agree")
	for _, k := range stageKeys {
		m := s.Stage[k]
		var vs []string
		for v := range m {
			vs = append(vs, v)
		}
		sort.Strings(vs)
		for _, v := range vs {
			t := m[v]
			fmt.Fprintf(&b, "%-14s %-8s %7d %15s %15s %15s\n", k, v, t.N, pct(t.ExplainAgree, t.N), pct(t.LiveAgree, t.N), pct(t.AllAgree, t.N))
		}
	}
	if len(s.Harness) > 0 {
		fmt.Fprintf(&b, "\nprobes not compared (harness):\n")
		for _, k := range sortedKeys(s.Harness) {
			fmt.Fprintf(&b, "  %5d  %s\n", s.Harness[k], k)
		}
	}
	fmt.Fprintf(&b, "\ndisagreements by cause (first differing stage of each probe; later stages of the same probe follow from it):\n")
	if len(s.ByCause) == 0 {
		fmt.Fprintf(&b, "  none\n")
	}
	for _, k := range sortedKeys(s.ByCause) {
		fmt.Fprintf(&b, "  %5d  %s: %s\n", s.ByCause[k], k, causeText(k))
	}
	for _, c := range s.ConfigRejected {
		fmt.Fprintf(&b, "  config: %s (%s): %s\n", c.Case, c.Cause, firstLine(c.Msg))
	}
	if len(s.NoReference) > 0 {
		fmt.Fprintf(&b, "\ncases without a reference (Felix could not program its rules):\n")
		for _, c := range s.NoReference {
			fmt.Fprintf(&b, "  %s\n", c)
		}
	}
	return b.String()
}

func pct(a, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%d (%.1f%%)", a, 100*float64(a)/float64(n))
}

func sortedKeys(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if m[ks[i]] != m[ks[j]] {
			return m[ks[i]] > m[ks[j]]
		}
		return ks[i] < ks[j]
	})
	return ks
}

// configDiff is a configuration one side refused and the other loaded.
type configDiff struct{ Case, Cause, Msg string }

// stages lists the stage keys any of the three evaluations passed, in
// kernel order (the ways differ when the untracked verdicts differ).
func (r *Result) stages() []string {
	var out []string
	for _, k := range stageKeys {
		_, a := r.Felix[k]
		_, b := r.Live[k]
		_, c := r.Explain[k]
		if a || b || c {
			out = append(out, k)
		}
	}
	return out
}

func orUnreached(v string) string {
	if v == "" {
		return vUnreached
	}
	return v
}
