package analysis_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nfgate/nfgate/policy/analysis"
)

const lintHead = `
[gateway]
nodeName = "gw"

[[hostEndpoint]]
name = "gw.lan0"
labels = { net = "lan" }
interfaceName = "lan0"
node = "gw"
expectedIPs = ["198.18.1.1"]
`

func pol(name, extra string, rules ...string) string {
	s := fmt.Sprintf("\n[[globalNetworkPolicy]]\nname = %q\nselector = \"net == 'lan'\"\ntypes = [\"Ingress\"]\n%s\n", name, extra)
	for _, r := range rules {
		s += "[[globalNetworkPolicy.ingress]]\n" + r + "\n"
	}
	return s
}

// lines returns the findings as "line kind: message | related..." strings.
func lines(fs []analysis.Finding) []string {
	var out []string
	for _, f := range fs {
		s := fmt.Sprintf("%d %s %s %s: %s", f.Line, f.Severity, f.Kind, f.Field, f.Message)
		for _, r := range f.Related {
			s += fmt.Sprintf(" | %s@%d", r.Text, r.Line)
		}
		out = append(out, s)
	}
	return out
}

func TestLintFindings(t *testing.T) {
	cases := []struct {
		name string
		cfg  string
		want []string // substrings, each of one finding, in order
	}{
		{"a rule inside an earlier one is shadowed",
			lintHead + pol("p", "",
				`action = "Allow"`+"\nprotocol = \"TCP\"\ndestination = { ports = [\"80:90\"] }",
				`action = "Deny"`+"\nprotocol = \"TCP\"\ndestination = { ports = [85] }",
				`action = "Allow"`+"\nprotocol = \"UDP\"\ndestination = { ports = [53] }"),
			[]string{"21 warning shadowed ingress[1]: can never match: earlier rules decide every packet it matches, in every chain it is in (endpoint gw.lan0) | Allow policy default/p ingress[0]@17"}},
		{"shadowed by an earlier policy, not by a later one",
			lintHead + pol("a", "order = 1", `action = "Deny"`+"\nprotocol = \"TCP\"") + pol("b", "order = 2", `action = "Allow"`+"\nprotocol = \"TCP\"\ndestination = { ports = [22] }"),
			[]string{"26 warning shadowed ingress[0]: can never match: earlier rules decide every packet it matches, in every chain it is in (endpoint gw.lan0) | Deny policy default/a ingress[0]@17"}},
		{"a rule partly covered is fine",
			lintHead + pol("p", "",
				`action = "Deny"`+"\nprotocol = \"TCP\"\nsource = { nets = [\"198.18.7.0/24\"] }",
				`action = "Allow"`+"\nprotocol = \"TCP\"\ndestination = { ports = [80] }"),
			nil},
		{"a Pass shadows the rest of its tier",
			lintHead + pol("p", "",
				`action = "Pass"`,
				`action = "Deny"`+"\nprotocol = \"TCP\"\ndestination = { ports = [25] }") +
				"\n[[tier]]\nname = \"later\"\norder = 2000000\n" + pol("later.q", "tier = \"later\"", `action = "Allow"`+"\nsource = { nets = [\"198.18.0.0/16\"] }"),
			[]string{"warning shadowed ingress[1]: can never match: earlier rules decide every packet it matches, in every chain it is in (endpoint gw.lan0) | Pass policy default/p ingress[0]@"}},
		{"notNets covering the nets contradict",
			lintHead + pol("p", "", `action = "Allow"`+"\nsource = { nets = [\"198.18.7.0/24\"], notNets = [\"198.18.0.0/16\"] }"),
			[]string{"error contradiction ingress[0]: source notNets cover all of its source nets: it never matches"}},
		{"a selector that selects nothing",
			lintHead + pol("p", "", `action = "Allow"`+"\nsource = { selector = \"role == 'nobody'\" }"),
			[]string{"warning selects-nothing ingress[0]: its source selector selects no host endpoint or network set with addresses"}},
		{"a named port no endpoint declares",
			lintHead + pol("p", "", `action = "Allow"`+"\nprotocol = \"TCP\"\ndestination = { ports = [\"web\"] }"),
			[]string{"warning named-port ingress[0]: its named ports are declared by no host endpoint"}},
		{"a named port next to numeric ones",
			lintHead + pol("p", "", `action = "Allow`+"\"\nprotocol = \"TCP\"\ndestination = { ports = [\"web\", 80] }"),
			[]string{"warning named-port ingress[0]: no host endpoint declares the named port(s) web"}},
		{"a policy selecting nothing",
			lintHead + strings.Replace(pol("p", "", `action = "Allow"`), "net == 'lan'", "net == 'wan'", 1),
			[]string{"warning unused-policy selector: selects no host endpoint of node \"gw\""}},
		{"Pass in the last tier",
			lintHead + pol("p", "", `action = "Pass"`+"\nprotocol = \"UDP\"", `action = "Allow"`+"\nsource = { nets = [\"198.18.0.0/16\"] }"),
			[]string{"warning pass-no-later-tier ingress[0]: Pass with no later tier and no profile for endpoint gw.lan0"}},
		{"preDNAT leaving traffic undecided without applyOnForward",
			lintHead + pol("p", "preDNAT = true\napplyOnForward = true", `action = "Allow"`+"\nprotocol = \"TCP\"\ndestination = { ports = [30080] }"),
			[]string{"warning needs-apply-on-forward : its preDNAT policy leaves some packets undecided"}},
		{"preDNAT ending in a Deny is fine",
			lintHead + pol("p", "preDNAT = true\napplyOnForward = true", `action = "Allow"`+"\nprotocol = \"TCP\"\ndestination = { ports = [30080] }", `action = "Deny"`),
			nil},
		{"SSH open to the world",
			lintHead + pol("p", "", `action = "Allow"`+"\nprotocol = \"TCP\"\ndestination = { ports = [22, 6443, 8080] }"),
			[]string{"warning failsafe-port-open ingress[0]: allows TCP 22 (SSH), 6443 (Kubernetes API) from any address"}},
		{"SSH from a management net is fine",
			lintHead + pol("p", "", `action = "Allow"`+"\nprotocol = \"TCP\"\nsource = { nets = [\"198.18.9.0/24\"] }\ndestination = { ports = [22] }"),
			nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := compileTOML(t, c.cfg)
			got := lines(analysis.Lint(p, analysis.LintOptions{}))
			if len(got) != len(c.want) {
				t.Fatalf("%d findings, want %d:\n%s", len(got), len(c.want), strings.Join(got, "\n"))
			}
			for i, w := range c.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("finding %d:\n got  %s\n want %s", i, got[i], w)
				}
			}
		})
	}
}

func TestLintHits(t *testing.T) {
	cfg := lintHead + pol("p", "",
		`action = "Allow"`+"\nprotocol = \"TCP\"\ndestination = { ports = [22] }",
		`action = "Allow"`+"\nprotocol = \"UDP\"\ndestination = { ports = [53] }",
		`action = "Deny"`+"\nprotocol = \"UDP\"")
	trace := `{"time":"2026-01-01T00:00:00Z","type":"verdict","stage":"input","in":"lan0","endpoint":"gw.lan0","proto":"udp","verdict":"ACCEPT","tier":"default","policy":"p","rule":1,"reason":"rule"}
{"time":"2026-01-01T00:01:00Z","type":"verdict","stage":"input","in":"lan0","endpoint":"gw.lan0","proto":"udp","verdict":"DROP","tier":"default","policy":"p","rule":2,"reason":"rule"}
`
	p := compileTOML(t, strings.Replace(cfg, "destination = { ports = [22] }", "source = { nets = [\"198.18.9.0/24\"] }\ndestination = { ports = [22] }", 1))
	h, err := analysis.HitsFromTrace(strings.NewReader(trace), p.Config())
	if err != nil {
		t.Fatal(err)
	}
	got := lines(analysis.Lint(p, analysis.LintOptions{Hits: h}))
	if len(got) != 1 || !strings.Contains(got[0], "info no-hits ingress[0]: no traced packet was decided by it (2 verdicts, 2026-01-01T00:00:00Z to 2026-01-01T00:01:00Z)") {
		t.Errorf("findings:\n%s", strings.Join(got, "\n"))
	}
}
