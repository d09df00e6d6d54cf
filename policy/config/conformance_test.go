package config

import (
	"strings"
	"testing"
)

// Validator conformance with Calico v3.32.1: the cases of
// libcalico-go/lib/validator/v3/validator_test.go (tag v3.32.1) that concern
// the resources nfgate reads (HostEndpoint, GlobalNetworkPolicy,
// StagedGlobalNetworkPolicy, GlobalNetworkSet, NetworkSet, Tier, Profile,
// FelixConfiguration) and their parts
// (Rule, EntityRule, ICMPFields, ProtoPort, EndpointPort, HTTPMatch,
// protocols, ports, metadata), written as whole resources and run through
// nfgate's loader. Each case names the upstream line and description; the
// expectation is Calico's accept/reject.
//
// Where upstream validates a part on its own (a Rule, an EntityRule, an
// ICMPFields...), the case puts it in the smallest resource that carries it
// (an ingress rule of a GlobalNetworkPolicy, the source of such a rule, ...).
// Upstream's metadata cases use an IPPool as the carrier; here a
// GlobalNetworkSet (ObjectMeta is validated the same way for every kind), and
// WorkloadEndpointPort / WorkloadEndpointSpec interface cases become
// HostEndpoint ports and interfaceName.
//
// Not translated, because they have no form nfgate reads: NetworkPolicy
// (except its rule-level cases, which hold for a global policy's rules),
// StagedNetworkPolicy, StagedKubernetesNetworkPolicy, IPPool, BGP*, Node, KubeControllersConfiguration,
// WorkloadEndpoint-only fields (HostPort, IPNATs, ...), and L1437 (a port
// with both a name and numbers, which YAML cannot express).
//
// A case nfgate decides differently on purpose carries differs (the reason);
// docs/semantics.md lists them.

type confCase struct {
	ref     string // "L<line> <upstream description>"
	doc     string
	valid   bool   // Calico's answer
	differs string // why nfgate answers otherwise ("" when it agrees)
}

func calicoDoc(kind, meta, spec string) string {
	return "apiVersion: projectcalico.org/v3\nkind: " + kind + "\nmetadata: " + meta + "\nspec: " + spec + "\n"
}

func cGNP(spec string) string  { return calicoDoc("GlobalNetworkPolicy", "{name: thing}", spec) }
func cRule(rule string) string { return cGNP("{ingress: [" + rule + "]}") }
func cEntity(e string) string  { return cRule("{action: Allow, source: " + e + "}") }
func cHEP(spec string) string  { return calicoDoc("HostEndpoint", "{name: h}", spec) }
func cFelix(spec string) string {
	return calicoDoc("FelixConfiguration", "{name: default}", spec)
}
func cNamedGNP(name string) string { return calicoDoc("GlobalNetworkPolicy", "{name: "+name+"}", "{}") }
func cTier(name, spec string) string {
	return calicoDoc("Tier", "{name: "+name+"}", spec)
}
func cGNS(meta string) string { return calicoDoc("GlobalNetworkSet", meta, "{nets: [10.0.0.1]}") }
func cNS(meta string) string  { return calicoDoc("NetworkSet", meta, "{nets: [10.0.0.1]}") }
func cSGNP(name, spec string) string {
	return calicoDoc("StagedGlobalNetworkPolicy", "{name: "+name+"}", spec)
}
func cHEPPort(port string) string {
	return cHEP("{node: node01, interfaceName: eth0, ports: [" + port + "]}")
}

var (
	x63  = strings.Repeat("x", 63)
	x64  = strings.Repeat("x", 64)
	x253 = strings.Repeat("x", 253)
	x254 = strings.Repeat("x", 254)
)

func annotation(size int) string {
	return calicoDoc("GlobalNetworkSet", "{name: pool.name, annotations: {key: "+strings.Repeat("x", size)+"}}", "{}")
}

var conformanceCases = []confCase{
	// Validator errors table
	{"L151 should reject Rule with invalid port (name + number)", cRule(`{action: Allow, protocol: TCP, destination: {notPorts: ["0:456"]}}`), false, ""},

	// (API) Actions.
	{"L179 should accept allow action", cRule(`{action: Allow}`), true, ""},
	{"L180 should accept deny action", cRule(`{action: Deny}`), true, ""},
	{"L181 should accept log action", cRule(`{action: Log}`), true, ""},
	{"L182 should reject unknown action", cRule(`{action: unknown}`), false, ""},
	{"L183 should reject unknown action", cRule(`{action: allowfoo}`), false, ""},
	{"L184 should reject rule with no action", cRule(`{}`), false, ""},

	// (API model) EndpointPorts, as HostEndpoint ports.
	{"L187 should accept EndpointPort with tcp protocol", cHEPPort(`{name: a-valid-port, protocol: TCP, port: 1234}`), true, ""},
	{"L192 should accept EndpointPort with udp protocol", cHEPPort(`{name: a-valid-port, protocol: UDP, port: 1234}`), true, ""},
	{"L197 should accept EndpointPort with sctp protocol", cHEPPort(`{name: a-valid-port, protocol: SCTP, port: 1234}`), true, ""},
	{"L202 should reject EndpointPort with empty name", cHEPPort(`{name: "", protocol: UDP, port: 1234}`), false, ""},
	{"L213 should reject EndpointPort with no protocol", cHEPPort(`{name: a-valid-port, port: 1234}`), false, ""},
	{"L217 should reject EndpointPort with numeric protocol", cHEPPort(`{name: a-valid-port, protocol: 123, port: 1234}`), false, ""},
	{"L222 should reject EndpointPort with no port", cHEPPort(`{name: a-valid-port, protocol: TCP}`), false, ""},

	// (API) HostEndpointSpec.
	{"L314 should accept HostEndpointSpec with a port (m)", cHEPPort(`{name: a-valid-port, protocol: TCP, port: 1234}`), true, ""},
	{"L328 should reject HostEndpointSpec with an unnamed port (m)", cHEPPort(`{protocol: TCP, port: 1234}`), false, ""},
	{"L341 should reject HostEndpointSpec with a missing node", cHEP(`{interfaceName: eth0, ports: [{name: a-valid-port, protocol: TCP, port: 1234}]}`), false, ""},
	{"L354 should accept HostEndpointSpec with name-clashing ports (m)", cHEPPort(`{name: a-valid-port, protocol: TCP, port: 1234}, {name: a-valid-port, protocol: UDP, port: 5456}`), true, ""},
	{"L373 should accept HostEndpointSpec with interfaceName *", cHEP(`{interfaceName: "*", node: node01}`), true, ""},

	// GlobalNetworkSets.
	{"L381 should accept GlobalNetworkSetSpec with CIDRs and IPs", calicoDoc("GlobalNetworkSet", "{name: s}", `{nets: [10.0.0.1, 11.0.0.0/8, "dead:beef::", "dead:beef::/96"]}`), true, ""},
	{"L392 should reject GlobalNetworkSetSpec with bad CIDR", calicoDoc("GlobalNetworkSet", "{name: s}", `{nets: [garbage]}`), false, ""},
	{"L400 should accept GlobalNetworkSet with labels", cGNS(`{name: testset, labels: {a: b}}`), true, ""},
	{"L414 should reject GlobalNetworkSet with reserved labels", cGNS(`{name: testset, labels: {projectcalico.org/namespace: foo}}`), false, ""},
	{"L428 should reject GlobalNetworkSet with bad name", cGNS(`{name: test$set}`), false, ""},
	// NetworkSets (namespaced; calicoctl puts one without a namespace in "default").
	{"L439 should accept NetworkSetSpec with CIDRs and IPs", calicoDoc("NetworkSet", "{name: s, namespace: ns1}", `{nets: [10.0.0.1, 11.0.0.0/8, "dead:beef::", "dead:beef::/96"]}`), true, ""},
	{"L450 should reject NetworkSetSpec with bad CIDR", calicoDoc("NetworkSet", "{name: s, namespace: ns1}", `{nets: [garbage]}`), false, ""},
	{"L458 should accept NetworkSet with labels", cNS(`{name: testset, labels: {a: b}}`), true, ""},
	{"L472 should reject NetworkSet with reserved labels", cNS(`{name: testset, labels: {projectcalico.org/namespace: foo}}`), false, ""},
	{"L486 should reject NetworkSet with bad name", cNS(`{name: test$set}`), false, ""},

	// (API) IP version.
	{"L554 should accept IP version 4", cRule(`{action: Allow, ipVersion: 4}`), true, ""},
	{"L555 should accept IP version 6", cRule(`{action: Allow, ipVersion: 6}`), true, ""},
	{"L556 should reject IP version 0", cRule(`{action: Allow, ipVersion: 0}`), false, ""},

	// (API) ProtoPort, as FelixConfiguration failsafe ports.
	{"L559 should accept ProtoPort.Protocol: UDP", cFelix(`{failsafeInboundHostPorts: [{protocol: UDP, port: 0}]}`), true, ""},
	{"L560 should accept ProtoPort.Protocol: TCP", cFelix(`{failsafeInboundHostPorts: [{protocol: TCP, port: 20}]}`), true, ""},
	{"L561 should accept ProtoPort.Protocol: SCTP", cFelix(`{failsafeInboundHostPorts: [{protocol: SCTP, port: 20}]}`), true,
		"Felix v3.32.1 panics on an SCTP failsafe port (its failsafe syntax knows only tcp and udp; checked): nfgate refuses a configuration Felix cannot run with"},
	{"L562 should reject random ProtoPort.Protocol", cFelix(`{failsafeInboundHostPorts: [{protocol: jolly-UDP, port: 0}]}`), false, ""},

	// (API) Selectors.
	{"L566 should accept valid selector", cEntity(`{selector: 'foo == "bar"'}`), true, ""},
	{"L567 should accept valid selector with 'has' and a '/'", cEntity(`{selector: "has(calico/k8s_ns)"}`), true, ""},
	{"L568 should accept valid selector with 'has' and two '/'", cEntity(`{selector: "has(calico/k8s_ns/role)"}`), true, ""},
	{"L569 should accept valid selector with 'has' and two '/' and '-.'", cEntity(`{selector: "has(calico/k8s_NS-.1/role)"}`), true, ""},
	{"L570 should reject invalid selector", cEntity(`{selector: "thing=hello &"}`), false, ""},

	// (API) Labels and Annotations.
	{"L573 should accept a valid labelsToApply", calicoDoc("Profile", "{name: p}", "{labelsToApply: {project.calico.org/my-valid-label: "+x63+"}}"), true, ""},
	{"L574 should reject an excessively long value in labelsToApply", calicoDoc("Profile", "{name: p}", "{labelsToApply: {project.calico.org/my-valid-label: "+x64+"}}"), false, ""},
	{"L575 should reject . at start of key in a labelsToApply", calicoDoc("Profile", "{name: p}", "{labelsToApply: {.mylabel: value}}"), false, ""},
	{"L576 should reject ! in a labelsToApply", calicoDoc("Profile", "{name: p}", `{labelsToApply: {"my!nvalid-label": value}}`), false, ""},
	{"L577 should reject $ in a labelsToApply", calicoDoc("Profile", "{name: p}", `{labelsToApply: {"my-invalid-label$": value}}`), false, ""},
	{"L578 should accept valid labels in metadata", cGNS("{name: pool.name, labels: {projectcalico.org/label: " + x63 + "}}"), true, ""},
	{"L590 should reject an excessively long value in labels in metadata", cGNS("{name: pool.name, labels: {projectcalico.org/label: " + x64 + "}}"), false, ""},
	{"L601 should reject invalid labels in metadata (uppercase domain)", cGNS("{name: pool.name, labels: {ProjectCalico.org/label: value}}"), false, ""},
	{"L612 should accept valid labels in metadata (uppercase name)", cGNS("{name: pool.name, labels: {projectcalico.org/Label: value}}"), true, ""},
	{"L623 should reject invalid annotations in metadata", cGNS(`{name: pool.name, annotations: {"projectcalico.org$label": value}}`), false, ""},
	{"L634 should accept valid annotations in metadata (uppercase domain and name)", cGNS("{name: pool.name, annotations: {ProjectCalico.org/Label: value}}"), true, ""},
	{"L645 should reject invalid annotations in metadata", cGNS(`{name: pool.name, annotations: {"projectcalico.org$label": value}}`), false, ""},
	{"L656 should allow annotations in metadata <= 256k", annotation(256<<10 - 3), true, ""},
	{"L667 should disallow annotations in metadata > 256k", annotation(256<<10 - 2), false, ""},
	{"L678 should allow a name of 253 chars", cGNS("{name: " + x253 + "}"), true, ""},
	{"L686 should disallow a name of 254 chars", cGNS("{name: " + x254 + "}"), false, ""},

	// (API) Interface, as HostEndpoint interfaceName.
	{"L712 should accept a valid interface", cHEP(`{node: n, interfaceName: Valid_Iface.0-9}`), true, ""},
	{"L713 should reject an interface that is too long", cHEP(`{node: n, interfaceName: interfaceTooLong}`), false, ""},
	{"L714 should reject & in an interface", cHEP(`{node: n, interfaceName: "Invalid&Intface"}`), false, ""},
	{"L715 should reject # in an interface", cHEP(`{node: n, interfaceName: "Invalid#Intface"}`), false, ""},
	{"L716 should reject : in an interface", cHEP(`{node: n, interfaceName: "Invalid:Intface"}`), false, ""},

	// (API) FelixConfiguration.
	{"L719 should accept a valid IptablesBackend value 'Legacy'", cFelix(`{iptablesBackend: Legacy}`), true, ""},
	{"L720 should accept a valid IptablesBackend value 'NFT'", cFelix(`{iptablesBackend: NFT}`), true, ""},
	{"L721 should accept a valid IptablesBackend value 'Auto'", cFelix(`{iptablesBackend: Auto}`), true, ""},
	{"L722 should reject an invalid IptablesBackend value 'badVal'", cFelix(`{iptablesBackend: badVal}`), false, ""},
	{"L723 should accept a valid DefaultEndpointToHostAction value", cFelix(`{defaultEndpointToHostAction: Drop}`), true, ""},
	{"L724 should reject an invalid DefaultEndpointToHostAction value 'drop' (lower case)", cFelix(`{defaultEndpointToHostAction: drop}`), false, ""},
	{"L725 should accept a valid IptablesFilterAllowAction value 'Accept'", cFelix(`{iptablesFilterAllowAction: Accept}`), true, ""},
	{"L726 should accept a valid IptablesMangleAllowAction value 'Return'", cFelix(`{iptablesMangleAllowAction: Return}`), true, ""},
	{"L727 should reject an invalid IptablesMangleAllowAction value 'Drop'", cFelix(`{iptablesMangleAllowAction: Drop}`), false, ""},
	{"L728 should accept a valid IptablesFilterDenyAction value 'Drop'", cFelix(`{iptablesFilterDenyAction: Drop}`), true, ""},
	{"L729 should accept a valid IptablesFilterDenyAction value 'Reject'", cFelix(`{iptablesFilterDenyAction: Reject}`), true, ""},
	{"L730 should accept a valid KubeNodePortRanges value", cFelix(`{kubeNodePortRanges: ["3000:4000", "5000:6000", "7000:8000", "8000:9000", "10000:11000", "12000:13000", 15000]}`), true, ""},
	{"L736 should reject a too-long KubeNodePortRanges value", cFelix(`{kubeNodePortRanges: ["3000:4000", "5000:6000", "7000:8000", "8000:9000", "10000:11000", "12000:13000", "14000:15000", "16000:17000"]}`), false, ""},
	{"L742 should reject a named port KubeNodePortRanges value", cFelix(`{kubeNodePortRanges: [testport]}`), false, ""},
	{"L745 should accept a valid list of ExternalNodesCIDRList", cFelix(`{externalNodesList: [1.1.1.1, 1.1.1.2/32, 1.1.3.0/23]}`), true, ""},
	{"L747 should reject an invalid list of ExternalNodesCIDRList", cFelix(`{externalNodesList: [foobar, 1.1.1.1]}`), false, ""},
	{"L748 should reject IPv6 list of ExternalNodesCIDRList", cFelix(`{externalNodesList: ["abcd::1", "abef::2/128"]}`), false, ""},
	{"L750 should accept aan empty OpenStackRegion", cFelix(`{openstackRegion: ""}`), true, ""},
	{"L751 should accept a valid OpenStackRegion", cFelix(`{openstackRegion: foo}`), true, ""},
	{"L752 should reject an invalid OpenStackRegion", cFelix(`{openstackRegion: FOO}`), false, ""},
	{"L753 should reject an overlong OpenStackRegion", cFelix(`{openstackRegion: my-region-has-a-very-long-and-extremely-interesting-name}`), false, ""},
	{"L755 should reject an invalid LogSeverityScreen value 'badVal'", cFelix(`{logSeverityScreen: badVal}`), false, ""},
	{"L756 should reject an invalid LogSeverityFile value 'badVal'", cFelix(`{logSeverityFile: badVal}`), false, ""},
	{"L757 should reject an invalid LogSeveritySys value 'badVal'", cFelix(`{logSeveritySys: badVal}`), false, ""},
	{"L758 should reject an invalid LogSeveritySys value 'Critical'", cFelix(`{logSeveritySys: Critical}`), false, ""},
	{"L759 should accept a valid LogSeverityScreen value 'Fatal'", cFelix(`{logSeverityScreen: Fatal}`), true, ""},
	{"L760 should accept a valid LogSeverityScreen value 'Warning'", cFelix(`{logSeverityScreen: Warning}`), true, ""},
	{"L761 should accept a valid LogSeverityScreen value 'Trace'", cFelix(`{logSeverityScreen: Trace}`), true, ""},
	{"L762 should accept a valid LogSeverityFile value 'Debug'", cFelix(`{logSeverityFile: Debug}`), true, ""},
	{"L763 should accept a valid LogSeveritySys value 'Info'", cFelix(`{logSeveritySys: Info}`), true, ""},
	{"L764 should accept a valid LogSeveritySys value 'Trace'", cFelix(`{logSeveritySys: Trace}`), true, ""},
	{"L766 should accept a valid IptablesNATOutgoingInterfaceFilter value 'cali-123'", cFelix(`{iptablesNATOutgoingInterfaceFilter: cali-123}`), true, ""},
	{"L767 should reject an invalid IptablesNATOutgoingInterfaceFilter value 'cali@123'", cFelix(`{iptablesNATOutgoingInterfaceFilter: "cali@123"}`), false, ""},
	{"L769 should reject an invalid BPFLogLevel value 'badVal'", cFelix(`{bpfLogLevel: badVal}`), false, ""},
	{"L770 should accept a valid BPFLogLevel value 'Info'", cFelix(`{bpfLogLevel: Info}`), true, ""},
	{"L771 should accept a valid BPFLogLevel value 'Debug'", cFelix(`{bpfLogLevel: Debug}`), true, ""},
	{"L772 should accept a valid BPFLogLevel value 'Off'", cFelix(`{bpfLogLevel: "Off"}`), true, ""},
	{"L774 should reject a valid BPFExternalServiceMode value 'Foo'", cFelix(`{bpfExternalServiceMode: Foo}`), false, ""},
	{"L775 should accept a valid BPFExternalServiceMode value 'Tunnel'", cFelix(`{bpfExternalServiceMode: Tunnel}`), true, ""},
	{"L776 should accept a valid BPFExternalServiceMode value 'DSR'", cFelix(`{bpfExternalServiceMode: DSR}`), true, ""},
	{"L778 should reject a negative BPFExtToServiceConnmark value", cFelix(`{bpfExtToServiceConnmark: -1}`), false, ""},
	{"L779 should reject a gte 32bit BPFExtToServiceConnmark value", cFelix(`{bpfExtToServiceConnmark: 4294967296}`), false, ""},
	{"L780 should accept a zero BPFExtToServiceConnmark value", cFelix(`{bpfExtToServiceConnmark: 0}`), true, ""},
	{"L781 should accept a 0xffffffff BPFExtToServiceConnmark value", cFelix(`{bpfExtToServiceConnmark: 4294967295}`), true, ""},
	{"L783 should reject an invalid BPFDataIfacePattern value '*'", cFelix(`{bpfDataIfacePattern: "*"}`), false, ""},
	{"L784 should accept a valid BPFDataIfacePattern value 'eth.*'", cFelix(`{bpfDataIfacePattern: "eth.*"}`), true, ""},
	{"L786 should accept valid route table range", cFelix(`{routeTableRange: {min: 1, max: 250}}`), true, ""},
	{"L787 should reject route table range min too small", cFelix(`{routeTableRange: {min: 0, max: 250}}`), false, ""},
	{"L788 should reject route table range min negative", cFelix(`{routeTableRange: {min: -5, max: 250}}`), false, ""},
	{"L789 should reject route table range max < min", cFelix(`{routeTableRange: {min: 50, max: 45}}`), false, ""},
	{"L790 should reject route table range max too large", cFelix(`{routeTableRange: {min: 1, max: 253}}`), false, ""},
	{"L791 should accept route table range with min == max", cFelix(`{routeTableRange: {min: 8, max: 8}}`), true, ""},
	{"L793 should accept valid route table ranges", cFelix(`{routeTableRanges: [{min: 1, max: 10000}]}`), true, ""},
	{"L794 should accept route table ranges with min == max", cFelix(`{routeTableRanges: [{min: 8, max: 8}]}`), true, ""},
	{"L795 should accept multiple route table ranges with min == max", cFelix(`{routeTableRanges: [{min: 8, max: 8}, {min: 7, max: 7}]}`), true, ""},
	{"L796 should reject route table ranges min too small", cFelix(`{routeTableRanges: [{min: 0, max: 250}]}`), false, ""},
	{"L797 should reject route table ranges min negative", cFelix(`{routeTableRanges: [{min: -5, max: 250}]}`), false, ""},
	{"L798 should reject route table ranges max < min", cFelix(`{routeTableRanges: [{min: 50, max: 45}]}`), false, ""},
	{"L799 should reject route table ranges max too large", cFelix(`{routeTableRanges: [{min: 1, max: 64424509440}]}`), false, ""},
	{"L800 should reject single route table ranges targeting too many tables", cFelix(`{routeTableRanges: [{min: 1, max: 65536}]}`), false, ""},
	{"L801 should reject multiple route table ranges targeting too many tables", cFelix(`{routeTableRanges: [{min: 1, max: 2}, {min: 3, max: 4}, {min: 5, max: 65536}]}`), false, ""},
	{"L803 should reject spec with both RouteTableRanges and RouteTableRange set", cFelix(`{routeTableRanges: [{min: 1, max: 250}], routeTableRange: {min: 1, max: 250}}`), false, ""},
	{"L812 should reject an invalid MTUIfacePattern value '*'", cFelix(`{mtuIfacePattern: "*"}`), false, ""},
	{"L813 should accept a valid MTUIfacePattern value 'eth.*'", cFelix(`{mtuIfacePattern: "eth.*"}`), true, ""},
	{"L815 should allow HealthTimeoutOverride 0", cFelix(`{healthTimeoutOverrides: [{name: Valid, timeout: 0s}]}`), true, ""},
	{"L816 should reject HealthTimeoutOverride -1", cFelix(`{healthTimeoutOverrides: [{name: Valid, timeout: -1ns}]}`), false, ""},
	{"L817 should reject HealthTimeoutOverride with bad name", cFelix(`{healthTimeoutOverrides: [{name: "%", timeout: 10ns}]}`), false, ""},
	{"L818 should reject HealthTimeoutOverride with no name", cFelix(`{healthTimeoutOverrides: [{name: "", timeout: 10ns}]}`), false, ""},
	{"L819 invalid route priority 0", cFelix(`{ipv4ElevatedRoutePriority: 0}`), false, ""},
	{"L820 valid route priority 1", cFelix(`{ipv4ElevatedRoutePriority: 1}`), true, ""},
	{"L821 valid route priority 10000", cFelix(`{ipv4ElevatedRoutePriority: 10000}`), true, ""},
	{"L822 valid route priority 2147483646", cFelix(`{ipv4ElevatedRoutePriority: 2147483646}`), true, ""},
	{"L823 invalid route priority 2147483647", cFelix(`{ipv4ElevatedRoutePriority: 2147483647}`), false, ""},

	// (API) Protocol, as a rule's protocol.
	{"L826 should accept protocol TCP", cRule(`{action: Allow, protocol: TCP}`), true, ""},
	{"L827 should accept protocol UDP", cRule(`{action: Allow, protocol: UDP}`), true, ""},
	{"L828 should accept protocol ICMP", cRule(`{action: Allow, protocol: ICMP}`), true, ""},
	{"L829 should accept protocol ICMPv6", cRule(`{action: Allow, protocol: ICMPv6}`), true, ""},
	{"L830 should accept protocol SCTP", cRule(`{action: Allow, protocol: SCTP}`), true, ""},
	{"L831 should accept protocol UDPLite", cRule(`{action: Allow, protocol: UDPLite}`), true, ""},
	{"L832 should accept protocol 1 as int", cRule(`{action: Allow, protocol: 1}`), true, ""},
	{"L833 should accept protocol 255 as int", cRule(`{action: Allow, protocol: 255}`), true, ""},
	{"L834 should accept protocol 255 as string", cRule(`{action: Allow, protocol: "255"}`), true, ""},
	{"L835 should accept protocol 1 as string", cRule(`{action: Allow, protocol: "1"}`), true, ""},
	{"L836 should reject protocol 0 as int", cRule(`{action: Allow, protocol: 0}`), false, ""},
	{"L837 should reject protocol 256 as string", cRule(`{action: Allow, protocol: "256"}`), false, ""},
	{"L838 should reject protocol 0 as string", cRule(`{action: Allow, protocol: "0"}`), false, ""},
	{"L839 should reject protocol tcpfoo", cRule(`{action: Allow, protocol: tcpfoo}`), false, ""},
	{"L840 should reject protocol footcp", cRule(`{action: Allow, protocol: footcp}`), false, ""},
	{"L841 should reject protocol tcp", cRule(`{action: Allow, protocol: tcp}`), false, ""},

	// (API) HostEndpointSpec.
	{"L946 should accept host endpoint with interface and node", cHEP(`{interfaceName: eth0, node: node01}`), true, ""},
	{"L951 should accept host endpoint with expected IPs", cHEP(`{expectedIPs: [1.2.3.4, "aabb:aabb::ffff"], node: node01}`), true, ""},
	{"L956 should accept host endpoint with interface and expected IPs", cHEP(`{interfaceName: eth0, expectedIPs: [1.2.3.4, "aabb:aabb::ffff"], node: node01}`), true, ""},
	{"L962 should reject host endpoint with no config", cHEP(`{}`), false, ""},
	{"L963 should reject host endpoint with blank interface an no IPs", cHEP(`{interfaceName: "", expectedIPs: [], node: node01}`), false, ""},
	{"L969 should accept host endpoint with prefixed profile name", cHEP(`{interfaceName: eth0, profiles: [knp.default.fun, knp.default.funner.11234-a], node: node01}`), true, ""},
	{"L975 should accept host endpoint without prefixed profile name", cHEP(`{interfaceName: eth0, profiles: [fun-funner1234], node: node01}`), true, ""},
	{"L981 should reject host endpoint with no prefix and dots at the start of the name", cHEP(`{interfaceName: eth0, profiles: [.fun], node: node01}`), false, ""},

	// (API) ICMPFields, in an ICMP rule.
	{"L1329 should accept ICMP with no config", cRule(`{action: Allow, protocol: ICMP, icmp: {}}`), true, ""},
	{"L1330 should accept ICMP with type with min value", cRule(`{action: Allow, protocol: ICMP, icmp: {type: 0}}`), true, ""},
	{"L1331 should accept ICMP with type with max value", cRule(`{action: Allow, protocol: ICMP, icmp: {type: 254}}`), true, ""},
	{"L1332 should accept ICMP with type and code with min value", cRule(`{action: Allow, protocol: ICMP, icmp: {type: 128, code: 0}}`), true, ""},
	{"L1333 should accept ICMP with type and code with min value", cRule(`{action: Allow, protocol: ICMP, icmp: {type: 128, code: 255}}`), true, ""},
	{"L1334 should reject ICMP with code and no type", cRule(`{action: Allow, protocol: ICMP, icmp: {code: 0}}`), false, ""},
	{"L1335 should reject ICMP with type too high", cRule(`{action: Allow, protocol: ICMP, icmp: {type: 255}}`), false, ""},
	{"L1336 should reject ICMP with code too high", cRule(`{action: Allow, protocol: ICMP, icmp: {type: 128, code: 256}}`), false, ""},

	// (API) Rule.
	{"L1339 should accept Rule with protocol SCTP and no other config", cRule(`{action: Allow, protocol: SCTP}`), true, ""},
	{"L1344 should accept Rule with source ports and protocol type 6", cRule(`{action: Allow, protocol: 6, source: {ports: [1]}}`), true, ""},
	{"L1352 should accept Rule with source named ports and protocol type 6", cRule(`{action: Allow, protocol: 6, source: {ports: [foo]}}`), true, ""},
	{"L1360 should accept Rule with source named ports and protocol type tcp", cRule(`{action: Allow, protocol: TCP, source: {ports: [foo]}}`), true, ""},
	{"L1368 should accept Rule with source named ports and protocol type udp", cRule(`{action: Allow, protocol: UDP, source: {ports: [foo]}}`), true, ""},
	{"L1376 should accept Rule with empty source ports and protocol type 7", cRule(`{action: Allow, protocol: 7, source: {ports: []}}`), true, ""},
	{"L1384 should accept Rule with source !ports and protocol type 17", cRule(`{action: Allow, protocol: 17, source: {notPorts: [1]}}`), true, ""},
	{"L1392 should accept Rule with empty source !ports and protocol type 100", cRule(`{action: Allow, protocol: 100, source: {notPorts: []}}`), true, ""},
	{"L1400 should accept Rule with dest ports and protocol type tcp", cRule(`{action: Allow, protocol: TCP, destination: {ports: [1]}}`), true, ""},
	{"L1408 should reject Rule with dest ports and no protocol", cRule(`{action: Allow, destination: {ports: [1]}}`), false, ""},
	{"L1415 should accept Rule with dest named ports and no protocol", cRule(`{action: Allow, destination: {ports: [foo]}}`), true, ""},
	{"L1422 should accept Rule with !source named ports and no protocol", cRule(`{action: Allow, source: {notPorts: [foo]}}`), true, ""},
	{"L1429 should reject Rule with invalid port (port 0)", cRule(`{action: Allow, protocol: TCP, destination: {notPorts: [0]}}`), false, ""},
	{"L1449 should reject named port Rule with invalid protocol", cRule(`{action: Allow, protocol: unknown, destination: {notPorts: [foo]}}`), false, ""},
	{"L1457 should accept Rule with empty dest ports and protocol type SCTP", cRule(`{action: Allow, protocol: SCTP, destination: {ports: []}}`), true, ""},
	{"L1465 should accept Rule with empty dest !ports and protocol type ICMPv6", cRule(`{action: Allow, ipVersion: 6, protocol: ICMPv6, destination: {notPorts: []}}`), true, ""},
	{"L1474 should reject Rule with icmp fields and no protocol", cRule(`{action: Allow, ipVersion: 4, icmp: {type: 0}}`), false, ""},
	{"L1482 should not reject Rule with icmp fields and no ipversion", cRule(`{action: Allow, protocol: ICMP, icmp: {type: 0}}`), true, ""},
	{"L1490 should not reject Rule with icmpv6 fields and no ipversion", cRule(`{action: Allow, protocol: ICMPv6, icmp: {type: 0}}`), true, ""},
	{"L1498 should reject Rule with mismatched ipversion for icmp", cRule(`{action: Allow, protocol: ICMP, ipVersion: 6}`), false, ""},
	{"L1504 should reject Rule with mismatched ipversion for icmpv6", cRule(`{action: Allow, protocol: ICMPv6, ipVersion: 4}`), false, ""},
	{"L1510 should allow Rule with correct ipversion for icmp", cRule(`{action: Allow, ipVersion: 4, protocol: ICMP, icmp: {type: 0}}`), true, ""},
	{"L1519 should allow Rule with correct ipversion for icmpv6", cRule(`{action: Allow, ipVersion: 6, protocol: ICMPv6, icmp: {type: 0}}`), true, ""},
	{"L1528 should reject Rule with source ports and protocol type 7", cRule(`{action: Allow, protocol: 7, source: {ports: [1]}}`), false, ""},
	{"L1536 should reject Rule with source !ports and protocol type 100", cRule(`{action: Allow, protocol: 100, source: {notPorts: [1]}}`), false, ""},
	{"L1544 should allow Rule with dest ports and protocol type sctp", cRule(`{action: Allow, protocol: SCTP, destination: {ports: [1]}}`), true, ""},
	{"L1552 should reject Rule with dest !ports and protocol type udp", cRule(`{action: Allow, ipVersion: 4, protocol: ICMP, destination: {notPorts: [1]}}`), false, ""},
	{"L1561 should reject Rule with invalid source ports and protocol type tcp", cRule(`{action: Allow, protocol: TCP, source: {ports: ["200:100"]}}`), false, ""},
	{"L1569 should reject Rule with invalid source !ports and protocol type tcp", cRule(`{action: Allow, protocol: TCP, source: {notPorts: ["200:100"]}}`), false, ""},
	{"L1577 should reject Rule with invalid dest ports and protocol type tcp", cRule(`{action: Allow, protocol: TCP, destination: {ports: ["200:100"]}}`), false, ""},
	{"L1585 should reject Rule with invalid dest !ports and protocol type tcp", cRule(`{action: Allow, protocol: TCP, destination: {notPorts: ["200:100"]}}`), false, ""},
	{"L1593 should reject Rule with one invalid port in the port range (MinPort 0)", cRule(`{action: Allow, protocol: TCP, destination: {notPorts: ["0:100"]}}`), false, ""},
	{"L1601 should reject rule mixed IPv4 (src) and IPv6 (dest)", cRule(`{action: Allow, protocol: TCP, source: {nets: [1.2.3.0/26]}, destination: {nets: ["aabb:aabb::0000/122"]}}`), false, ""},
	{"L1612 should reject rule mixed IPv6 (src) and IPv4 (dest)", cRule(`{action: Allow, protocol: TCP, source: {nets: ["aabb:aabb::/128"]}, destination: {nets: [1.2.0.0/32]}}`), false, ""},
	{"L1623 should reject rule mixed IPv6 version and IPv4 Net", cRule(`{action: Allow, protocol: TCP, ipVersion: 6, source: {nets: [1.0.0.0/10]}, destination: {nets: [1.2.0.0/32]}}`), false, ""},
	{"L1635 should reject rule mixed IPVersion and Source Net IP version", cRule(`{action: Allow, protocol: TCP, ipVersion: 6, source: {nets: [1.2.3.4/32]}}`), false, ""},
	{"L1644 should reject rule mixed IPVersion and Dest Net IP version", cRule(`{action: Allow, protocol: TCP, ipVersion: 4, destination: {nets: ["aabb:aabb::ffff/128"]}}`), false, ""},
	{"L1653 net list: should reject rule mixed IPv4 (src) and IPv6 (dest)", cRule(`{action: Allow, protocol: TCP, source: {nets: [1.2.3.0/26]}, destination: {nets: ["aabb:aabb::0000/122"]}}`), false, ""},
	{"L1664 net list: should reject rule mixed IPv6 (src) and IPv4 (dest)", cRule(`{action: Allow, protocol: TCP, source: {nets: ["aabb:aabb::/128"]}, destination: {nets: [1.2.0.0/32]}}`), false, ""},
	{"L1675 net list: should reject rule mixed IPv6 version and IPv4 Net", cRule(`{action: Allow, protocol: TCP, ipVersion: 6, source: {nets: [1.0.0.0/10]}, destination: {nets: [1.2.0.0/32]}}`), false, ""},
	{"L1687 net list: should reject rule mixed IPv6 version and IPv4 Net", cRule(`{action: Allow, protocol: TCP, ipVersion: 6, source: {nets: [1.0.0.0/10]}, destination: {notNets: [1.2.0.0/32]}}`), false, ""},
	{"L1699 net list: should reject rule mixed IPVersion and Source Net IP version", cRule(`{action: Allow, protocol: TCP, ipVersion: 6, source: {nets: [1.2.3.4/32]}}`), false, ""},
	{"L1708 net list: should reject rule mixed IPVersion and Dest Net IP version", cRule(`{action: Allow, protocol: TCP, ipVersion: 4, destination: {nets: ["aabb:aabb::ffff/128"]}}`), false, ""},
	{"L1717 should reject rule with an IPv6 protocol and an IPVersion=4", cRule(`{action: Allow, protocol: ICMPv6, ipVersion: 4}`), false, ""},
	{"L1723 should reject rule with an IPv4 protocol and an IPVersion=6", cRule(`{action: Allow, protocol: ICMP, ipVersion: 6}`), false, ""},
	{"L1729 should accept Allow rule with HTTP clause", cRule(`{action: Allow, http: {methods: [GET]}}`), true, ""},
	{"L1734 should reject Deny rule with HTTP clause", cRule(`{action: Deny, http: {methods: [GET]}}`), false, ""},
	{"L1739 should reject non-TCP protocol with HTTP clause", cRule(`{action: Allow, protocol: UDP, http: {methods: [GET]}}`), false, ""},
	{"L1745 should accept TCP protocol with HTTP clause", cRule(`{action: Allow, protocol: TCP, http: {methods: [GET]}}`), true, ""},
	{"L1751 should accept missing protocol with HTTP clause", cRule(`{action: Allow, http: {methods: [GET]}}`), true, ""},
	{"L1756 should accept Rule with valid annotations", cRule(`{action: Allow, metadata: {annotations: {foo: bar}}}`), true, ""},
	{"L1761 should reject Rule with invalid annotations", cRule(`{action: Allow, metadata: {annotations: {"...": bar}}}`), false, ""},

	// AWS source-destination-check and BPF NAT settings.
	{"L2299 should accept a valid AWSSrcDstCheck value 'DoNothing'", cFelix(`{awsSrcDstCheck: DoNothing}`), true, ""},
	{"L2300 should accept a valid AWSSrcDstCheck value 'Enable'", cFelix(`{awsSrcDstCheck: Enable}`), true, ""},
	{"L2301 should accept a valid AWSSrcDstCheck value 'Disable'", cFelix(`{awsSrcDstCheck: Disable}`), true, ""},
	{"L2302 should reject an invalid AWSSrcDstCheck value 'enable'", cFelix(`{awsSrcDstCheck: enable}`), false, ""},
	{"L2303 should reject an invalid AWSSrcDstCheck value 'badVal'", cFelix(`{awsSrcDstCheck: badVal}`), false, ""},
	{"L2306 should accept a valid BPFHostNetworkedNATWithoutCTLB value 'Disabled'", cFelix(`{bpfHostNetworkedNATWithoutCTLB: Disabled}`), true, ""},
	{"L2307 should accept a valid BPFHostNetworkedNATWithoutCTLB value 'Enabled'", cFelix(`{bpfHostNetworkedNATWithoutCTLB: Enabled}`), true, ""},
	{"L2308 should accept a valid BPFConnectTimeLoadBalancing value 'Enabled'", cFelix(`{bpfConnectTimeLoadBalancing: Enabled}`), true, ""},
	{"L2309 should accept a valid BPFConnectTimeLoadBalancing value 'Disabled'", cFelix(`{bpfConnectTimeLoadBalancing: Disabled}`), true, ""},
	{"L2310 should accept a valid BPFConnectTimeLoadBalancing value 'TCP'", cFelix(`{bpfConnectTimeLoadBalancing: TCP}`), true, ""},
	{"L2311 should reject an invalid BPFHostNetworkedNATWithoutCTLB value 'enabled'", cFelix(`{bpfHostNetworkedNATWithoutCTLB: enabled}`), false, ""},
	{"L2312 should reject an invalid BPFHostNetworkedNATWithoutCTLB value 'BadVal'", cFelix(`{bpfHostNetworkedNATWithoutCTLB: BadVal}`), false, ""},
	{"L2313 should reject an invalid BPFConnectTimeLoadBalancing value 'BadVal'", cFelix(`{bpfConnectTimeLoadBalancing: BadVal}`), false, ""},

	// GlobalNetworkPolicy validation.
	{"L2316 disallow name with invalid character", cNamedGNP(`"t~!s.h.i.ng"`), false, ""},
	{"L2317 disallow name with mixed case characters", cNamedGNP(`tHiNg`), false, ""},
	{"L2318 allow valid name", cNamedGNP(`thing`), true, ""},
	{"L2319 disallow k8s policy name", cNamedGNP(`knp.default.thing`), false, ""},
	{"L2320 disallow name with dot", cNamedGNP(`t.h.i.ng`), false, ""},
	{"L2321 should reject GlobalNetworkPolicy with both PreDNAT and DoNotTrack", cGNP(`{preDNAT: true, doNotTrack: true, applyOnForward: true}`), false, ""},
	{"L2331 should accept GlobalNetworkPolicy PreDNAT but not DoNotTrack", cGNP(`{preDNAT: true, applyOnForward: true}`), true, ""},
	{"L2340 should accept GlobalNetworkPolicy DoNotTrack but not PreDNAT", cGNP(`{preDNAT: false, doNotTrack: true, applyOnForward: true}`), true, ""},
	{"L2350 should reject pre-DNAT GlobalNetworkPolicy egress rules", cGNP(`{preDNAT: true, applyOnForward: true, egress: [{action: Allow}]}`), false, ""},
	{"L2360 should accept pre-DNAT GlobalNetworkPolicy ingress rules", cGNP(`{preDNAT: true, applyOnForward: true, ingress: [{action: Allow}]}`), true, ""},
	{"L2372 should accept GlobalNetworkPolicy ApplyOnForward but not PreDNAT", cGNP(`{preDNAT: false, applyOnForward: true}`), true, ""},
	{"L2381 should accept GlobalNetworkPolicy ApplyOnForward but not DoNotTrack", cGNP(`{doNotTrack: false, applyOnForward: true}`), true, ""},
	{"L2390 should accept GlobalNetworkPolicy ApplyOnForward and PreDNAT", cGNP(`{preDNAT: true, applyOnForward: true}`), true, ""},
	{"L2399 should accept GlobalNetworkPolicy ApplyOnForward and DoNotTrack", cGNP(`{doNotTrack: true, applyOnForward: true}`), true, ""},
	{"L2408 should accept GlobalNetworkPolicy no ApplyOnForward DoNotTrack PreDNAT", cGNP(`{preDNAT: false, doNotTrack: false, applyOnForward: false}`), true, ""},
	{"L2418 should reject GlobalNetworkPolicy PreDNAT but not ApplyOnForward", cGNP(`{preDNAT: true, applyOnForward: false}`), false, ""},
	{"L2427 should reject GlobalNetworkPolicy DoNotTrack but not ApplyOnForward", cGNP(`{doNotTrack: true, applyOnForward: false}`), false, ""},
	{"L2438 allow missing Types", cGNP(`{}`), true, ""},
	{"L2444 allow empty Types", cGNP(`{types: []}`), true, ""},
	{"L2452 allow ingress Types", cGNP(`{types: [Ingress]}`), true, ""},
	{"L2460 allow egress Types", cGNP(`{types: [Egress]}`), true, ""},
	{"L2468 allow ingress+egress Types", cGNP(`{types: [Ingress, Egress]}`), true, ""},
	{"L2476 disallow repeated egress Types", cGNP(`{types: [Egress, Egress]}`), false, ""},
	{"L2484 disallow unexpected value", cGNP(`{types: [unexpected]}`), false, ""},
	{"L2493 allow Types without ingress when Ingress present (gnp)", cGNP(`{ingress: [{action: Allow}], types: [Egress]}`), true, ""},
	{"L2502 allow Types without egress when Egress present (gnp)", cGNP(`{egress: [{action: Allow}], types: [Ingress]}`), true, ""},
	{"L2511 allow Types with ingress when Ingress present (gnp)", cGNP(`{ingress: [{action: Allow}], types: [Ingress]}`), true, ""},
	{"L2520 allow Types with ingress+egress when Ingress present (gnp)", cGNP(`{ingress: [{action: Allow}], types: [Ingress, Egress]}`), true, ""},
	{"L2529 allow Types with egress when Egress present (gnp)", cGNP(`{egress: [{action: Allow}], types: [Egress]}`), true, ""},
	{"L2538 allow Types with ingress+egress when Egress present (gnp)", cGNP(`{egress: [{action: Allow}], types: [Ingress, Egress]}`), true, ""},
	{"L2547 allow ingress Types with pre-DNAT (gnp)", cGNP(`{preDNAT: true, applyOnForward: true, types: [Ingress]}`), true, ""},
	{"L2557 disallow egress Types with pre-DNAT (gnp)", cGNP(`{preDNAT: true, applyOnForward: true, types: [Egress]}`), false, ""},
	{"L2567 disallow ingress+egress Types with pre-DNAT (gnp)", cGNP(`{preDNAT: true, applyOnForward: true, types: [Ingress, Egress]}`), false, ""},
	{"L2577 disallow HTTP in egress rule", cGNP(`{egress: [{action: Allow, http: {methods: [GET]}}], types: [Ingress, Egress]}`), false, ""},
	{"L2586 disallow global() in namespaceSelector field", cGNP(`{namespaceSelector: "global()"}`), false, ""},
	{"L2594 disallow global() in selector field", cGNP(`{selector: "global()"}`), false, ""},
	{"L2602 disallow global() in serviceAccountSelector field", cGNP(`{serviceAccountSelector: "global()"}`), false, ""},
	{"L2610 disallow global() in EntityRule selector field", cRule(`{action: Allow, source: {selector: "global()"}}`), false, ""},
	{"L2625 allow global() and projectcalico.org/name in EntityRule namespaceSelector field", cRule(`{action: Allow, source: {namespaceSelector: "global()"}, destination: {namespaceSelector: "projectcalico.org/name == 'test'"}}`), true, ""},

	// StagedGlobalNetworkPolicies.
	{"L2645 disallow name with invalid character", cSGNP(`"t~!s.h.i.ng"`, `{stagedAction: Set, selector: "foo == \"bar\""}`), false, ""},
	{"L2649 disallow name with mixed case characters", cSGNP("tHiNg", `{stagedAction: Set, selector: "foo == \"bar\""}`), false, ""},
	{"L2653 allow valid name", cSGNP("thing", `{stagedAction: Set, selector: "foo == \"bar\""}`), true, ""},
	{"L2657 disallow k8s policy name", cSGNP("knp.default.thing", `{stagedAction: Set, selector: "foo == \"bar\""}`), false, ""},
	{"L2661 disallow name with dot", cSGNP("t.h.i.ng", `{stagedAction: Set, selector: "foo == \"bar\""}`), false, ""},
	{"L2665 should accept a valid StagedAction value 'Set'", cSGNP("thing", `{stagedAction: Set, selector: "foo == \"bar\""}`), true, ""},
	{"L2674 should accept an unset StagedAction", cSGNP("thing", `{selector: "foo == \"bar\""}`), true, ""},
	{"L2682 should accept a valid StagedAction value 'Delete'", cTier("eng", `{order: 100}`) + "---\n" + cSGNP("eng.thing", `{stagedAction: Delete, tier: eng}`), true, ""},
	{"L2691 should reject a valid StagedAction value 'Delete' if any other Spec field is set", cSGNP("thing", `{stagedAction: Delete, selector: "foo == \"bar\""}`), false, ""},
	{"L2700 should reject a StagedAction value 'Warning'", cSGNP("thing", `{stagedAction: Warning, selector: "foo == \"bar\""}`), false, ""},
	{"L2709 should accept an empty StagedAction value", cSGNP("thing", `{stagedAction: "", selector: "foo == \"bar\""}`), true, ""},
	{"L2718 should accept an empty selector value when StagedAction is Delete", cSGNP("thing", `{stagedAction: Delete}`), true, ""},

	// Tiers.
	{"L2728 Tier: valid name", cTier("foo", `{order: 100}`), true, ""},
	{"L2734 Tier: valid name with dash", cTier("fo-o", `{order: 100}`), true, ""},
	{"L2740 Tier: disallow dot in name", cTier("fo.o", `{order: 100}`), false, ""},
	{"L2746 Tier: allow valid name of 63 chars", cTier(x63, `{order: 100}`), true, ""},
	{"L2752 Tier: disallow a name of 64 chars", cTier(x64, `{order: 100}`), false, ""},
	{"L2758 Tier: disallow other chars", cTier(`"t~!s.h.i.ng"`, `{order: 100}`), false, ""},
	{"L2764 Tier: disallow default tier with an invalid order", cTier("default", `{order: 10, defaultAction: Deny}`), false, ""},
	{"L2771 Tier: disallow default tier with an invalid default action", cTier("default", `{order: 1000000, defaultAction: Pass}`), false, ""},
	{"L2778 Tier: allow default tier with the predefined order and default action", cTier("default", `{order: 1000000, defaultAction: Deny}`), true, ""},
	{"L2785 Tier: disallow kube-admin tier with an invalid order", cTier("kube-admin", `{order: 10, defaultAction: Pass}`), false, ""},
	{"L2792 Tier: disallow kube-admin tier with an invalid default action", cTier("kube-admin", `{order: 1000, defaultAction: Deny}`), false, ""},
	{"L2799 Tier: allow kube-admin tier with the predefined order and default action", cTier("kube-admin", `{order: 1000, defaultAction: Pass}`), true, ""},
	{"L2806 Tier: disallow kube-baseline tier with an invalid order", cTier("kube-baseline", `{order: 10, defaultAction: Pass}`), false, ""},
	{"L2813 Tier: disallow kube-baseline tier with an invalid default action", cTier("kube-baseline", `{order: 10000000, defaultAction: Deny}`), false, ""},
	{"L2820 Tier: allow kube-baseline tier with the predefined order and default action", cTier("kube-baseline", `{order: 10000000, defaultAction: Pass}`), true, ""},
	{"L2827 Tier: allow a tier with a valid order", cTier("platform", `{order: 100}`), true, ""},

	{"L2999 disallow name with invalid character", cNamedGNP(`"t~!s.h.i.ng"`), false, ""},
	{"L3112 GlobalNetworkPolicy: disallow junk in PerformanceHints field", cGNP(`{performanceHints: [junk]}`), false, ""},
	{"L3120 GlobalNetworkPolicy: allow PerfHintAssumeNeededOnEveryNode in PerformanceHints field", cGNP(`{performanceHints: [AssumeNeededOnEveryNode]}`), true, ""},
	{"L3128 GlobalNetworkPolicy: disallow dupes in PerformanceHints field", cGNP(`{performanceHints: [AssumeNeededOnEveryNode, AssumeNeededOnEveryNode]}`), false, ""},
	{"L3431 allow a Service match on a GNP (ingress destination: rejected)", cRule(`{action: Allow, destination: {services: {name: service1, namespace: default}}}`), false, ""},
	{"L3449 disallow a Service match without a namespace on a GNP", cGNP(`{egress: [{action: Allow, destination: {services: {name: service1}}}]}`), false, ""},
	{"L3466 disallow a Service match AND a NamespaceSelector match on a GNP", cRule(`{action: Allow, destination: {namespaceSelector: "x == 'y'", services: {name: service1, namespace: default}}}`), false, ""},

	// EntityRule global() and HTTPMatch.
	{"L3488 disallow global() in EntityRule selector field", cEntity(`{selector: " global() "}`), false, ""},
	{"L3493 allow global() in EntityRule namespaceSelector field", cEntity(`{namespaceSelector: " global() "}`), true, ""},
	{"L3498 disallow global() in EntityRule namespaceSelector field AND'd with other expressions", cEntity(`{namespaceSelector: " global() && all()"}`), false, ""},
	{"L3503 disallow global() in EntityRule namespaceSelector field OR'd other expressions", cEntity(`{namespaceSelector: "global()||all()"}`), false, ""},
	{"L3508 disallow bad selectors in EntityRule selector field", cEntity(`{selector: "global() && bad"}`), false, ""},
	{"L3513 allow HTTP Path with permitted match clauses", cRule(`{action: Allow, http: {paths: [{exact: /foo}, {prefix: /bar}]}}`), true, ""},
	{"L3517 disallow HTTP Path with invalid match clauses", cRule(`{action: Allow, http: {paths: [{exact: /foo, prefix: /bar}, {prefix: /bar}]}}`), false, ""},
	{"L3521 disallow HTTP Path with invalid match clauses", cRule(`{action: Allow, http: {paths: [{exact: "/fo?o"}]}}`), false, ""},
	{"L3525 disallow HTTP Path with invalid match clauses", cRule(`{action: Allow, http: {paths: [{exact: "/fo o"}]}}`), false, ""},
	{"L3529 disallow HTTP Path with invalid match clauses", cRule(`{action: Allow, http: {paths: [{exact: "/f#oo"}]}}`), false, ""},
	{"L3533 disallow HTTP Path with invalid match clauses", cRule(`{action: Allow, http: {paths: [{exact: "/fo#!?o"}]}}`), false, ""},
	{"L3537 disallow HTTP Path with empty match clauses", cRule(`{action: Allow, http: {paths: [{}]}}`), false, ""},
	{"L3541 disallow HTTP Method with duplicate match clause", cRule(`{action: Allow, http: {methods: [GET, GET, Foo]}}`), false, ""},

	// FelixConfiguration addresses, metrics host, wireguard, loop prevention.
	{"L3545 should not accept an invalid IP address", cFelix(`{natOutgoingAddress: 999.999.999.999}`), false, ""},
	{"L3548 should not accept a masked IP", cFelix(`{natOutgoingAddress: 1.2.3.4/32}`), false, ""},
	{"L3551 should not accept an IPV6 address", cFelix(`{natOutgoingAddress: "aabb:aabb::ffff"}`), false, ""},
	{"L3554 should accept a valid IP address", cFelix(`{natOutgoingAddress: 1.2.3.4}`), true, ""},
	{"L3557 should accept a valid prometheusMetricsHost value 'localhost'", cFelix(`{prometheusMetricsHost: localhost}`), true, ""},
	{"L3558 should accept a valid prometheusMetricsHost value '10.0.0.1'", cFelix(`{prometheusMetricsHost: 10.0.0.1}`), true, ""},
	{"L3559 should accept a valid prometheusMetricsHost value 'fe80::ea7a:70fa:cf74:25d5'", cFelix(`{prometheusMetricsHost: "fe80::ea7a:70fa:cf74:25d5"}`), true, ""},
	{"L3560 should reject an invalid prometheusMetricsHost value 'localhost#'", cFelix(`{prometheusMetricsHost: "localhost#"}`), false, ""},
	{"L3561 should reject an invalid prometheusMetricsHost value '0: 1::1'", cFelix(`{prometheusMetricsHost: "0: 1::1"}`), false, ""},
	{"L3563 should accept a valid IPv4 address (DeviceRouteSourceAddress)", cFelix(`{deviceRouteSourceAddress: 1.2.3.4}`), true, ""},
	{"L3566 should not accept a valid IPv6 address (DeviceRouteSourceAddress)", cFelix(`{deviceRouteSourceAddress: "aabb:aabb::ffff"}`), false, ""},
	{"L3569 should not accept an invalid IP address (DeviceRouteSourceAddress)", cFelix(`{deviceRouteSourceAddress: 999.999.999.999}`), false, ""},
	{"L3572 should not accept a masked IP address (DeviceRouteSourceAddress)", cFelix(`{deviceRouteSourceAddress: 1.2.3.4/32}`), false, ""},
	{"L3576 should accept a valid IPv6 address (DeviceRouteSourceAddressIPv6)", cFelix(`{deviceRouteSourceAddressIPv6: "aabb:aabb::ffff"}`), true, ""},
	{"L3579 should not accept a valid IPv4 address (DeviceRouteSourceAddressIPv6)", cFelix(`{deviceRouteSourceAddressIPv6: 1.2.3.4}`), false, ""},
	{"L3582 should not accept an invalid IPv4 address (DeviceRouteSourceAddressIPv6)", cFelix(`{deviceRouteSourceAddressIPv6: "xyz:::"}`), false, ""},
	{"L3585 should not accept a masked IPv6 address (DeviceRouteSourceAddressIPv6)", cFelix(`{deviceRouteSourceAddressIPv6: "aabb:aabb::ffff/128"}`), false, ""},
	{"L3588 should accept a valid listening port", cFelix(`{wireguardListeningPort: 12345}`), true, ""},
	{"L3591 should reject a valid listening port", cFelix(`{wireguardListeningPort: 99999}`), false, ""},
	{"L3594 should accept a valid routing rule priority", cFelix(`{wireguardRoutingRulePriority: 12345}`), true, ""},
	{"L3597 should reject a valid routing rule priority", cFelix(`{wireguardRoutingRulePriority: 99999}`), false, ""},
	{"L3600 should accept valid Wireguard interface", cFelix(`{wireguardInterfaceName: wg0}`), true, ""},
	{"L3601 should reject valid Wireguard interface", cFelix(`{wireguardInterfaceName: "wg&0"}`), false, ""},
	{"L3604 should accept ServiceLoopPrevention Drop", cFelix(`{serviceLoopPrevention: Drop}`), true, ""},
	{"L3605 should accept ServiceLoopPrevention Reject", cFelix(`{serviceLoopPrevention: Reject}`), true, ""},
	{"L3606 should accept ServiceLoopPrevention Disabled", cFelix(`{serviceLoopPrevention: Disabled}`), true, ""},
	{"L3607 should reject ServiceLoopPrevention Wibbly", cFelix(`{serviceLoopPrevention: Wibbly}`), false, ""},
	{"L3609 should accept WindowsManageFirewallRules value Disabled", cFelix(`{windowsManageFirewallRules: Disabled}`), true, ""},
	{"L3610 should accept WindowsManageFirewallRules value Enabled", cFelix(`{windowsManageFirewallRules: Enabled}`), true, ""},
	{"L3611 should reject WindowsManageFirewallRules value blah", cFelix(`{windowsManageFirewallRules: blah}`), false, ""},
	{"L3820 should accept a valid BPFForceTrackPacketsFromIfaces value 'docker+'", cFelix(`{bpfForceTrackPacketsFromIfaces: [docker+]}`), true, ""},
	{"L3821 should accept a valid BPFForceTrackPacketsFromIfaces value 'docker0,docker1'", cFelix(`{bpfForceTrackPacketsFromIfaces: [docker0, docker1]}`), true, ""},
	{"L3822 should reject invalid BPFForceTrackPacketsFromIfaces value 'cali-123,cali@456'", cFelix(`{bpfForceTrackPacketsFromIfaces: [cali-123, "cali@456"]}`), false, ""},

	// NetworkPolicy rule cases that hold for a GlobalNetworkPolicy rule
	// (services with a namespace, as a global policy needs one).
	{"L3139 allow global() and projectcalico.org/name in EntityRule namespaceSelector field", cRule(`{action: Allow, source: {namespaceSelector: "global()"}, destination: {namespaceSelector: "projectcalico.org/name == 'test'"}}`), true, ""},
	{"L3157 allow a Service match in an egress rule destination", cGNP(`{egress: [{action: Allow, destination: {services: {name: service1, namespace: default}}}]}`), true, ""},
	{"L3175 disallow a Service match in an egress rule source", cGNP(`{egress: [{action: Allow, source: {services: {name: service1, namespace: default}}}]}`), false, ""},
	{"L3193 allow a Service match in an ingress rule source", cRule(`{action: Allow, source: {services: {name: service1, namespace: default}}}`), true, ""},
	{"L3211 disallow a Service match in an ingress rule destination", cGNP(`{egress: [{action: Allow, destination: {services: {name: service1, namespace: default}}}]}`), true, ""},
	{"L3229 disallow a Service match AND a ServiceAccount match", cRule(`{action: Allow, source: {serviceAccounts: {names: [serviceaccount]}, services: {name: service1, namespace: default}}}`), false, ""},
	{"L3250 disallow a Service match AND a Ports match on an egress destination rule", cGNP(`{egress: [{action: Allow, protocol: TCP, destination: {ports: [80], services: {name: service1, namespace: default}}}]}`), false, ""},
	{"L3271 disallow a Service match AND a NotPorts match on an egress destination rule", cGNP(`{egress: [{action: Allow, protocol: TCP, destination: {notPorts: [80], services: {name: service1, namespace: default}}}]}`), false, ""},
	{"L3292 allow a Service match AND a Ports match specified on the source on an ingress source rule", cRule(`{action: Allow, protocol: TCP, source: {ports: [80], services: {name: service1, namespace: default}}}`), true, ""},
	{"L3314 allow a Service match AND a NotPorts match on an ingress source rule", cRule(`{action: Allow, protocol: TCP, source: {notPorts: [80], services: {name: service1, namespace: default}}}`), true, ""},
	{"L3336 disallow a Service match AND a Nets match", cRule(`{action: Allow, source: {nets: [10.0.0.0/8], services: {name: service1, namespace: default}}}`), false, ""},
	{"L3355 disallow a Service match AND a NotNets match", cRule(`{action: Allow, source: {notNets: [10.0.0.0/8], services: {name: service1, namespace: default}}}`), false, ""},
	{"L3374 disallow a Service match AND a Selector match", cRule(`{action: Allow, source: {selector: "x == 'y'", services: {name: service1, namespace: default}}}`), false, ""},
	{"L3393 disallow a Service match AND a NotSelector match", cRule(`{action: Allow, source: {notSelector: "x == 'y'", services: {name: service1, namespace: default}}}`), false, ""},
	{"L3412 disallow a Service match AND a NamespaceSelector match", cRule(`{action: Allow, source: {namespaceSelector: "x == 'y'", services: {name: service1, namespace: default}}}`), false, ""},
	{"L3824 disallow a NotNets catch-all IPv4 CIDR match", cRule(`{action: Allow, destination: {notNets: [0.0.0.0/0]}}`), false, ""},
	{"L3839 disallow a NotNets catch-all IPv6 CIDR match", cRule(`{action: Allow, source: {notNets: ["::0/0"]}}`), false, ""},
	{"L3854 disallow a NotNets catch-all IPv6 CIDR match - non-standard representation", cRule(`{action: Allow, source: {notNets: ["0:0:0::/0"]}}`), false, ""},

	// Tier validation tests (etcd: CRD defaulting and validation run too).
	{"L3907 should accept an empty Tier spec", cTier("valid-tier", `{}`), true, ""},
	{"L3912 should reject kube-baseline with wrong default action", cTier("kube-baseline", `{defaultAction: Deny, order: 10000000}`), false, ""},
	{"L3920 should accept kube-baseline with correct default action", cTier("kube-baseline", `{defaultAction: Pass, order: 10000000}`), true, ""},
	{"L3928 should reject kube-admin with wrong default action", cTier("kube-admin", `{defaultAction: Deny, order: 1000}`), false, ""},
	{"L3936 should accept kube-admin with correct default action", cTier("kube-admin", `{defaultAction: Pass, order: 1000}`), true, ""},
	{"L3944 should reject default tier with wrong default action", cTier("default", `{defaultAction: Pass, order: 1000000}`), false, ""},
}

// TestValidatorConformance runs every case through the loader: nfgate must
// accept what Calico accepts and reject what it rejects.
func TestValidatorConformance(t *testing.T) {
	agree, differ := 0, 0
	for _, c := range conformanceCases {
		_, err := loadManifest(c.doc)
		want := c.valid
		if c.differs != "" {
			want = !c.valid
			differ++
		}
		if got := err == nil; got != want {
			t.Errorf("%s: nfgate valid=%v, want %v (Calico %v)\n%s\nerrors: %v", c.ref, got, want, c.valid, c.doc, err)
			continue
		}
		if c.differs == "" {
			agree++
		}
	}
	t.Logf("validator conformance: %d upstream cases translated, %d agree with Calico v3.32.1, %d differ on purpose", len(conformanceCases), agree, differ)
}

// Every case names a distinct upstream line (duplicated upstream entries
// keep their own line).
func TestConformanceCasesAreDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range conformanceCases {
		line := strings.Fields(c.ref)[0]
		if seen[line] {
			t.Errorf("two cases for %s", line)
		}
		seen[line] = true
		if !strings.HasPrefix(line, "L") {
			t.Errorf("case %q does not start with its upstream line", c.ref)
		}
	}
	if len(conformanceCases) < 250 {
		t.Errorf("only %d cases", len(conformanceCases))
	}
}

// Cases upstream's validator_test.go does not have, each checked with the
// real calicoctl v3.32.1 against etcd (`calicoctl apply`, then `get`): the
// lists Calico's CRD schema declares sets (listType=set) are enforced only
// by the Kubernetes API server, so calicoctl on etcd stores a repeated
// value; libcalico-go's own `unique` tag (performanceHints) and its
// validator's checks (types, HTTP methods) refuse one.
var calicoctlCases = []confCase{
	{"calicoctl: a repeated CIDR in nets", cGNP(`{egress: [{action: Allow, destination: {nets: [198.18.2.0/23, 198.18.2.0/23]}}]}`), true, ""},
	{"calicoctl: a repeated CIDR in source nets", cEntity(`{nets: [10.1.0.0/16, 10.1.0.0/16]}`), true, ""},
	{"calicoctl: a repeated CIDR in notNets", cEntity(`{notNets: [10.0.0.0/8, 10.0.0.0/8]}`), true, ""},
	{"calicoctl: a repeated serviceAccounts name", cEntity(`{serviceAccounts: {names: [a, a]}}`), true, ""},
	{"calicoctl: a repeated expectedIP", cHEP(`{node: gw, interfaceName: eth0, expectedIPs: [198.18.1.1, 198.18.1.1]}`), true, ""},
	{"calicoctl: a repeated profile", cHEP(`{node: gw, interfaceName: eth0, profiles: [projectcalico-default-allow, projectcalico-default-allow]}`), true, ""},
	{"calicoctl: a repeated GlobalNetworkSet net", calicoDoc("GlobalNetworkSet", "{name: s1}", `{nets: [10.0.0.0/8, 10.0.0.0/8]}`), true, ""},
	{"calicoctl: a repeated performanceHint (unique tag)", cGNP(`{performanceHints: [AssumeNeededOnEveryNode, AssumeNeededOnEveryNode]}`), false, ""},
	{"calicoctl: a repeated HTTP method", cRule(`{action: Allow, http: {methods: [GET, GET]}}`), false, ""},
	{"calicoctl: a repeated type", cGNP(`{types: [Ingress, Ingress]}`), false, ""},
}

func TestCalicoctlConformance(t *testing.T) {
	for _, c := range calicoctlCases {
		_, err := loadManifest(c.doc)
		if got := err == nil; got != c.valid {
			t.Errorf("%s: nfgate valid=%v, calicoctl %v\n%s\nerrors: %v", c.ref, got, c.valid, c.doc, err)
		}
	}
}
