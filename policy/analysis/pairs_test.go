package analysis_test

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/analysis"
	"github.com/nfgate/nfgate/policy/config"
)

func compileTOML(t *testing.T, text string) *policy.Program {
	t.Helper()
	ld, err := config.LoadBytes("nfgate.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Compile(ld.Policy)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func compileFile(t *testing.T, path string) *policy.Program {
	t.Helper()
	ld, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Compile(ld.Policy)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// summary is one line per change: stage, interfaces, box, old -> new.
func summary(old, new *policy.Program, res *analysis.Result) string {
	var b strings.Builder
	for _, s := range res.Stages {
		for _, c := range s.Changes {
			fmt.Fprintf(&b, "%s %s>%s ipv%d %s: %s %s -> %s %s\n", s.Kind, strings.Join(s.In, ","), strings.Join(s.Out, ","), c.Box.Fam, c.Box,
				c.Old.Verdict, decider(old, c.Old), c.New.Verdict, decider(new, c.New))
		}
	}
	for _, s := range res.Settings {
		b.WriteString("setting: " + s + "\n")
	}
	return b.String()
}

func decider(p *policy.Program, d policy.Decision) string {
	x := p.Describe(d)
	s := x.Reason
	if x.Policy != "" {
		s += fmt.Sprintf(":%s#%d", x.Policy, x.Rule)
	}
	return "(" + s + ")"
}

const gwHead = `
[gateway]
nodeName = "gw"
failsafeInboundHostPorts = "tcp:22"
failsafeOutboundHostPorts = "udp:53"

[[hostEndpoint]]
name = "gw.eth1"
labels = { net = "lan" }
interfaceName = "eth1"
node = "gw"
`

const webPolicy = `
[[globalNetworkPolicy]]
name = "lan-web"
selector = "net == 'lan'"
applyOnForward = true
types = ["Egress"]
[[globalNetworkPolicy.egress]]
action = "Deny"
protocol = "TCP"
source = { nets = ["198.18.7.0/24"] }
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "TCP"
destination = { ports = [%s] }
`

func TestDiffPairs(t *testing.T) {
	cases := []struct {
		name     string
		old, new string
		want     string // summary lines, any order
	}{
		{"identical", gwHead + fmt.Sprintf(webPolicy, "80"), gwHead + fmt.Sprintf(webPolicy, "80"), ""},
		{"a port added", gwHead + fmt.Sprintf(webPolicy, "80"), gwHead + fmt.Sprintf(webPolicy, "80, 443"), `
forward eth1,(other)>eth1 ipv4 src 0.0.0.0-198.18.6.255 proto tcp dport 443: DROP (end-of-tier) -> ACCEPT (rule:lan-web#1)
forward eth1,(other)>eth1 ipv4 src 198.18.8.0-255.255.255.255 proto tcp dport 443: DROP (end-of-tier) -> ACCEPT (rule:lan-web#1)
forward eth1,(other)>eth1 ipv6 proto tcp dport 443: DROP (end-of-tier) -> ACCEPT (rule:lan-web#1)
output >eth1 ipv4 src 0.0.0.0-198.18.6.255 proto tcp dport 443: DROP (end-of-tier) -> ACCEPT (rule:lan-web#1)
output >eth1 ipv4 src 198.18.8.0-255.255.255.255 proto tcp dport 443: DROP (end-of-tier) -> ACCEPT (rule:lan-web#1)
output >eth1 ipv6 proto tcp dport 443: DROP (end-of-tier) -> ACCEPT (rule:lan-web#1)`},
		{"rules swapped: the denied net's web traffic is now allowed", gwHead + fmt.Sprintf(webPolicy, "80"), gwHead + `
[[globalNetworkPolicy]]
name = "lan-web"
selector = "net == 'lan'"
applyOnForward = true
types = ["Egress"]
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "TCP"
destination = { ports = [80] }
[[globalNetworkPolicy.egress]]
action = "Deny"
protocol = "TCP"
source = { nets = ["198.18.7.0/24"] }
`, `
forward eth1,(other)>eth1 ipv4 src 198.18.7.0/24 proto tcp dport 80: DROP (rule:lan-web#0) -> ACCEPT (rule:lan-web#0)
output >eth1 ipv4 src 198.18.7.0/24 proto tcp dport 80: DROP (rule:lan-web#0) -> ACCEPT (rule:lan-web#0)`},
		{"a reordering with no effect is no change", gwHead + fmt.Sprintf(webPolicy, "80") + `
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "UDP"
destination = { ports = [53] }
`, gwHead + `
[[globalNetworkPolicy]]
name = "lan-web"
selector = "net == 'lan'"
applyOnForward = true
types = ["Egress"]
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "UDP"
destination = { ports = [53] }
[[globalNetworkPolicy.egress]]
action = "Deny"
protocol = "TCP"
source = { nets = ["198.18.7.0/24"] }
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "TCP"
destination = { ports = [80] }
`, ""},
		{"split into two policies with the same effect is no change", gwHead + fmt.Sprintf(webPolicy, "80, 443"), gwHead + fmt.Sprintf(webPolicy, "80") + `
[[globalNetworkPolicy]]
name = "lan-web2"
selector = "net == 'lan'"
applyOnForward = true
types = ["Egress"]
[[globalNetworkPolicy.egress]]
action = "Allow"
protocol = "TCP"
destination = { ports = [443] }
[[globalNetworkPolicy.egress]]
action = "Deny"
protocol = "TCP"
destination = { ports = [443] }
`, ""},
		{"deny action is a setting change", gwHead + fmt.Sprintf(webPolicy, "80"), strings.Replace(gwHead, "[gateway]", "[gateway]\niptablesFilterDenyAction = \"REJECT\"", 1) + fmt.Sprintf(webPolicy, "80"),
			"setting: deny action DROP -> REJECT: every DROP verdict of the filter stages changes"},
		{"a failsafe port added", gwHead + fmt.Sprintf(webPolicy, "80"), strings.Replace(gwHead, `"tcp:22"`, `"tcp:22, tcp:2222"`, 1) + fmt.Sprintf(webPolicy, "80"), `
input eth1> ipv4 proto tcp dport 2222: DROP (no-profile) -> ACCEPT (failsafe)
input eth1> ipv6 proto tcp dport 2222: DROP (no-profile) -> ACCEPT (failsafe)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			po, pn := compileTOML(t, c.old), compileTOML(t, c.new)
			res := analysis.Diff(po, pn, analysis.Options{})
			got := strings.Split(strings.TrimSpace(summary(po, pn, res)), "\n")
			want := strings.Split(strings.TrimSpace(c.want), "\n")
			if strings.Join(sortedLines(got), "\n") != strings.Join(sortedLines(want), "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if res.Incomplete {
				t.Error("incomplete")
			}
		})
	}
}

func sortedLines(ls []string) []string {
	var out []string
	for _, l := range ls {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	slicesSort(out)
	return out
}

// A Pass whose target moves changes verdicts even when the rule sequence
// is the same: old skips the deny, new lands on it.
func TestDiffPassTargetMoves(t *testing.T) {
	tiers := `
[[tier]]
name = "t1"
order = 1
defaultAction = "Pass"
[[tier]]
name = "t2"
order = 2
defaultAction = "Pass"
`
	pol := func(name, tier string, order int, rules string) string {
		return fmt.Sprintf("\n[[globalNetworkPolicy]]\nname = %q\ntier = %q\norder = %d\nselector = \"net == 'lan'\"\ntypes = [\"Ingress\"]\n%s", name, tier, order, rules)
	}
	pass := "[[globalNetworkPolicy.ingress]]\naction = \"Pass\"\n"
	deny := "[[globalNetworkPolicy.ingress]]\naction = \"Deny\"\nprotocol = \"TCP\"\ndestination = { ports = [25] }\n"
	allow := "[[globalNetworkPolicy.ingress]]\naction = \"Allow\"\n"
	old := gwHead + tiers + pol("t1.a", "t1", 1, pass+deny) + pol("t2.b", "t2", 1, allow)
	new := gwHead + tiers + pol("t1.a", "t1", 1, pass) + pol("t2.b", "t2", 1, deny+allow)
	po, pn := compileTOML(t, old), compileTOML(t, new)
	got := summary(po, pn, analysis.Diff(po, pn, analysis.Options{}))
	for _, want := range []string{
		"input eth1> ipv4 proto tcp dport 25: ACCEPT (rule:t2.b#0) -> DROP (rule:t2.b#0)",
		"input eth1> ipv6 proto tcp dport 25: ACCEPT (rule:t2.b#0) -> DROP (rule:t2.b#0)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

// The same policy written as Calico YAML and as nfgate TOML (the
// examples) compiles to the same decisions: the diff is empty.
func TestDiffTOMLvsYAMLExamples(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "examples")
	for _, ex := range []string{"forwarded", "pre-dnat", "protect-hosts"} {
		t.Run(ex, func(t *testing.T) {
			a := compileFile(t, filepath.Join(root, ex, "nfgate.toml"))
			b := compileFile(t, filepath.Join(root, ex, "nfgate-native.toml"))
			res := analysis.Diff(a, b, analysis.Options{})
			if !res.Empty() {
				t.Errorf("YAML and TOML forms differ:\n%s", summary(a, b, res))
			}
			if res.Scopes == 0 {
				t.Error("nothing compared")
			}
		})
	}
}

func slicesSort(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
