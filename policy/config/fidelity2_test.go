package config

import (
	"strconv"
	"strings"
	"testing"

	"github.com/nfgate/nfgate/policy"
)

// Issue 11, second round: resources Felix reads that change host-endpoint
// verdicts, loaded as Calico does.

func doc(kind, meta, spec string) string {
	return "apiVersion: projectcalico.org/v3\nkind: " + kind + "\nmetadata: " + meta + "\nspec: " + spec + "\n---\n"
}

// A StagedGlobalNetworkPolicy loads as a staged policy (never enforced;
// policy.GlobalNetworkPolicy.Staged), validated as a GlobalNetworkPolicy.
// stagedAction Delete is not sent to Felix at all
// (stagedglobalnetworkpolicyprocessor.go) and must have an empty spec.
func TestStagedGlobalNetworkPolicyLoads(t *testing.T) {
	l := loadOK(t, doc("StagedGlobalNetworkPolicy", "{name: s}", `{selector: "role == 'gw'", applyOnForward: true, egress: [{action: Deny}]}`)+
		doc("StagedGlobalNetworkPolicy", "{name: learn}", `{stagedAction: Learn, ingress: [{action: Allow}]}`)+
		doc("StagedGlobalNetworkPolicy", "{name: ignore}", `{stagedAction: Ignore}`)+
		doc("StagedGlobalNetworkPolicy", "{name: gone}", `{stagedAction: Delete, types: [Ingress]}`)+
		doc("GlobalNetworkPolicy", "{name: s}", `{ingress: [{action: Allow}]}`))
	byName := map[string]policy.GlobalNetworkPolicy{}
	for _, p := range l.Policy.Policies {
		key := p.Name
		if p.Staged {
			key = "staged " + key
		}
		byName[key] = p
	}
	if len(byName) != 4 || len(l.Policy.Policies) != 4 {
		t.Fatalf("policies: %v", byName)
	}
	s := byName["staged s"]
	if !s.ApplyOnForward || len(s.Egress) != 1 || len(s.Types) != 1 || s.Types[0] != policy.Egress || s.Selector.String() != `role == "gw"` {
		t.Errorf("staged s: %+v", s)
	}
	if _, ok := byName["staged learn"]; !ok {
		t.Error("stagedAction Learn: not loaded")
	}
	if _, ok := byName["staged gone"]; ok {
		t.Error("stagedAction Delete: loaded (Felix never sees it)")
	}
	if p := byName["s"]; p.Staged {
		t.Errorf("the GlobalNetworkPolicy of the same name is staged")
	}
	if len(l.Warnings) != 0 {
		t.Errorf("warnings: %v", Errors(l.Warnings))
	}

	for _, c := range []struct{ name, spec, field, msg string }{
		{"delete with a selector", `{stagedAction: Delete, selector: "a == 'b'"}`, "spec", "Spec fields, except Tier, should all be zero-value if stagedAction is Delete"},
		{"delete with rules", `{stagedAction: Delete, ingress: []}`, "spec", "zero-value if stagedAction is Delete"},
		{"bad action", `{stagedAction: Warning}`, "spec.stagedAction", `invalid stagedAction "Warning"`},
		{"validated as a policy", `{preDNAT: true, doNotTrack: true, applyOnForward: true}`, "spec.preDNAT", "preDNAT and doNotTrack cannot both be true"},
		{"tier must exist", `{tier: nope}`, "tier", `tier "nope" does not exist`},
	} {
		_, err := loadManifest(doc("StagedGlobalNetworkPolicy", "{name: x}", c.spec))
		if !hasDiag(diagsOf(err), c.field, c.msg) {
			t.Errorf("%s: want %s: %s, got %v", c.name, c.field, c.msg, err)
		}
	}

	// StagedNetworkPolicy and StagedKubernetesNetworkPolicy never change a
	// host endpoint's verdict (namespaced: normal chains only, where a
	// staged-only tier has no effect): refused, saying so.
	// A NetworkPolicy does select a host endpoint labelled
	// projectcalico.org/namespace with its namespace (Felix check: a Deny
	// in ns1 dropped traffic to such an endpoint); nfgate refuses it,
	// saying so.
	if _, err := loadManifest(doc("NetworkPolicy", "{name: x, namespace: ns1}", "{}")); err == nil || !strings.Contains(err.Error(), "labelled projectcalico.org/namespace") {
		t.Errorf("NetworkPolicy: %v", err)
	}
	for _, k := range []string{"StagedNetworkPolicy", "StagedKubernetesNetworkPolicy"} {
		_, err := loadManifest(doc(k, "{name: x, namespace: n}", "{}"))
		if err == nil || !strings.Contains(err.Error(), "never changes a host endpoint's verdict") {
			t.Errorf("%s: %v", k, err)
		}
	}
}

// A namespaced NetworkSet: Felix labels it projectcalico.org/namespace and
// gives it the labels of Profile kns.<namespace> (networksetprocessor.go),
// its own labels winning; calicoctl files one written without a namespace
// in "default".
func TestNetworkSetLoads(t *testing.T) {
	l := loadOK(t, doc("NetworkSet", "{name: trusted, namespace: ns1, labels: {role: trusted}}", "{nets: [198.18.1.2, 198.18.9.0/24]}")+
		doc("NetworkSet", "{name: trusted}", "{nets: [198.18.3.0/24]}")+
		doc("GlobalNetworkSet", "{name: trusted}", "{nets: [198.18.4.0/24]}")+
		doc("Profile", "{name: kns.ns1}", "{labelsToApply: {pcns.team: x, role: untrusted}}"))
	if len(l.Policy.NetworkSets) != 3 {
		t.Fatalf("sets: %+v", l.Policy.NetworkSets)
	}
	var ns1, def *policy.GlobalNetworkSet
	for i := range l.Policy.NetworkSets {
		switch s := &l.Policy.NetworkSets[i]; s.Namespace {
		case "ns1":
			ns1 = s
		case "default":
			def = s
		}
	}
	if ns1 == nil || def == nil || ns1.Name != "trusted" || len(ns1.Nets) != 2 || ns1.Nets[0].String() != "198.18.1.2/32" {
		t.Fatalf("sets: %+v", l.Policy.NetworkSets)
	}
	got := policy.NetworkSetLabels(l.Policy, ns1)
	want := map[string]string{"role": "trusted", "pcns.team": "x", policy.LabelNamespace: "ns1"}
	if len(got) != len(want) {
		t.Errorf("labels %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("labels %v, want %v", got, want)
		}
	}
	if _, err := loadManifest(doc("NetworkSet", "{name: a, namespace: ns1}", "{}") + doc("NetworkSet", "{name: a, namespace: ns1}", "{}")); !hasDiag(diagsOf(err), "metadata.name", "duplicate NetworkSet name \"ns1/a\"") {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := loadManifest(doc("NetworkSet", "{name: a, namespace: Not_A_Namespace}", "{}")); !hasDiag(diagsOf(err), "metadata.namespace", "invalid namespace") {
		t.Errorf("bad namespace: %v", err)
	}
	if _, err := loadManifest(doc("GlobalNetworkSet", "{name: a, namespace: x}", "{}")); !hasDiag(diagsOf(err), "metadata.namespace", "GlobalNetworkSet is a global resource") {
		t.Errorf("namespace on a global resource: %v", err)
	}
}

// Calico's client defaults a Tier written without order to 1000000 and
// without defaultAction to Deny (libcalico-go resources/tier.go
// DefaultTierFields) before validating it; a local file gets the same.
func TestTierDefaults(t *testing.T) {
	l := loadOK(t, doc("Tier", "{name: t}", "{}")+doc("Tier", "{name: default}", "{}"))
	for _, tr := range l.Policy.Tiers {
		if tr.Order == nil || *tr.Order != 1000000 || tr.DefaultAction != policy.TierDeny {
			t.Errorf("tier %s: order %v, action %v", tr.Name, tr.Order, tr.DefaultAction)
		}
	}
	if _, err := loadManifest(doc("Tier", "{name: kube-admin}", "{defaultAction: Pass}")); !hasDiag(diagsOf(err), "spec", "kube-admin tier order must be 1000") {
		t.Errorf("kube-admin without order: %v", err)
	}
	if _, err := loadManifest(doc("Tier", "{name: kube-baseline}", "{order: 10000000}")); !hasDiag(diagsOf(err), "spec", "The 'kube-baseline' tier must have default action 'Pass'") {
		t.Errorf("kube-baseline without defaultAction: %v", err)
	}
}

// A FelixConfiguration with spec.nodeSelector applies to this gateway when
// the selector matches the labels of the Node named nodeName; it sits
// between "default" and "node.<nodeName>"; of several matches the oldest by
// creationTimestamp wins, then the name (felix/calc/config_batcher.go
// MergeSelectorConfigs). Checked against the real Felix.
func TestSelectorScopedFelixConfiguration(t *testing.T) {
	node := func(labels string) string {
		return doc("Node", "{name: gw, labels: "+labels+"}", "{bgp: {ipv4Address: 198.18.0.1/24}}")
	}
	fc := func(name, meta, spec string) string {
		return doc("FelixConfiguration", "{name: "+name+meta+"}", spec)
	}
	fs := func(port string) string { return "{failsafeInboundHostPorts: [{protocol: TCP, port: " + port + "}]" }
	inbound := func(l *Loaded) string {
		var out []string
		for _, p := range l.Policy.Settings.FailsafeInbound {
			out = append(out, portString(p))
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		name, manifest, want string
		warn                 string // a warning that must be there
	}{
		{"matches", node("{site: berlin}") + fc("berlin", "", "{nodeSelector: \"site == 'berlin'\", "+fs("80")[1:]+"}"), "tcp:80", ""},
		{"does not match", node("{site: paris}") + fc("berlin", "", "{nodeSelector: \"site == 'berlin'\", "+fs("80")[1:]+"}"), "default", "does not select"},
		{"no Node", fc("berlin", "", "{nodeSelector: \"site == 'berlin'\", "+fs("80")[1:]+"}"), "default", "no Node"},
		{"node.<name> wins", node("{site: berlin}") + fc("berlin", "", "{nodeSelector: \"site == 'berlin'\", "+fs("80")[1:]+"}") + fc("node.gw", "", fs("8080")+"}"), "tcp:8080", ""},
		{"over default", node("{site: berlin}") + fc("default", "", fs("22")+"}") + fc("berlin", "", "{nodeSelector: \"site == 'berlin'\", "+fs("80")[1:]+"}"), "tcp:80", ""},
		{"oldest wins", node("{site: berlin}") +
			fc("aaa", ", creationTimestamp: \"2026-12-01T23:35:00Z\"", "{nodeSelector: has(site), "+fs("9000")[1:]+"}") +
			fc("berlin", ", creationTimestamp: \"2026-12-01T23:33:00Z\"", "{nodeSelector: \"site == 'berlin'\", "+fs("80")[1:]+"}"), "tcp:80", "also select"},
		{"same age: name", node("{site: berlin}") + fc("aaa", "", "{nodeSelector: has(site), "+fs("9000")[1:]+"}") +
			fc("berlin", "", "{nodeSelector: \"site == 'berlin'\", "+fs("80")[1:]+"}"), "tcp:9000", "also select"},
		{"no nodeSelector: ignored", node("{site: berlin}") + fc("berlin", "", fs("80")+"}"), "default", "no nodeSelector"},
		{"unparsable nodeSelector: ignored", node("{site: berlin}") + fc("berlin", "", "{nodeSelector: \"site ==\", "+fs("80")[1:]+"}"), "default", "nodeSelector"},
		// Felix check: a Node without labels gets no selector-scoped
		// configuration, not even one with nodeSelector all().
		{"unlabelled Node", doc("Node", "{name: gw}", "{}") + fc("everyone", "", "{nodeSelector: all(), "+fs("80")[1:]+"}"), "default", "has no labels"},
		{"labelled Node, all()", node("{x: y}") + fc("everyone", "", "{nodeSelector: all(), "+fs("80")[1:]+"}"), "tcp:80", ""},
		{"another node's Node", doc("Node", "{name: other, labels: {site: berlin}}", "{}") + fc("berlin", "", "{nodeSelector: \"site == 'berlin'\", "+fs("80")[1:]+"}"), "default", "no Node"},
	} {
		l, err := loadManifest(c.manifest)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		got := inbound(l)
		if c.want == "default" {
			if len(l.Policy.Settings.FailsafeInbound) != len(policy.DefaultFailsafeInbound()) {
				t.Errorf("%s: failsafes %s, want the defaults", c.name, got)
			}
		} else if got != c.want {
			t.Errorf("%s: failsafes %s, want %s", c.name, got, c.want)
		}
		if c.warn != "" && !hasDiagAny(l.Warnings, c.warn) {
			t.Errorf("%s: no warning %q in %v", c.name, c.warn, Errors(l.Warnings))
		}
	}
	for _, name := range []string{"default", "node.gw"} {
		_, err := loadManifest(fc(name, "", "{nodeSelector: all()}"))
		if !hasDiagAny(diagsOf(err), "nodeSelector must not be set on the 'default' or per-node ('node.*') FelixConfiguration") {
			t.Errorf("%s with nodeSelector: %v", name, err)
		}
	}
}

func hasDiagAny(ds []Diag, msg string) bool {
	for _, d := range ds {
		if strings.Contains(d.Msg, msg) {
			return true
		}
	}
	return false
}

func portString(p policy.ProtoPort) string {
	proto := "tcp"
	if p.Protocol == 17 {
		proto = "udp"
	}
	return proto + ":" + strconv.Itoa(int(p.Port))
}

// The TOML forms of the new kinds give the same model as the YAML ones.
func TestStagedAndNetworkSetInTOML(t *testing.T) {
	toml, err := loadMem(map[string]string{"main.toml": `[gateway]
nodeName = "gw"

[[stagedGlobalNetworkPolicy]]
name = "try"
stagedAction = "Learn"
selector = "role == 'gw'"
applyOnForward = true
[[stagedGlobalNetworkPolicy.egress]]
action = "Deny"

[[networkSet]]
name = "partners"
namespace = "ns1"
labels = { kind = "partner" }
nets = ["198.19.0.0/16"]

[[networkSet]]
name = "partners"
nets = ["198.19.5.5"]
`})
	if err != nil {
		t.Fatal(err)
	}
	yaml := loadOK(t, doc("StagedGlobalNetworkPolicy", "{name: try}", `{stagedAction: Learn, selector: "role == 'gw'", applyOnForward: true, egress: [{action: Deny}]}`)+
		doc("NetworkSet", "{name: partners, namespace: ns1, labels: {kind: partner}}", "{nets: [198.19.0.0/16]}")+
		doc("NetworkSet", "{name: partners}", "{nets: [198.19.5.5]}"))
	tp, yp := toml.Policy, yaml.Policy
	if len(tp.Policies) != 1 || !tp.Policies[0].Staged || len(tp.Policies[0].Egress) != 1 || len(tp.NetworkSets) != 2 ||
		tp.NetworkSets[0].Namespace != "ns1" || tp.NetworkSets[1].Namespace != "default" {
		t.Fatalf("TOML: %+v %+v", tp.Policies, tp.NetworkSets)
	}
	if tp.Policies[0].Selector.String() != yp.Policies[0].Selector.String() || tp.NetworkSets[0].Nets[0] != yp.NetworkSets[0].Nets[0] ||
		tp.NetworkSets[1].Nets[0] != yp.NetworkSets[1].Nets[0] || tp.NetworkSets[0].Labels["kind"] != "partner" {
		t.Errorf("TOML and YAML differ: %+v / %+v", tp, yp)
	}
	if _, err := loadMem(map[string]string{"main.toml": "[gateway]\nnodeName = \"gw\"\n[[globalNetworkSet]]\nname = \"a\"\nnamespace = \"x\"\n"}); !hasDiag(diagsOf(err), "namespace", "unknown field") {
		t.Errorf("namespace on a global kind in TOML: %v", err)
	}
}
