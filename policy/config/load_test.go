package config

import (
	"crypto/sha256"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/selector"
)

// Every top-level TOML file under examples/ loads, and together they read
// every manifest there.
func TestExamplesLoad(t *testing.T) {
	mains, _ := filepath.Glob("../../examples/*/*.toml")
	if len(mains) < 7 {
		t.Fatalf("found only %d example configurations", len(mains))
	}
	read := map[string]bool{}
	for _, m := range mains {
		l, err := Load(m)
		if err != nil {
			t.Errorf("%s:\n%v", m, err)
			continue
		}
		if len(l.Policy.Policies) == 0 || len(l.Policy.HostEndpoints) == 0 {
			t.Errorf("%s: loaded no policies or host endpoints", m)
		}
		for _, f := range l.Files {
			read[f] = true
		}
	}
	manifests, _ := filepath.Glob("../../examples/*/*.yaml")
	for _, y := range manifests {
		if !read[filepath.Clean(y)] {
			t.Errorf("%s is not included by any example configuration", y)
		}
	}
}

// The guides' YAML and its TOML translation give the same model.
func TestYAMLAndTOMLGiveTheSameModel(t *testing.T) {
	opts := cmp.Options{
		cmpopts.IgnoreTypes(policy.Pos{}),
		cmp.Comparer(func(a, b *selector.Selector) bool {
			return a == nil && b == nil || a != nil && b != nil && a.String() == b.String()
		}),
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
		reComparer,
		cmpopts.EquateEmpty(),
		cmpopts.SortSlices(func(a, b policy.GlobalNetworkPolicy) bool { return a.Name < b.Name }),
	}
	for _, dir := range []string{"forwarded", "protect-hosts", "pre-dnat"} {
		y, err := Load(filepath.Join("../../examples", dir, "nfgate.toml"))
		if err != nil {
			t.Fatal(err)
		}
		n, err := Load(filepath.Join("../../examples", dir, "nfgate-native.toml"))
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(y.Policy, n.Policy, opts); d != "" {
			t.Errorf("%s: YAML and TOML models differ (-yaml +toml):\n%s", dir, d)
		}
	}
}

func TestBrokenExampleReportsEveryError(t *testing.T) {
	l, err := Load("testdata/broken/nfgate.toml")
	if err == nil {
		t.Fatal("broken configuration loaded")
	}
	if l == nil || len(l.Files) != 3 || l.Policy != nil {
		t.Fatalf("want Files of all 3 files and no Policy, got %+v", l)
	}
	want := []string{
		`testdata/broken/nfgate.toml:6:1: gateway.interfacePrefx: unknown field "interfacePrefx"`,
		`testdata/broken/policies.yaml:12:7: GlobalNetworkPolicy/allow-ssh: spec.egress[0].destination.prots: unknown field "prots"`,
		`testdata/broken/policies.yaml:23:3: GlobalNetworkPolicy/pre-dnat-egress: spec.egress: preDNAT policy cannot have any egress rules`,
		`testdata/broken/policies.yaml:31:13: GlobalNetworkPolicy/bad-selector: spec.selector: invalid selector`,
		`testdata/broken/fragment.toml:3:1: GlobalNetworkPolicy/allow-dns: selector: invalid selector`,
	}
	checkDiags(t, err, want)
}

func TestDefaults(t *testing.T) {
	l, err := loadMem(map[string]string{"main.toml": `
[gateway]
nodeName = "gw"

[[globalNetworkPolicy]]
name = "no-rules"

[[globalNetworkPolicy]]
name = "egress-only"
tier = "kube-admin"
egress = [{ action = "Allow" }]

[[globalNetworkPolicy]]
name = "both"
ingress = [{ action = "Deny" }]
egress = [{ action = "Allow", protocol = "ICMPv6" }]

[[globalNetworkPolicy]]
name = "ns"
namespaceSelector = "all()"

[[hostEndpoint]]
name = "mine"
node = "gw"
interfaceName = "eth0"

[[hostEndpoint]]
name = "theirs"
node = "other"
interfaceName = "eth0"
`})
	if err != nil {
		t.Fatal(err)
	}
	cfg := l.Policy
	types := func(i int) []policy.PolicyType { return cfg.Policies[i].Types }
	in, eg := policy.Ingress, policy.Egress
	if d := cmp.Diff([][]policy.PolicyType{{in}, {eg}, {in, eg}, {in}}, [][]policy.PolicyType{types(0), types(1), types(2), types(3)}); d != "" {
		t.Errorf("types defaulting (-want +got):\n%s", d)
	}
	if cfg.Policies[0].Tier != "default" || cfg.Policies[0].Selector.String() != "all()" || cfg.Policies[0].Order != nil {
		t.Errorf("policy defaults: tier %q selector %q order %v", cfg.Policies[0].Tier, cfg.Policies[0].Selector, cfg.Policies[0].Order)
	}
	// namespaceSelector all() means "in any namespace": Felix evaluates
	// has(projectcalico.org/namespace), which no unlabelled host endpoint has.
	if got := cfg.Policies[3].Selector.String(); got != "has(projectcalico.org/namespace)" {
		t.Errorf("namespaceSelector all(): Felix selector %q", got)
	}
	if p := cfg.Policies[2].Egress[0].Protocol; p == nil || p.Num != 58 || !p.Named {
		t.Errorf("ICMPv6 protocol: %+v", p)
	}
	var tiers []string
	for _, tr := range cfg.Tiers {
		tiers = append(tiers, tr.Name)
	}
	if d := cmp.Diff([]string{"kube-admin", "default"}, tiers); d != "" {
		t.Errorf("built-in tiers (-want +got):\n%s", d)
	}
	if cfg.Tiers[0].DefaultAction != policy.TierPass || *cfg.Tiers[1].Order != 1e6 || cfg.Tiers[1].DefaultAction != policy.TierDeny {
		t.Errorf("built-in tier settings: %+v", cfg.Tiers)
	}
	if len(cfg.HostEndpoints) != 1 || cfg.HostEndpoints[0].Name != "mine" {
		t.Errorf("host endpoints: %+v", cfg.HostEndpoints)
	}
	if len(l.Warnings) != 1 || !hasDiag(l.Warnings, "", "1 host endpoint(s) for other nodes (other)") {
		t.Errorf("warnings: %v", Errors(l.Warnings))
	}
	st := cfg.Settings
	if d := cmp.Diff(policy.Settings{
		NodeName: "gw", InterfacePrefix: []string{"cali"},
		FailsafeInbound: policy.DefaultFailsafeInbound(), FailsafeOutbound: policy.DefaultFailsafeOutbound(),
		DenyAction: policy.DenyDrop, DefaultEndpointToHostAction: policy.Deny,
		InterfaceExclude: DefaultInterfaceExclude(),
	}, st, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), reComparer); d != "" {
		t.Errorf("settings (-want +got):\n%s", d)
	}
	if d := cmp.Diff(DefaultRuntime(), l.Runtime); d != "" {
		t.Errorf("runtime (-want +got):\n%s", d)
	}
}

func TestFailsafeSyntax(t *testing.T) {
	pp := func(proto uint8, port uint16, net string) policy.ProtoPort {
		p := policy.ProtoPort{Protocol: proto, Port: port}
		if net != "" {
			p.Net = netip.MustParsePrefix(net)
		}
		return p
	}
	for _, tc := range []struct {
		in   string
		want []policy.ProtoPort
		err  string
	}{
		{"22", []policy.ProtoPort{pp(6, 22, "")}, ""},
		{"tcp:22, udp:68", []policy.ProtoPort{pp(6, 22, ""), pp(17, 68, "")}, ""},
		{"UDP:53", []policy.ProtoPort{pp(17, 53, "")}, ""},
		{"tcp:198.18.0.0/16:22", []policy.ProtoPort{pp(6, 22, "198.18.0.0/16")}, ""},
		{"tcp:198.18.0.5:22", []policy.ProtoPort{pp(6, 22, "198.18.0.5/32")}, ""},
		{"tcp:[::/0]:22", []policy.ProtoPort{pp(6, 22, "::/0")}, ""},
		{"udp:[2001:db8::1]:53", []policy.ProtoPort{pp(17, 53, "2001:db8::1/128")}, ""},
		{"tcp:0, tcp:65535", []policy.ProtoPort{pp(6, 0, ""), pp(6, 65535, "")}, ""},
		{"none", []policy.ProtoPort{}, ""},
		{"tcp:22,", []policy.ProtoPort{pp(6, 22, "")}, ""},
		{"", nil, "empty failsafe port list"},
		{"sctp:22", nil, "protocol must be tcp or udp"},
		{"tcp:65536", nil, "port must be a number 0-65535"},
		{"tcp:x", nil, "port must be a number"},
		{"tcp:300.0.0.0/8:22", nil, "invalid CIDR"},
		{"tcp:a:b:c:d", nil, "expected port, proto:port or proto:cidr:port"},
		{"tcp:[::/0:22", nil, "expected proto:[ipv6-cidr]:port"},
	} {
		got, err := ParseFailsafe(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseFailsafe(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseFailsafe(%q): %v", tc.in, err)
			continue
		}
		if d := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
			t.Errorf("ParseFailsafe(%q) (-want +got):\n%s", tc.in, d)
		}
	}
}

func TestGatewayAndEngineSettings(t *testing.T) {
	l, err := loadMem(map[string]string{"main.toml": `
[gateway]
nodeName = "gw"
interfacePrefix = "cali, tap"
failsafeInboundHostPorts = "none"
failsafeOutboundHostPorts = [{ protocol = "UDP", port = 53, net = "198.18.0.0/16" }, { port = 22 }]
iptablesFilterDenyAction = "REJECT"
defaultEndpointToHostAction = "Return"
disableConntrackInvalidCheck = true

[engine]
queueBase = 200
queues = 4
failureMode = "open"
markMask = 0xff000
deadline = "50ms"
traceFile = "-"
traceBuffer = 10
denyCacheSize = 0
denyCacheTTL = "5s"
iptablesBackend = "nft"
metricsAddress = "127.0.0.1:9464"
denyRegionSize = 0
denyRegionTTL = "1m"
`})
	if err != nil {
		t.Fatal(err)
	}
	st := l.Policy.Settings
	want := policy.Settings{
		NodeName: "gw", InterfacePrefix: []string{"cali", "tap"},
		FailsafeInbound: []policy.ProtoPort{},
		FailsafeOutbound: []policy.ProtoPort{
			{Protocol: 17, Port: 53, Net: netip.MustParsePrefix("198.18.0.0/16")}, {Protocol: 6, Port: 22},
		},
		DenyAction: policy.DenyReject, DefaultEndpointToHostAction: policy.Pass, DisableConntrackInvalidCheck: true,
		InterfaceExclude: DefaultInterfaceExclude(),
	}
	if d := cmp.Diff(want, st, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), reComparer); d != "" {
		t.Errorf("settings (-want +got):\n%s", d)
	}
	wantRT := Runtime{QueueBase: 200, Queues: 4, FailureMode: FailOpen, MarkMask: 0xff000, Deadline: 50 * time.Millisecond,
		TraceFile: "-", TraceBuffer: 10, DenyCacheSize: 0, DenyCacheTTL: 5 * time.Second, IptablesBackend: "nft", MetricsAddress: "127.0.0.1:9464",
		DenyRegionSize: 0, DenyRegionTTL: time.Minute}
	if d := cmp.Diff(wantRT, l.Runtime); d != "" {
		t.Errorf("runtime (-want +got):\n%s", d)
	}
}

func TestSettingErrors(t *testing.T) {
	for _, tc := range []struct{ toml, field, msg string }{
		{"[engine]\nmarkMask = \"0x00ff0000\"", "", ""},
		{"[engine]\nmarkMask = 0", "engine.markMask", "at least 7 bits"},
		{"[engine]\nmarkMask = 0x3f", "engine.markMask", "at least 7 bits"},
		{"[engine]\nmarkMask = 0x7f", "", ""},
		{"[engine]\nmarkMask = \"0x1_0000_0000\"", "engine.markMask", "32 bits"},
		{"[engine]\nmarkMask = \"zz\"", "engine.markMask", "invalid markMask"},
		{"[engine]\ndeadline = \"soon\"", "engine.deadline", "invalid duration"},
		{"[engine]\ndeadline = \"0s\"", "engine.deadline", "at least"},
		{"[engine]\nfailureMode = \"Open\"", "engine.failureMode", "\"closed\" or \"open\""},
		{"[engine]\niptablesBackend = \"ipfw\"", "engine.iptablesBackend", "auto, nft or legacy"},
		{"[engine]\nqueueBase = 70000", "engine.queueBase", "between 0 and 65535"},
		{"[engine]\nmetricsAddress = \"localhost\"", "engine.metricsAddress", "host:port"},
		{"[engine]\nmetricsAddress = \"localhost:9464\"", "", ""},
		{"[engine]\nmetricsAddress = \"[::1]:9464\"", "", ""},
		{"[engine]\nmetricsAddress = \":9464\"", "engine.metricsAddress", "not a loopback address"},
		{"[engine]\nmetricsAddress = \"0.0.0.0:9464\"", "engine.metricsAddress", "metricsAllowRemote = true"},
		{"[engine]\nmetricsAddress = \"198.18.0.1:9464\"", "engine.metricsAddress", "not a loopback address"},
		{"[engine]\nmetricsAddress = \"198.18.0.1:9464\"\nmetricsAllowRemote = true", "", ""},
		{"[engine]\nmetricsAllowRemote = \"yes\"", "engine.metricsAllowRemote", "true or false"},
		{"[engine]\ntraceBuffer = 0", "engine.traceBuffer", "between 1"},
		{"[gateway]\ninterfacePrefix = \" , \"", "gateway.interfacePrefix", "at least one prefix"},
		{"[gateway]\nfailsafeInboundHostPorts = [{ protocol = \"SCTP\", port = 22 }]", "gateway.failsafeInboundHostPorts[0].protocol", "rejected by Felix"},
		{"[gateway]\nfailsafeInboundHostPorts = [{ protocol = \"TCP\" }]", "gateway.failsafeInboundHostPorts[0]", "needs a port"},
		{"[gateway]\nfailsafeInboundHostPorts = 22", "gateway.failsafeInboundHostPorts", "Felix port list string"},
		{"[gateway]\ndefaultEndpointToHostAction = \"Deny\"", "gateway.defaultEndpointToHostAction", "Drop, Accept or Return"},
		{"[gateway]\nnodeName = \"\"", "gateway.nodeName", "must not be empty"},
		{"[globalNetworkPolicy]\nname = \"x\"", "globalNetworkPolicy", "[[globalNetworkPolicy]] (double brackets)"},
		{"[[tier]]\nname = \"security\"\norder = nan", "order", "finite"},
		{"[[globalNetworkSet]]\nname = \"s\"\nnets = [\"198.18.0.1/16\"]", "", ""},
	} {
		src := tc.toml
		if !strings.Contains(src, "nodeName") {
			if strings.HasPrefix(src, "[gateway]") {
				src = "[gateway]\nnodeName = \"gw\"" + strings.TrimPrefix(src, "[gateway]")
			} else {
				src = "[gateway]\nnodeName = \"gw\"\n" + src
			}
		}
		_, err := loadMem(map[string]string{"main.toml": src})
		if tc.msg == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.toml, err)
			}
			continue
		}
		if !hasDiag(diagsOf(err), tc.field, tc.msg) {
			t.Errorf("%q: want %s: ...%s..., got:\n%v", tc.toml, tc.field, tc.msg, err)
		}
	}
}

// FelixConfiguration "default" applies, "node.<nodeName>" overrides it, and a
// field set in both [gateway] and a FelixConfiguration is an error.
func TestFelixConfigurationLayers(t *testing.T) {
	felix := func(name, spec string) string {
		return "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: " + name + "}\nspec: " + spec + "\n---\n"
	}
	l, err := loadManifest(felix("default", "{iptablesFilterDenyAction: Reject, defaultEndpointToHostAction: Accept, prometheusMetricsEnabled: true}") +
		felix("node.gw", "{defaultEndpointToHostAction: Return, failsafeInboundHostPorts: []}") +
		felix("node.other", "{iptablesFilterDenyAction: Drop}"))
	if err != nil {
		t.Fatal(err)
	}
	st := l.Policy.Settings
	if st.DenyAction != policy.DenyReject || st.DefaultEndpointToHostAction != policy.Pass || len(st.FailsafeInbound) != 0 || len(st.FailsafeOutbound) != 9 {
		t.Errorf("layered settings: %+v", st)
	}
	if len(l.Warnings) != 2 || !hasDiag(l.Warnings, "spec.prometheusMetricsEnabled", "no meaning for nfgate") || !hasDiag(l.Warnings, "metadata.name", "another node") {
		t.Errorf("warnings: %v", Errors(l.Warnings))
	}

	_, err = loadMem(map[string]string{
		"main.toml": "include = [\"r.yaml\"]\n[gateway]\nnodeName = \"gw\"\ndefaultEndpointToHostAction = \"Drop\"\n",
		"r.yaml":    felix("default", "{defaultEndpointToHostAction: Accept}"),
	})
	if !hasDiag(diagsOf(err), "spec.defaultEndpointToHostAction", "also set in [gateway] at main.toml:4") {
		t.Errorf("conflict: %v", err)
	}
}

func TestIncludes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("nfgate.toml", "include = [\"frag.toml\", \"policies/*.yaml\", \"empty/*.yaml\"]\n[gateway]\nnodeName = \"gw\"\n")
	write("frag.toml", "include = [\"sub/more.toml\"]\n[[tier]]\nname = \"security\"\norder = 100\n")
	write("sub/more.toml", "[[globalNetworkSet]]\nname = \"lab\"\nnets = [\"198.18.0.0/15\"]\n")
	write("policies/b.yaml", gnp("{tier: security}"))
	write("policies/a.yaml", "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: a}\n")
	l, err := Load(filepath.Join(dir, "nfgate.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var rel []string
	h := sha256.New()
	for _, f := range l.Files {
		r, _ := filepath.Rel(dir, f)
		rel = append(rel, r)
		b, _ := os.ReadFile(f)
		h.Write(b)
	}
	if d := cmp.Diff([]string{"nfgate.toml", "frag.toml", "sub/more.toml", "policies/a.yaml", "policies/b.yaml"}, rel); d != "" {
		t.Errorf("files read (-want +got):\n%s", d)
	}
	if string(h.Sum(nil)) != string(l.Hash[:]) {
		t.Error("Hash is not SHA-256 over the files in order")
	}
	if len(l.Policy.Policies) != 2 || len(l.Policy.NetworkSets) != 1 || len(l.Policy.Tiers) != 2 {
		t.Errorf("loaded %d policies, %d sets, %d tiers", len(l.Policy.Policies), len(l.Policy.NetworkSets), len(l.Policy.Tiers))
	}
	if !hasDiag(l.Warnings, "include[2]", "matches no files") {
		t.Errorf("warnings: %v", Errors(l.Warnings))
	}

	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"cycle", map[string]string{"main.toml": "include = [\"a.toml\"]\n[gateway]\nnodeName = \"gw\"\n", "a.toml": "include = [\"b.toml\"]\n", "b.toml": "include = [\"a.toml\"]\n"},
			"b.toml:1:12: include[0]: include cycle: a.toml -> b.toml -> a.toml"},
		{"self", map[string]string{"main.toml": "include = [\"main.toml\"]\n[gateway]\nnodeName = \"gw\"\n"}, "include cycle: main.toml -> main.toml"},
		{"twice", map[string]string{"main.toml": "include = [\"a.toml\", \"a.toml\"]\n[gateway]\nnodeName = \"gw\"\n", "a.toml": ""}, "main.toml:1:22: include[1]: a.toml is included more than once"},
		{"missing", map[string]string{"main.toml": "include = [\"nope.yaml\"]\n[gateway]\nnodeName = \"gw\"\n"}, "main.toml:1:12: include[0]: cannot read nope.yaml: file does not exist"},
		{"file type", map[string]string{"main.toml": "include = [\"x.txt\"]\n[gateway]\nnodeName = \"gw\"\n"}, "unsupported file type"},
		{"gateway in fragment", map[string]string{"main.toml": "include = [\"a.toml\"]\n[gateway]\nnodeName = \"gw\"\n", "a.toml": "[gateway]\nnodeName = \"x\"\n"}, "a.toml:1:1: gateway: [gateway] is only allowed in the main configuration file"},
		{"no gateway", map[string]string{"main.toml": "[[tier]]\nname = \"t\"\n"}, "needs a [gateway] table with nodeName"},
		{"no nodeName", map[string]string{"main.toml": "[gateway]\ninterfacePrefix = \"cali\"\n"}, "main.toml:1:1: gateway.nodeName: nodeName must be specified"},
		{"YAML main", map[string]string{"main.toml": "x"}, ""},
	} {
		if tc.want == "" {
			continue
		}
		_, err := loadMem(tc.files)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := LoadBytes("r.yaml", []byte(gnp("{}"))); err == nil || !strings.Contains(err.Error(), "the main configuration must be a TOML file") {
		t.Errorf("YAML main file: %v", err)
	}
}

var reComparer = cmp.Comparer(func(a, b *regexp.Regexp) bool { return a.String() == b.String() })

// The deny-region keys are bounded: out-of-range values are errors naming
// file, line and key.
func TestDenyRegionBounds(t *testing.T) {
	for _, c := range []struct{ line, want string }{
		{`denyRegionSize = 70000`, `main.toml:4:1: engine.denyRegionSize: denyRegionSize must be between 0 and 65536`},
		{`denyRegionSize = -1`, `main.toml:4:1: engine.denyRegionSize: denyRegionSize must be between 0 and 65536`},
		{`denyRegionTTL = "500ms"`, `main.toml:4:1: engine.denyRegionTTL: denyRegionTTL must be at least 1s`},
		{`denyRegionTTL = "2h"`, `main.toml:4:1: engine.denyRegionTTL: denyRegionTTL must be at most 1h`},
	} {
		_, err := loadMem(map[string]string{"main.toml": "[gateway]\nnodeName = \"gw\"\n[engine]\n" + c.line + "\n"})
		checkDiags(t, err, []string{c.want})
	}
}
