package config

import (
	"strings"
	"testing"

	"github.com/nfgate/nfgate/policy"
)

// Issue 11: where nfgate's loader differed from Calico v3.32.1.

func loadOK(t *testing.T, manifest string) *Loaded {
	t.Helper()
	l, err := loadManifest(manifest)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return l
}

// Item 3: a GlobalNetworkPolicy's namespaceSelector and
// serviceAccountSelector are ANDed into the selector Felix evaluates, with
// Calico's text rewriting of the selector as written.
func TestPolicyNamespaceSelectorLoads(t *testing.T) {
	for _, c := range []struct{ spec, want string }{
		{`{namespaceSelector: "!has(team)"}`, "!has(pcns.team)"},
		{`{selector: "all()", namespaceSelector: "!has(team)"}`, "has(projectcalico.org/namespace) && !has(pcns.team)"},
		{`{selector: "all( )", namespaceSelector: "!has(team)"}`, "all() && !has(pcns.team)"},
		{`{selector: "role == 'gw'", serviceAccountSelector: "sa == 'x'"}`, `role == "gw" && pcsa.sa == "x"`},
		{`{selector: "has(a)", namespaceSelector: "all()", serviceAccountSelector: "all()"}`, "(has(a) && has(projectcalico.org/namespace)) && has(projectcalico.org/serviceaccount)"},
	} {
		l := loadOK(t, gnp(c.spec))
		p := l.Policy.Policies[0]
		got := p.Selector.String()
		if got != c.want {
			t.Errorf("%s: Felix selector %q, want %q", c.spec, got, c.want)
		}
		if len(l.Warnings) != 0 {
			t.Errorf("%s: warnings %v", c.spec, Errors(l.Warnings))
		}
	}
}

// Item 4 (loading): a rule's namespaceSelector and serviceAccounts load and
// reach the model.
func TestRuleNamespaceSelectorLoads(t *testing.T) {
	l := loadOK(t, ingress(`{action: Allow, source: {namespaceSelector: "global()", serviceAccounts: {names: [a, b], selector: "!has(x)"}}}`))
	e := l.Policy.Policies[0].Ingress[0].Source
	if e.NamespaceSelector == nil || e.NamespaceSelector.String() != "global()" || e.ServiceAccounts == nil ||
		len(e.ServiceAccounts.Names) != 2 || e.ServiceAccounts.Selector.String() != "!has(x)" {
		t.Fatalf("entity rule: %+v", e)
	}
	sel, err := policy.EndpointSelector(&e)
	if err != nil || !strings.Contains(sel.String(), "!has(projectcalico.org/namespace)") || !strings.Contains(sel.String(), "projectcalico.org/serviceaccount in") {
		t.Errorf("Felix selector %v (%v)", sel, err)
	}
}

// Item 6: a host endpoint naming a missing profile is valid (warned); the
// profile denies everything.
func TestMissingProfileIsDropAll(t *testing.T) {
	l := loadOK(t, hep("h", `{node: gw, interfaceName: eth0, profiles: [nope]}`))
	if !hasDiag(l.Warnings, "profiles", `profile "nope" does not exist`) {
		t.Errorf("warnings: %v", Errors(l.Warnings))
	}
	prog, err := policy.Compile(l.Policy)
	if err != nil {
		t.Fatal(err)
	}
	e := prog.Endpoints()[0]
	if len(e.Profiles) != 1 || !prog.Config().Profiles[e.Profiles[0]].Missing {
		t.Errorf("endpoint profiles: %v", e.Profiles)
	}
}

// Item 8: http rules load; the loader warns that the HTTP part is not
// enforced.
func TestHTTPRuleWarns(t *testing.T) {
	l := loadOK(t, ingress(`{action: Allow, protocol: TCP, http: {methods: [GET], paths: [{prefix: /api}]}, destination: {ports: [80]}}`))
	r := l.Policy.Policies[0].Ingress[0]
	if !r.HTTP || len(r.Destination.Ports) != 1 {
		t.Errorf("rule: %+v", r)
	}
	if !hasDiag(l.Warnings, "spec.ingress[0].http", "the HTTP match is not enforced") {
		t.Errorf("warnings: %v", Errors(l.Warnings))
	}
}

// Item 5: interfaceExclude (Felix's syntax: names and /regex/, comma
// separated; default kube-ipvs0).
func TestInterfaceExclude(t *testing.T) {
	felix := func(v string) string {
		return "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {interfaceExclude: " + v + "}\n"
	}
	for _, c := range []struct {
		name, manifest string
		excluded, kept []string
		warn           string
	}{
		{"default", hep("h", `{node: gw, interfaceName: eth0}`), []string{"kube-ipvs0"}, []string{"kube-ipvs1", "eth0"}, ""},
		{"names", felix(`"kube-ipvs0,dummy0"`), []string{"kube-ipvs0", "dummy0"}, []string{"dummy01", "eth0"}, ""},
		{"regex", felix(`"/^veth.*/,eth9"`), []string{"veth1", "vethab", "eth9"}, []string{"eth0", "aveth"}, ""},
		{"none", felix(`none`), nil, []string{"kube-ipvs0"}, ""},
		{"invalid: Felix keeps its default", felix(`"eth0, eth1"`), []string{"kube-ipvs0"}, []string{"eth0"}, "invalid interfaceExclude"},
	} {
		l := loadOK(t, c.manifest)
		st := &l.Policy.Settings
		for _, n := range c.excluded {
			if !st.Excluded(n) {
				t.Errorf("%s: %s not excluded", c.name, n)
			}
		}
		for _, n := range c.kept {
			if st.Excluded(n) {
				t.Errorf("%s: %s excluded", c.name, n)
			}
		}
		if c.warn != "" && !hasDiag(l.Warnings, "spec.interfaceExclude", c.warn) {
			t.Errorf("%s: warnings %v", c.name, Errors(l.Warnings))
		}
	}
	// In nfgate's own [gateway] table a bad value is an error.
	_, err := loadMem(map[string]string{"main.toml": "[gateway]\nnodeName = \"gw\"\ninterfaceExclude = \"eth0 eth1\"\n"})
	if !hasDiag(diagsOf(err), "gateway.interfaceExclude", "invalid interfaceExclude") {
		t.Errorf("gateway interfaceExclude: %v", err)
	}
}

// Item 7: policy names need no tier prefix (and a prefix need not match).
func TestPolicyNameNeedsNoTierPrefix(t *testing.T) {
	l := loadOK(t, "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: ops.allow-ssh}\nspec: {}\n")
	if p := l.Policy.Policies[0]; p.Name != "ops.allow-ssh" || p.Tier != "default" {
		t.Errorf("policy %q in tier %q", p.Name, p.Tier)
	}
}

// A FelixConfiguration is validated field by field as Calico does, also the
// fields nfgate ignores: an unknown field or a bad value is an error.
func TestFelixConfigurationValidation(t *testing.T) {
	felix := func(spec string) string {
		return "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: " + spec + "\n"
	}
	_, err := loadManifest(felix(`{logSeverityScreen: Info, bpfEnabled: false, chainInsertMode: append}`))
	if err != nil {
		t.Errorf("valid ignored fields: %v", err)
	}
	_, err = loadManifest(felix(`{logSeverityScren: Info}`))
	if !hasDiag(diagsOf(err), "spec.logSeverityScren", `unknown field "logSeverityScren"`) {
		t.Errorf("unknown field: %v", err)
	}
	_, err = loadManifest(felix(`{routeRefreshInterval: 1.5s}`))
	if !hasDiag(diagsOf(err), "spec.routeRefreshInterval", "Calico's schema does not accept") {
		t.Errorf("fractional duration: %v", err)
	}
	// Calico accepts any failsafe protocol here; Felix panics on all but tcp
	// and udp (any case).
	_, err = loadManifest(felix(`{failsafeInboundHostPorts: [{port: 22}]}`))
	if !hasDiag(diagsOf(err), "spec.failsafeInboundHostPorts[0]", "Felix accepts only TCP and UDP") {
		t.Errorf("failsafe without protocol: %v", err)
	}
	l := loadOK(t, felix(`{failsafeInboundHostPorts: [{protocol: udp, port: 0}, {protocol: TCP, port: 22, net: 198.18.0.0/16}]}`))
	if fs := l.Policy.Settings.FailsafeInbound; len(fs) != 2 || fs[0].Protocol != 17 || fs[1].Net.String() != "198.18.0.0/16" {
		t.Errorf("failsafe list: %v", fs)
	}
}
