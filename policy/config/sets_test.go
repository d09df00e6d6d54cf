package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/analysis"
)

// A value repeated in a list Calico's schema calls a set loads (calicoctl
// on etcd stores it) with a warning at the repetition naming the first
// occurrence, and decides every packet as the list without it does.
func TestRepeatedSetValues(t *testing.T) {
	const base = `apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: h1}
spec:
  node: gw
  interfaceName: eth0
  expectedIPs:
  - 198.18.1.1
%s  profiles:
  - no-such-profile
%s  - projectcalico-default-allow
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: p}
spec:
  selector: all()
  ingress:
  - action: Deny
    source:
      nets:
      - 198.18.2.0/23
%s      notNets:
      - 198.18.2.0/24
%s  - action: Deny
    source: {serviceAccounts: {names: [a%s]}}
  - action: Allow
    source: {selector: x == 'y'}
  - action: Allow
    destination: {selector: x == 'y'}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: s, labels: {x: y}}
spec: {nets: [10.0.0.0/8%s]}
`
	dup := func(on bool, s string) string {
		if on {
			return s
		}
		return ""
	}
	man := func(on bool) string {
		return fmt.Sprintf(base,
			dup(on, "  - 198.18.1.1\n"),
			dup(on, "  - no-such-profile\n"),
			dup(on, "      - 198.18.2.0/23\n"),
			dup(on, "      - 198.18.2.0/24\n"),
			dup(on, ", a"),
			dup(on, ", 10.0.0.0/8"))
	}
	l, err := loadManifest(man(true))
	if err != nil {
		t.Fatalf("repeated set values refused: %v", err)
	}
	want := map[string]string{ // field -> line of the repetition
		"spec.expectedIPs[1]":                             "first at line 8",
		"spec.profiles[1]":                                "first at line 11",
		"spec.ingress[0].source.nets[1]":                  "first at line 24",
		"spec.ingress[0].source.notNets[1]":               "first at line 27",
		"spec.ingress[1].source.serviceAccounts.names[1]": "first at line 30",
		"spec.nets[1]":                                    "first at line 39",
	}
	for field, msg := range want {
		found := false
		for _, w := range l.Warnings {
			if w.Field == field && strings.Contains(w.Msg, msg) && strings.Contains(w.Msg, "listed twice") && w.File == "r.yaml" && w.Line > 0 {
				found = true
			}
		}
		if !found {
			t.Errorf("no warning at %s (%s): %v", field, msg, Errors(l.Warnings))
		}
	}
	l0, err := loadManifest(man(false))
	if err != nil {
		t.Fatal(err)
	}
	p1, err := policy.Compile(l.Policy)
	if err != nil {
		t.Fatal(err)
	}
	p0, err := policy.Compile(l0.Policy)
	if err != nil {
		t.Fatal(err)
	}
	if d := analysis.Diff(p0, p1, analysis.Options{}); !d.Empty() || d.Scopes == 0 {
		t.Errorf("the repetitions change verdicts at %d stage(s) of %d compared", len(d.Stages), d.Scopes)
	}
}
