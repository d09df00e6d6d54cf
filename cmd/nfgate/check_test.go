package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/<name>, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from golden file (run go test -update after checking the diff):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func runCheckArgs(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := runCheck(args, &out, &errb)
	return code, out.String(), errb.String()
}

// Interfaces the golden reports resolve against (the lab's and the guides').
var checkIfaces = []string{"--host-interfaces=false", "--iface", "eth0", "--iface", "eth1", "--iface", "lo",
	"--iface", "ext0", "--iface", "app0", "--iface", "mnt0", "--iface", "cali123"}

func TestCheckExamplesGolden(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*/nfgate*.toml")
	if len(files) == 0 {
		t.Fatal("no examples found")
	}
	for _, f := range files {
		name := strings.TrimSuffix(strings.ReplaceAll(strings.TrimPrefix(f, "../../examples/"), "/", "_"), ".toml")
		code, out, errs := runCheckArgs(append([]string{"--config", f}, checkIfaces...)...)
		if code != 0 {
			t.Errorf("%s: exit %d\n%s", f, code, errs)
			continue
		}
		golden(t, "check_"+name+".txt", out)
	}
}

func TestCheckJSONSelects(t *testing.T) {
	code, out, errs := runCheckArgs(append([]string{"--config", "../../examples/pre-dnat/nfgate.toml", "--json"}, checkIfaces...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	golden(t, "check_pre-dnat.json", out)
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	sel := map[string][]string{}
	for _, p := range rep.Policies {
		sel[p.Name] = p.Selects
	}
	for _, name := range []string{"allow-cluster-internal-ingress", "drop-other-ingress"} {
		if len(sel[name]) == 0 {
			t.Errorf("policy %s: selects %v, want the has(host-endpoint) endpoints", name, sel[name])
		}
	}
}

// A broken configuration exits 1 and names file, line, field for every error.
func TestCheckBroken(t *testing.T) {
	files := []string{"../../policy/config/testdata/broken/nfgate.toml"}
	if len(files) == 0 {
		t.Fatal("no broken examples")
	}
	for _, f := range files {
		code, out, errs := runCheckArgs("--config", f, "--host-interfaces=false")
		if code != 1 {
			t.Errorf("%s: exit %d, want 1\n%s%s", f, code, out, errs)
		}
		lines := 0
		for _, l := range strings.Split(strings.TrimSpace(errs), "\n") {
			if strings.HasPrefix(l, "warning:") || strings.HasPrefix(l, "nfgate check:") {
				continue
			}
			lines++
			// file:line:col: ...
			parts := strings.SplitN(l, ":", 4)
			if len(parts) < 4 || parts[1] == "" || parts[1][0] < '0' || parts[1][0] > '9' {
				t.Errorf("%s: error without file:line: %q", f, l)
			}
		}
		if lines == 0 {
			t.Errorf("%s: no errors printed", f)
		}
		code, out, _ = runCheckArgs("--config", f, "--host-interfaces=false", "--json")
		var rep checkReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || rep.OK || len(rep.Errors) == 0 {
			t.Errorf("%s --json: exit %d ok=%v errors=%d err=%v", f, code, rep.OK, len(rep.Errors), err)
		}
		for _, d := range rep.Errors {
			if d.File == "" || d.Line == 0 || d.Msg == "" {
				t.Errorf("%s --json: error lacks file/line/message: %+v", f, d)
			}
		}
	}
}

// check shows what Calico v3.32.1 does with interfaceExclude, a missing
// profile and an http rule (issue 11 items 5, 6, 8).
func TestCheckFidelityWarnings(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "nfgate.toml")
	os.WriteFile(f, []byte(`include = ["r.yaml"]
[gateway]
nodeName = "gw"
interfaceExclude = "kube-ipvs0,/^veth/"
`), 0o600)
	os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(`apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: ipvs}
spec: {node: gw, interfaceName: kube-ipvs0}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: eth0, labels: {web: "true"}}
spec: {node: gw, interfaceName: eth0, profiles: [gone]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: web}
spec:
  selector: has(web)
  ingress:
  - {action: Allow, protocol: TCP, http: {methods: [GET]}, destination: {ports: [80]}}
`), 0o600)
	code, out, errs := runCheckArgs("--config", f, "--host-interfaces=false", "--iface", "eth0", "--iface", "kube-ipvs0", "--iface", "veth7", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errs)
	}
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if strings.Join(rep.InterfaceExclude, " ") != "kube-ipvs0 /^veth/" {
		t.Errorf("interfaceExclude %v", rep.InterfaceExclude)
	}
	how := map[string]checkInterface{}
	for _, i := range rep.Interfaces {
		how[i.Name] = i
	}
	if i := how["kube-ipvs0"]; !i.Excluded || i.Endpoint != "" || i.How != "excluded (not policed)" {
		t.Errorf("kube-ipvs0: %+v", i)
	}
	if i := how["veth7"]; !i.Excluded {
		t.Errorf("veth7: %+v", i)
	}
	if i := how["eth0"]; i.Excluded || i.Endpoint != "eth0" {
		t.Errorf("eth0: %+v", i)
	}
	for _, want := range []string{
		`interface "kube-ipvs0" is excluded by interfaceExclude`,
		`profile "gone" does not exist`,
		"the HTTP match is not enforced",
	} {
		found := false
		for _, w := range rep.Warnings {
			found = found || strings.Contains(w.Msg, want)
		}
		if !found {
			t.Errorf("no warning %q in %v", want, rep.Warnings)
		}
	}
	for _, e := range rep.Endpoints {
		if e.Name == "eth0" && strings.Join(e.Profiles, ",") != "gone (missing: deny)" {
			t.Errorf("eth0 profiles %v", e.Profiles)
		}
	}
}

// check shows staged policies as Calico treats them (issue 11, second
// round): listed, marked staged, never deciding; a staged applyOnForward
// policy takes away the endpoint's forward default allow, which check
// says.
func TestCheckStagedPolicies(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "nfgate.toml")
	os.WriteFile(f, []byte("include = [\"r.yaml\"]\n[gateway]\nnodeName = \"gw\"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(`apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: eth0, labels: {net: a}}
spec: {node: gw, interfaceName: eth0}
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: try}
spec:
  selector: net == 'a'
  applyOnForward: true
  ingress: [{action: Deny}]
`), 0o600)
	code, out, errs := runCheckArgs("--config", f, "--host-interfaces=false", "--iface", "eth0", "--iface", "cali9", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errs)
	}
	var rep checkReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Policies) != 1 || rep.Policies[0].Kind != "staged applyOnForward" || strings.Join(rep.Policies[0].Selects, ",") != "eth0" {
		t.Errorf("policies: %+v", rep.Policies)
	}
	stages := map[string]checkStage{}
	for _, s := range rep.Endpoints[0].Stages {
		stages[s.Stage+" "+s.Direction] = s
	}
	if s := stages["forward ingress"]; strings.Join(s.Policies, ",") != "default/try (staged)" || s.Default != "none (host FORWARD rules decide)" {
		t.Errorf("forward ingress: %+v", s)
	}
	if s := stages["forward egress"]; s.Default != "none (host FORWARD rules decide)" {
		t.Errorf("forward egress: %+v", s)
	}
	if s := stages["normal ingress"]; s.Default != "deny (no policy, no profile)" {
		t.Errorf("normal ingress (a staged-only tier has no end-of-tier drop): %+v", s)
	}
	found := false
	for _, w := range rep.Warnings {
		found = found || strings.Contains(w.Msg, "no longer allowed by default")
	}
	if !found {
		t.Errorf("no warning about the forward default allow: %v", rep.Warnings)
	}
	for _, i := range rep.Interfaces {
		if i.Name == "cali9" && i.How != "workload (unknown: dropped)" {
			t.Errorf("cali9: %+v", i)
		}
	}
}
