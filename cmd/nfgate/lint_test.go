package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nfgate/nfgate/bench/netbench"
)

func runLintArgs(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runLint(args, &out, &errb)
	return code, out.String(), errb.String()
}

const lintConfig = `[gateway]
nodeName = "gw"

[[hostEndpoint]]
name = "gw.lan0"
labels = { net = "lan" }
interfaceName = "lan0"
node = "gw"

[[globalNetworkPolicy]]
name = "lan-in"
selector = "net == 'lan'"
types = ["Ingress"]
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "TCP"
destination = { ports = ["1000:2000"] }
[[globalNetworkPolicy.ingress]]
action = "Deny"
protocol = "TCP"
destination = { ports = [1500] }
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "TCP"
destination = { ports = [22] }
`

func TestLintCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nfgate.toml")
	if err := os.WriteFile(path, []byte(lintConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runLintArgs("--config", path)
	if code != 0 {
		t.Errorf("warnings only, --fail-on error: exit %d", code)
	}
	for _, want := range []string{
		"warning: " + path + ":18:1: GlobalNetworkPolicy/lan-in: ingress[1]: can never match: earlier rules decide every packet it matches, in every chain it is in (endpoint gw.lan0) (shadowed)",
		"    shadowed by Allow policy default/lan-in ingress[0] (" + path + ":14)",
		"warning: " + path + ":22:1: GlobalNetworkPolicy/lan-in: ingress[2]: allows TCP 22 (SSH) from any address",
		": 0 error(s), 2 warning(s), 0 note(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if code, _, _ := runLintArgs("--config", path, "--fail-on", "warning"); code != 1 {
		t.Errorf("--fail-on warning: exit %d", code)
	}
	code, out, _ = runLintArgs("--config", path, "--json")
	var rep lintReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
		t.Fatalf("json: %v %d", err, code)
	}
	if rep.Warnings != 2 || len(rep.Findings) != 2 || rep.Findings[0].Kind != "shadowed" || rep.Findings[0].Line != 18 || len(rep.Findings[0].Related) != 1 {
		t.Errorf("report: %+v", rep)
	}

	// A trace: the SSH rule decided something, the range rule nothing.
	trace := filepath.Join(t.TempDir(), "trace.jsonl")
	os.WriteFile(trace, []byte(`{"time":"2026-01-01T00:00:00Z","type":"verdict","hash":"x","stage":"input","in":"lan0","endpoint":"gw.lan0","proto":"tcp","verdict":"ACCEPT","tier":"default","policy":"lan-in","rule":2,"reason":"rule"}`+"\n"), 0o600)
	code, out, _ = runLintArgs("--config", path, "--trace", trace, "--fail-on", "info")
	if code != 1 || !strings.Contains(out, "info: "+path+":14:1: GlobalNetworkPolicy/lan-in: ingress[0]: no traced packet was decided by it (1 verdicts") ||
		!strings.Contains(out, "note: the trace holds decisions of other configurations (hash x") {
		t.Errorf("with a trace: exit %d\n%s", code, out)
	}

	// A configuration that does not load: errors, exit 1.
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte(strings.Replace(lintConfig, `action = "Deny"`, `action = "Drop"`, 1)), 0o600)
	if code, out, _ := runLintArgs("--config", bad); code != 1 || !strings.Contains(out, "error: "+bad+":19") {
		t.Errorf("invalid: exit %d\n%s", code, out)
	}
	if code, _, _ := runLintArgs("--config", path, "--fail-on", "never"); code != 2 {
		t.Errorf("bad --fail-on: exit %d", code)
	}
}

// The examples are clean (their FelixConfiguration's ignored fields aside).
func TestLintExamples(t *testing.T) {
	for _, ex := range []string{"lab", "forwarded", "pre-dnat", "protect-hosts"} {
		code, out, errs := runLintArgs("--config", "../../examples/"+ex+"/nfgate.toml", "--fail-on", "warning", "--json")
		var rep lintReport
		json.Unmarshal([]byte(out), &rep)
		for _, f := range rep.Findings {
			if f.Kind != "config" {
				t.Errorf("%s: %+v", ex, f)
			}
		}
		if ex != "protect-hosts" && code != 0 {
			t.Errorf("%s: exit %d %s", ex, code, errs)
		}
	}
}

// BenchmarkLint10k lints bench/netbench's 10,000-rule policy, where most
// filler rules are shadowed by earlier wildcard port ranges.
func BenchmarkLint10k(b *testing.B) {
	topo := netbench.Topology{Node: "gw", ServerIf: "srv0", ServerIP: "198.18.1.1"}
	path, err := netbench.WriteConfig(b.TempDir(), netbench.Policy(10000, 1), topo, false)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		code, out, errs := runLintArgs("--config", path)
		if code != 0 || !strings.Contains(out, "warning(s)") {
			b.Fatalf("exit %d\n%s", code, errs)
		}
	}
}
