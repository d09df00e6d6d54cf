package config

import (
	"fmt"
	"strings"
	"testing"
)

// loadMem loads an in-memory configuration: files maps names to contents and
// the main file is main.toml.
func loadMem(files map[string]string) (*Loaded, error) {
	src := memSource{}
	for k, v := range files {
		src[k] = []byte(v)
	}
	return load(src, "main.toml")
}

const mainInclude = "include = [\"r.yaml\"]\n[gateway]\nnodeName = \"gw\"\n"

func loadManifest(manifest string) (*Loaded, error) {
	return loadMem(map[string]string{"main.toml": mainInclude, "r.yaml": manifest})
}

func gnp(spec string) string {
	return "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\nspec: " + spec + "\n"
}

func ingress(rule string) string { return gnp("{ingress: [" + rule + "]}") }

func hep(name, spec string) string {
	return "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata: {name: " + name + "}\nspec: " + spec + "\n"
}

func diagsOf(err error) Errors {
	if err == nil {
		return nil
	}
	return err.(Errors)
}

func hasDiag(ds []Diag, field, msg string) bool {
	for _, d := range ds {
		if d.Field == field && strings.Contains(d.Msg, msg) {
			return true
		}
	}
	return false
}

// Every validation rule of spec §8, one case per line: a manifest, then the
// field and message expected ("" field and msg: the manifest is valid).
var validationCases = []struct {
	name, manifest, field, msg string
}{
	// policy flags
	{"preDNAT with egress rules", gnp(`{preDNAT: true, applyOnForward: true, types: [Ingress], egress: [{action: Allow}]}`), "spec.egress", "preDNAT policy cannot have any egress rules"},
	{"preDNAT with Egress type", gnp(`{preDNAT: true, applyOnForward: true, types: [Egress]}`), "spec.types", "preDNAT policy cannot have 'Egress' type"},
	{"preDNAT with defaulted Egress type", gnp(`{preDNAT: true, applyOnForward: true, egress: [{action: Allow}]}`), "spec.types", "preDNAT policy cannot have 'Egress' type"},
	{"preDNAT without applyOnForward", gnp(`{preDNAT: true, ingress: [{action: Allow}]}`), "spec.applyOnForward", "applyOnForward must be true if either preDNAT or doNotTrack is true"},
	{"doNotTrack without applyOnForward", gnp(`{doNotTrack: true, applyOnForward: false}`), "spec.applyOnForward", "applyOnForward must be true if either preDNAT or doNotTrack is true"},
	{"preDNAT and doNotTrack", gnp(`{preDNAT: true, doNotTrack: true, applyOnForward: true}`), "spec.preDNAT", "preDNAT and doNotTrack cannot both be true"},
	{"preDNAT ingress ok", gnp(`{preDNAT: true, applyOnForward: true, types: [Ingress], ingress: [{action: Deny}]}`), "", ""},
	{"duplicate type", gnp(`{types: [Ingress, Egress, Ingress]}`), "spec.types[2]", "'Ingress' type specified more than once"},
	{"lower-case type", gnp(`{types: [ingress]}`), "spec.types[0]", "must be Ingress or Egress"},
	// global()
	{"global() in policy selector", gnp(`{selector: "global()"}`), "spec.selector", "global() can only be used in an EntityRule namespaceSelector"},
	{"global() in serviceAccountSelector", gnp(`{serviceAccountSelector: "global()"}`), "spec.serviceAccountSelector", "global() can only be used in an EntityRule namespaceSelector"},
	{"global() in entity selector", ingress(`{action: Allow, source: {selector: "global()"}}`), "spec.ingress[0].source.selector", "global() can only be used in an EntityRule namespaceSelector"},
	{"global() combined", ingress(`{action: Allow, source: {namespaceSelector: "global() && a == 'b'"}}`), "spec.ingress[0].source.namespaceSelector", "global() cannot be combined with other selectors"},
	{"global() alone ok", ingress(`{action: Allow, source: {namespaceSelector: "global()", selector: "has(a)"}}`), "", ""},
	{"selector syntax", gnp(`{selector: "role == "}`), "spec.selector", "invalid selector"},
	{"selector syntax in rule", ingress(`{action: Allow, destination: {notSelector: "has (a)"}}`), "spec.ingress[0].destination.notSelector", "at position"},
	// action, protocol
	{"action missing", ingress(`{protocol: TCP}`), "spec.ingress[0]", "action must be specified"},
	{"action lower case", ingress(`{action: allow}`), "spec.ingress[0].action", "invalid action"},
	{"protocol tcp", ingress(`{action: Allow, protocol: tcp}`), "spec.ingress[0].protocol", "protocol name invalid"},
	{"protocol unknown", ingress(`{action: Allow, protocol: GRE}`), "spec.ingress[0].protocol", "protocol name invalid"},
	{"protocol 0", ingress(`{action: Allow, protocol: 0}`), "spec.ingress[0].protocol", "protocol number invalid"},
	{"protocol 256", ingress(`{action: Allow, notProtocol: 256}`), "spec.ingress[0].notProtocol", "protocol number invalid"},
	{"protocol \"0\"", ingress(`{action: Allow, protocol: "0"}`), "spec.ingress[0].protocol", "protocol number invalid"},
	{"protocol 47 ok", ingress(`{action: Allow, protocol: 47}`), "", ""},
	{"ipVersion 5", ingress(`{action: Allow, ipVersion: 5}`), "spec.ingress[0].ipVersion", "ipVersion must be 4 or 6"},
	// ICMP
	{"icmp without protocol", ingress(`{action: Allow, icmp: {type: 8}}`), "spec.ingress[0].icmp", "rules that specify ICMP fields must set protocol to ICMP"},
	{"notICMP with TCP", ingress(`{action: Allow, protocol: TCP, notICMP: {type: 8}}`), "spec.ingress[0].notICMP", "notICMP needs protocol ICMP or ICMPv6"},
	{"icmp with protocol 1", ingress(`{action: Allow, protocol: 1, icmp: {type: 8}}`), "spec.ingress[0].icmp", "rules that specify ICMP fields must set protocol to ICMP"},
	{"ICMP with ipVersion 6", ingress(`{action: Allow, protocol: ICMP, ipVersion: 6}`), "spec.ingress[0].protocol", "must set ipversion to '4' with protocol icmp"},
	{"notProtocol ICMPv6 with ipVersion 4", ingress(`{action: Allow, notProtocol: ICMPv6, ipVersion: 4}`), "spec.ingress[0].notProtocol", "must set ipversion to '6' with protocol icmpv6"},
	{"ICMP code without type", ingress(`{action: Allow, protocol: ICMP, icmp: {code: 0}}`), "spec.ingress[0].icmp.code", "ICMP code specified without an ICMP type"},
	{"ICMP type 255", ingress(`{action: Allow, protocol: ICMP, icmp: {type: 255}}`), "spec.ingress[0].icmp.type", "ICMP type must be between 0 and 254"},
	{"ICMP code 256", ingress(`{action: Allow, protocol: ICMPv6, icmp: {type: 1, code: 256}}`), "spec.ingress[0].icmp.code", "ICMP code must be between 0 and 255"},
	{"ICMP type and code ok", ingress(`{action: Allow, protocol: ICMP, icmp: {type: 3, code: 4}}`), "", ""},
	// ports
	{"numeric port without protocol", ingress(`{action: Allow, destination: {ports: [22]}}`), "spec.ingress[0].destination.ports[0]", "rules with numeric port or port range must set protocol to TCP or UDP or SCTP"},
	{"port range without protocol", ingress(`{action: Allow, source: {notPorts: ["1:2"]}}`), "spec.ingress[0].source.notPorts[0]", "rules with numeric port or port range must set protocol to TCP or UDP or SCTP"},
	{"numeric port with notProtocol only", ingress(`{action: Allow, notProtocol: TCP, destination: {ports: [22]}}`), "spec.ingress[0].destination.ports[0]", "must set protocol to TCP or UDP or SCTP"},
	{"port with ICMP", ingress(`{action: Allow, protocol: ICMP, destination: {ports: [22]}}`), "spec.ingress[0].destination.ports", "rules that specify ports must set protocol to TCP or UDP or SCTP"},
	{"named port with UDPLite", ingress(`{action: Allow, protocol: UDPLite, destination: {ports: [http]}}`), "spec.ingress[0].destination.ports", "rules that specify ports must set protocol to TCP or UDP or SCTP"},
	{"named port without protocol ok", ingress(`{action: Allow, destination: {ports: [http]}}`), "", ""},
	{"numeric port with 132 ok", ingress(`{action: Allow, protocol: 132, destination: {ports: [22, "8000:9000"]}}`), "", ""},
	{"port 0", ingress(`{action: Allow, protocol: TCP, destination: {ports: [0]}}`), "spec.ingress[0].destination.ports[0]", "port range invalid, port number must be between 1 and 65535"},
	{"port 65536", ingress(`{action: Allow, protocol: TCP, destination: {ports: ["65536"]}}`), "spec.ingress[0].destination.ports[0]", "port number must be between 1 and 65535"},
	{"port range min>max", ingress(`{action: Allow, protocol: TCP, destination: {ports: ["9000:8000"]}}`), "spec.ingress[0].destination.ports[0]", "minimum port number (9000) is greater than maximum port number (8000) in port range"},
	{"named port regex", ingress(`{action: Allow, protocol: TCP, destination: {ports: ["web server"]}}`), "spec.ingress[0].destination.ports[0]", "invalid name for named port (web server)"},
	{"too many ports", ingress(`{action: Allow, protocol: TCP, destination: {ports: [` + seq(51, func(i int) string { return fmt.Sprint(i + 1) }) + `]}}`), "spec.ingress[0].destination.ports", "at most 50"},
	// nets
	{"unparsable CIDR", ingress(`{action: Allow, source: {nets: [10.0.0.0/33]}}`), "spec.ingress[0].source.nets[0]", "invalid CIDR"},
	{"host bits set", ingress(`{action: Allow, source: {nets: [10.0.0.1/24]}}`), "spec.ingress[0].source.nets[0]", "invalid CIDR \"10.0.0.1/24\": host bits are set (did you mean 10.0.0.0/24?)"},
	{"bare IP is not a CIDR", ingress(`{action: Allow, source: {nets: [10.0.0.1]}}`), "spec.ingress[0].source.nets[0]", "invalid CIDR \"10.0.0.1\": a rule's nets need a prefix length (did you mean 10.0.0.1/32?)"},
	{"CIDR family vs ipVersion", ingress(`{action: Allow, source: {nets: [10.0.0.1/32, "2001:db8::1/128"]}, ipVersion: 4}`), "spec.ingress[0].source.nets[1]", "rule IP version doesn't match CIDR version"},
	{"nets family vs ipVersion", ingress(`{action: Allow, ipVersion: 6, destination: {notNets: [10.0.0.0/8]}}`), "spec.ingress[0].destination.notNets[0]", "rule IP version doesn't match CIDR version"},
	{"v4 and v6 in one rule", ingress(`{action: Allow, source: {nets: [10.0.0.0/8]}, destination: {notNets: ["2001:db8::/32"]}}`), "spec.ingress[0].destination.notNets[0]", "rule contains both IPv4 and IPv6 CIDRs"},
	{"notNets catch-all v4", ingress(`{action: Allow, source: {notNets: [0.0.0.0/0]}}`), "spec.ingress[0].source.notNets[0]", "catch-all CIDR in negation creates logical contradiction (matches no traffic)"},
	{"notNets catch-all v6", ingress(`{action: Allow, source: {notNets: ["::/0"]}}`), "spec.ingress[0].source.notNets[0]", "catch-all CIDR in negation"},
	{"nets catch-all ok", ingress(`{action: Allow, source: {nets: [0.0.0.0/0]}}`), "", ""},
	{"too many nets", ingress(`{action: Allow, source: {nets: [` + seq(257, func(i int) string { return fmt.Sprintf("10.%d.%d.0/24", i/256, i%256) }) + `]}}`), "spec.ingress[0].source.nets", "at most 256"},
	{"too many rules", gnp(`{egress: [` + seq(1025, func(int) string { return "{action: Allow}" }) + `]}`), "spec.egress", "at most 1024"},
	// unsupported and unknown fields
	{"http rule loads", ingress(`{action: Allow, http: {methods: [GET]}}`), "", ""},
	{"http rule Deny", ingress(`{action: Deny, http: {methods: [GET]}}`), "spec.ingress[0].http", "HTTP match is only valid on Allow rules"},
	{"http rule UDP", ingress(`{action: Allow, protocol: UDP, http: {methods: [GET]}}`), "spec.ingress[0].protocol", "rules that specify HTTP fields must set protocol to TCP or empty"},
	{"unknown rule field", ingress(`{action: Allow, protcol: TCP}`), "spec.ingress[0].protcol", `unknown field "protcol"`},
	{"wrong case field", gnp(`{applyonforward: true}`), "spec.applyonforward", `did you mean "applyOnForward"`},
	{"unknown metadata field", "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t, nme: x}\n", "metadata.nme", "unknown field"},
	// names
	{"GNP name upper case", "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: Allow-SSH}\n", "metadata.name", "name must consist of lower case alphanumeric characters or '-'"},
	{"GNP name two dots", "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: a.b.c}\n", "metadata.name", "name must consist of lower case alphanumeric characters or '-'"},
	{"GNP tier prefix ok", "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: default.allow}\n", "", ""},
	{"GNP name needs no tier prefix", "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: ops.allow-ssh}\n", "", ""},
	{"GNP tier missing", gnp(`{tier: security}`), "tier", "tier \"security\" does not exist"},
	{"name missing", "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {labels: {a: b}}\n", "metadata", "name must be specified"},
	{"HEP name with dot ok", hep("myhost.eth1", `{node: gw, interfaceName: eth1}`), "", ""},
	{"HEP name underscore", hep("my_host", `{node: gw, interfaceName: eth1}`), "metadata.name", "name must consist of lower case alphanumeric characters"},
	{"duplicate name", gnp(`{}`) + "---\n" + gnp(`{}`), "metadata.name", "duplicate GlobalNetworkPolicy name \"p\""},
	// host endpoints
	{"HEP without node", hep("h", `{interfaceName: eth0}`), "spec", "node must be specified"},
	{"HEP without interface or IPs", hep("h", `{node: gw}`), "spec", "at least one of interfaceName or expectedIPs must be specified"},
	{"HEP expectedIPs only ok", hep("h", `{node: gw, expectedIPs: [198.18.0.1]}`), "", ""},
	{"HEP interfaceName too long", hep("h", `{node: gw, interfaceName: abcdefghijklmnop}`), "spec.interfaceName", "must be \"*\" or 1-15 characters"},
	{"HEP interfaceName slash", hep("h", `{node: gw, interfaceName: "eth0/1"}`), "spec.interfaceName", "must be \"*\" or 1-15 characters"},
	{"HEP interfaceName star ok", hep("h", `{node: gw, interfaceName: "*"}`), "", ""},
	{"HEP bad expectedIP", hep("h", `{node: gw, expectedIPs: [198.18.0.0/24]}`), "spec.expectedIPs[0]", "invalid IP address"},
	{"HEP unknown profile loads", hep("h", `{node: gw, interfaceName: eth0, profiles: [nope]}`), "", ""},
	{"HEP default-allow profile ok", hep("h", `{node: gw, interfaceName: eth0, profiles: [projectcalico-default-allow]}`), "", ""},
	{"HEP port protocol", hep("h", `{node: gw, interfaceName: eth0, ports: [{name: web, protocol: ICMP, port: 80}]}`), "spec.ports[0].protocol", "must be TCP, UDP or SCTP"},
	{"HEP label value not string", "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata: {name: h, labels: {ingress: true}}\nspec: {node: gw, interfaceName: eth0}\n", "metadata.labels.ingress", "label values must be strings"},
	{"label key invalid", "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: s, labels: {\"-bad\": x}}\n", "metadata.labels.-bad", "invalid label key"},
	// tiers
	{"default tier order", "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: default}\nspec: {order: 5}\n", "spec.order", "default tier order must be 1000000"},
	{"default tier action", "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: default}\nspec: {defaultAction: Pass}\n", "spec.defaultAction", "The 'default' tier must have default action 'Deny'"},
	{"kube-admin tier action", "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: kube-admin}\nspec: {defaultAction: Deny}\n", "spec.defaultAction", "The 'kube-admin' tier must have default action 'Pass'"},
	{"tier defaultAction", "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t}\nspec: {defaultAction: Allow}\n", "spec.defaultAction", "must be Deny or Pass"},
	// kinds
	{"unknown kind", "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\n", "kind", "kind IPPool is not supported"},
	{"wrong apiVersion", "apiVersion: v1\nkind: Tier\nmetadata: {name: t}\n", "apiVersion", "apiVersion must be projectcalico.org/v3"},
	{"namespace on a global resource", "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t, namespace: x}\n", "metadata.namespace", "global resource"},
	{"List of resources ok", "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicyList\nmetadata: {resourceVersion: \"1\"}\nitems:\n- " + strings.ReplaceAll(strings.TrimSpace(gnp(`{}`)), "\n", "\n  ") + "\n", "", ""},
	// failsafe (FelixConfiguration)
	{"failsafe SCTP", "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {failsafeInboundHostPorts: [{protocol: SCTP, port: 22}]}\n", "spec.failsafeInboundHostPorts[0].protocol", "Felix accepts only TCP and UDP here and stops with a panic"},
	{"failsafe port range", "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {failsafeOutboundHostPorts: [{port: 70000}]}\n", "spec.failsafeOutboundHostPorts[0].port", "between 0 and 65535"},
	{"failsafe string syntax", "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {failsafeInboundHostPorts: \"tcp:22\"}\n", "spec.failsafeInboundHostPorts", "must be a list of {protocol, port, net}"},
	{"felix denyAction", "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {iptablesFilterDenyAction: DENY}\n", "spec.iptablesFilterDenyAction", "must be one of Drop, Reject (case-sensitive)"},
	{"felix endpoint-to-host", "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\nspec: {defaultEndpointToHostAction: Allow}\n", "spec.defaultEndpointToHostAction", "must be one of Drop, Accept, Return (case-sensitive)"},
}

func seq(n int, f func(int) string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = f(i)
	}
	return strings.Join(parts, ", ")
}

func TestValidation(t *testing.T) {
	for _, tc := range validationCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadManifest(tc.manifest)
			ds := diagsOf(err)
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("want no error, got:\n%v", err)
				}
				return
			}
			if !hasDiag(ds, tc.field, tc.msg) {
				t.Fatalf("want %s: ...%s..., got:\n%v", tc.field, tc.msg, err)
			}
			for _, d := range ds {
				if d.File != "r.yaml" || d.Line < 1 || d.Col < 1 {
					t.Errorf("diagnostic without a position in r.yaml: %+v", d)
				}
			}
		})
	}
}
