package conformance

import (
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Regression is a minimised disagreement kept under testdata/: the
// resources, one packet, and the verdicts the real Felix v3.32.1 gave it
// per stage. TestRegressions checks nfgate's explain path against the
// recorded verdicts without Felix.
type Regression struct {
	Description string          `toml:"description"`
	Cause       string          `toml:"cause"`
	Pending     string          `toml:"pending"`     // set while explain still disagrees: the fix it waits for
	LivePending string          `toml:"livePending"` // set while the live daemon still disagrees
	Origin      string          `toml:"origin"`      // how it was found
	Resources   string          `toml:"resources"`
	Probe       RegressionProbe `toml:"probe"`
	// Prelude: packets sent (and decided) before the probe, whose own
	// verdicts are not checked (state the probe meets: the deny cache).
	Prelude []RegressionProbe `toml:"prelude"`
	// Felix: stage -> ACCEPT / DROP / NONE / "-" (not reached); or, for a
	// configuration one side refuses, config -> "loaded" / "refused".
	Felix map[string]string `toml:"felix"`
	Live  map[string]string `toml:"live"` // the live nfgate when it was recorded (information only)
}

// RegressionProbe is the packet and the way it takes.
type RegressionProbe struct {
	From     string `toml:"from"` // client, server, gw
	Proto    int    `toml:"proto"`
	Src      string `toml:"src"`
	Dst      string `toml:"dst"`
	SPort    int    `toml:"sport"`
	DPort    int    `toml:"dport"`
	ICMPType int    `toml:"icmpType"`
	ICMPCode int    `toml:"icmpCode"`
	TCPFlags int    `toml:"tcpFlags"`
	// NoNAT: Felix's untracked Allow NOTRACKed the packet, so no DNAT rule
	// saw it (information: explain decides that itself).
	NoNAT bool `toml:"noNAT"`
}

func (rp *RegressionProbe) probe() (*Probe, error) {
	src, err := netip.ParseAddr(rp.Src)
	if err != nil {
		return nil, fmt.Errorf("probe.src: %v", err)
	}
	dst, err := netip.ParseAddr(rp.Dst)
	if err != nil {
		return nil, fmt.Errorf("probe.dst: %v", err)
	}
	switch Origin(rp.From) {
	case FromClient, FromServer, FromGW:
	default:
		return nil, fmt.Errorf("probe.from %q: want client, server or gw", rp.From)
	}
	return &Probe{Origin: Origin(rp.From), Packet: Packet{Src: src, Dst: dst, Proto: uint8(rp.Proto), SPort: uint16(rp.SPort),
		DPort: uint16(rp.DPort), ICMPType: uint8(rp.ICMPType), ICMPCode: uint8(rp.ICMPCode), TCPFlags: uint8(rp.TCPFlags), ID: 1}}, nil
}

func (rp *RegressionProbe) path(p *Probe) Path {
	if rp.NoNAT {
		return p.pathNoNAT()
	}
	return p.Path()
}

func regressionProbe(p *Probe, path Path) RegressionProbe {
	return RegressionProbe{From: string(p.Origin), Proto: int(p.Proto), Src: p.Src.String(), Dst: p.Dst.String(),
		SPort: int(p.SPort), DPort: int(p.DPort), ICMPType: int(p.ICMPType), ICMPCode: int(p.ICMPCode), TCPFlags: int(p.TCPFlags),
		NoNAT: path != p.Path()}
}

func readRegression(file string) (*Regression, error) {
	var r Regression
	md, err := toml.DecodeFile(file, &r)
	if err != nil {
		return nil, err
	}
	if u := md.Undecoded(); len(u) > 0 {
		return nil, fmt.Errorf("%s: unknown keys %v", file, u)
	}
	if r.Resources == "" || len(r.Felix) == 0 {
		return nil, fmt.Errorf("%s: resources and felix verdicts are required", file)
	}
	if _, ok := r.Felix["config"]; !ok && r.Probe.From == "" {
		return nil, fmt.Errorf("%s: [probe] is required (or felix.config for a configuration case)", file)
	}
	return &r, nil
}

// tomlString quotes s as a TOML multi-line basic string.
func tomlString(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"""`, `\"\"\"`)
	return "\"\"\"\n" + s + "\"\"\""
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func verdictTable(name string, v map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s]\n", name)
	for _, k := range append([]string{"config"}, stageKeys...) {
		if x, ok := v[k]; ok {
			fmt.Fprintf(&b, "%s = %s\n", quote(k), quote(x))
		}
	}
	return b.String()
}

// write saves the regression (hand-formatted: the resources stay readable YAML).
func (r *Regression) write(file string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# A case compared with Felix v3.32.1 (test/conformance, docs/conformance.md).\n")
	fmt.Fprintf(&b, "description = %s\n", quote(r.Description))
	fmt.Fprintf(&b, "cause = %s\n", quote(r.Cause))
	if r.Pending != "" {
		fmt.Fprintf(&b, "pending = %s\n", quote(r.Pending))
	}
	if r.LivePending != "" {
		fmt.Fprintf(&b, "livePending = %s\n", quote(r.LivePending))
	}
	fmt.Fprintf(&b, "origin = %s\n", quote(r.Origin))
	fmt.Fprintf(&b, "resources = %s\n\n", tomlString(r.Resources))
	p := r.Probe
	if p.From == "" {
		fmt.Fprintf(&b, "# Whether Felix v3.32.1 (calicoctl) loads the configuration.\n%s", verdictTable("felix", r.Felix))
		fmt.Fprintf(&b, "\n# The live nfgate daemon when this was recorded (information only).\n%s", verdictTable("live", r.Live))
		return os.WriteFile(file, []byte(b.String()), 0o644)
	}
	fmt.Fprintf(&b, "[probe]\nfrom = %s\nproto = %d\nsrc = %s\ndst = %s\n", quote(p.From), p.Proto, quote(p.Src), quote(p.Dst))
	if p.SPort != 0 || p.DPort != 0 {
		fmt.Fprintf(&b, "sport = %d\ndport = %d\n", p.SPort, p.DPort)
	}
	if p.Proto == protoICMP || p.Proto == protoICMPv6 {
		fmt.Fprintf(&b, "icmpType = %d\nicmpCode = %d\n", p.ICMPType, p.ICMPCode)
	}
	if p.TCPFlags != 0 {
		fmt.Fprintf(&b, "tcpFlags = %d\n", p.TCPFlags)
	}
	if p.NoNAT {
		fmt.Fprintf(&b, "noNAT = true\n")
	}
	for _, q := range r.Prelude {
		fmt.Fprintf(&b, "\n[[prelude]]\nfrom = %s\nproto = %d\nsrc = %s\ndst = %s\n", quote(q.From), q.Proto, quote(q.Src), quote(q.Dst))
		if q.SPort != 0 || q.DPort != 0 {
			fmt.Fprintf(&b, "sport = %d\ndport = %d\n", q.SPort, q.DPort)
		}
		if q.Proto == protoICMP || q.Proto == protoICMPv6 {
			fmt.Fprintf(&b, "icmpType = %d\nicmpCode = %d\n", q.ICMPType, q.ICMPCode)
		}
	}
	fmt.Fprintf(&b, "\n# Felix v3.32.1's verdict per stage (\"-\": not reached).\n%s", verdictTable("felix", r.Felix))
	fmt.Fprintf(&b, "\n# The live nfgate daemon when this was recorded (information only).\n%s", verdictTable("live", r.Live))
	return os.WriteFile(file, []byte(b.String()), 0o644)
}

// check evaluates the regression with nfgate's explain path; it returns
// explain's verdicts and whether they equal Felix's.
func (r *Regression) check(dir string) (Verdicts, []string, bool, error) {
	ex, refused, err := newExplainer(dir, []byte(r.Resources), "")
	if err != nil {
		return nil, nil, false, err
	}
	if want, ok := r.Felix["config"]; ok {
		got := Verdicts{"config": "loaded"}
		if refused != "" {
			got["config"] = "refused"
			return got, []string{firstLine(refused)}, want == "refused", nil
		}
		return got, nil, want == "loaded", nil
	}
	if refused != "" {
		return Verdicts{"config": "refused"}, []string{firstLine(refused)}, false, nil
	}
	p, err := r.Probe.probe()
	if err != nil {
		return nil, nil, false, err
	}
	v, why, _, _ := ex.explainProbe(p)
	return v, why, sameStages(v, Verdicts(r.Felix)), nil
}

func sortedVerdicts(v map[string]string) string {
	var ks []string
	for k := range v {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		return stageIndex(ks[i]) < stageIndex(ks[j]) || ks[i] < ks[j] && stageIndex(ks[i]) == stageIndex(ks[j])
	})
	var b strings.Builder
	for _, k := range ks {
		fmt.Fprintf(&b, "%s=%s ", k, v[k])
	}
	return strings.TrimSpace(b.String())
}

func stageIndex(k string) int {
	for i, s := range stageKeys {
		if s == k {
			return i
		}
	}
	return len(stageKeys)
}

// sameStages compares two evaluations stage by stage, a stage one of them
// did not pass counting as not reached.
func sameStages(a, b Verdicts) bool {
	for _, k := range append([]string{"config"}, stageKeys...) {
		if orUnreached(a[k]) != orUnreached(b[k]) {
			return false
		}
	}
	return true
}
