package config

import (
	"encoding/json"
	"strings"
	"testing"
)

// Errors point at the line and column of the offending key (TOML) or value
// (YAML), name the resource and the field path, and all are reported.
func TestTOMLErrorPositions(t *testing.T) {
	src := `[gateway]
nodeName = "gw"
failsafeInboundHostPorts = "tcp:22, sctp:9"

[engine]
markMask = "0x3"
deadlne = "1s"

[[globalNetworkPolicy]]
name = "first"

[[globalNetworkPolicy]]
name = "ssh"
preDNAT = true
applyOnForward = true
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "tcp"
[[globalNetworkPolicy.ingress]]
action = "Allow"
protocol = "TCP"
[globalNetworkPolicy.ingress.destination]
ports = [22,
  "8000:9000",
  0]
nets = ["10.0.0.1/24"]
[[globalNetworkPolicy.egress]]
action = "Allow"

[[hostEndpoint]]
name = "h"
labels = { role = "x", "bad key" = "y" }
node = "gw"
interfaceName = { name = "eth0" }
`
	_, err := loadMem(map[string]string{"main.toml": src})
	want := []string{
		`main.toml:3:1: gateway.failsafeInboundHostPorts: invalid failsafe entry "sctp:9": protocol must be tcp or udp`,
		`main.toml:6:1: engine.markMask: markMask must have at least 7 bits set`,
		`main.toml:7:1: engine.deadlne: unknown field "deadlne"`,
		`main.toml:12:1: GlobalNetworkPolicy/ssh: types: preDNAT policy cannot have 'Egress' type`,
		`main.toml:18:1: GlobalNetworkPolicy/ssh: ingress[0].protocol: protocol name invalid: "tcp" (names are case-sensitive: did you mean "TCP"?)`,
		`main.toml:25:3: GlobalNetworkPolicy/ssh: ingress[1].destination.ports[2]: port range invalid, port number must be between 1 and 65535`,
		`main.toml:26:9: GlobalNetworkPolicy/ssh: ingress[1].destination.nets[0]: invalid CIDR "10.0.0.1/24": host bits are set`,
		`main.toml:27:1: GlobalNetworkPolicy/ssh: egress: preDNAT policy cannot have any egress rules`,
		`main.toml:30:1: HostEndpoint/h: at least one of interfaceName or expectedIPs must be specified`,
		`main.toml:32:24: HostEndpoint/h: labels.bad key: invalid label key "bad key"`,
		`main.toml:34:1: HostEndpoint/h: interfaceName: must be a string, not table`,
	}
	checkDiags(t, err, want)
}

func TestYAMLErrorPositions(t *testing.T) {
	src := `apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: allow-ssh
spec:
  selector: network == 'maintenance'
  applyOnForward: true
  types:
  - Egress
  egress:
  - action: Allow
    protocol: TCP
    destination:
      ports:
      - 22
      - "http"
      - 0
      nets: [198.18.0.1/24]
  - action: Allow
    destination:
      selector: "has(a"
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: h
spec:
  interfaceName: eth0
  nod: gw
`
	_, err := loadManifest(src)
	want := []string{
		`r.yaml:17:9: GlobalNetworkPolicy/allow-ssh: spec.egress[0].destination.ports[2]: port range invalid, port number must be between 1 and 65535`,
		`r.yaml:18:14: GlobalNetworkPolicy/allow-ssh: spec.egress[0].destination.nets[0]: invalid CIDR "198.18.0.1/24": host bits are set (did you mean 198.18.0.0/24?)`,
		`r.yaml:21:17: GlobalNetworkPolicy/allow-ssh: spec.egress[1].destination.selector: invalid selector "has(a": at position`,
		`r.yaml:27:1: HostEndpoint/h: spec: node must be specified`,
		`r.yaml:29:3: HostEndpoint/h: spec.nod: unknown field "nod"`,
	}
	checkDiags(t, err, want)
}

func checkDiags(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatal("want errors, got none")
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Errorf("got %d errors, want %d", len(got), len(want))
	}
	for i := 0; i < len(got) || i < len(want); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if !strings.HasPrefix(g, w) || g == "" {
			t.Errorf("error %d:\n got %s\nwant %s...", i, g, w)
		}
	}
}

func TestSyntaxErrorPositions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"TOML", map[string]string{"main.toml": "[gateway]\nnodeName = \"gw\"\nx = = 1\n"}, "main.toml:3:"},
		{"YAML", map[string]string{"main.toml": mainInclude, "r.yaml": "kind: Tier\nmetadata:\n  name: [a\n"}, "r.yaml:"},
		{"YAML duplicate key", map[string]string{"main.toml": mainInclude, "r.yaml": "kind: Tier\nkind: Tier\n"}, "duplicate key \"kind\""},
	} {
		_, err := loadMem(tc.files)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestDiagFormatAndJSON(t *testing.T) {
	errs := Errors{
		{File: "a.yaml", Line: 3, Col: 5, Resource: "GlobalNetworkPolicy/p", Field: "spec.types[0]", Msg: "bad"},
		{File: "nfgate.toml", Msg: "cannot read"},
	}
	if got, want := errs.Error(), "a.yaml:3:5: GlobalNetworkPolicy/p: spec.types[0]: bad\nnfgate.toml: cannot read"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	b, _ := json.Marshal(errs[0])
	if got, want := string(b), `{"file":"a.yaml","line":3,"column":5,"resource":"GlobalNetworkPolicy/p","field":"spec.types[0]","message":"bad"}`; got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
}
