// Package config loads nfgate's configuration: one TOML file plus included
// TOML fragments and Calico v3 YAML manifests, strictly validated into a
// policy.Config and the daemon's Runtime settings. docs/configuration.md is
// the user's reference; this comment is the schema in brief.
//
// # Main file (TOML)
//
//	include = ["policies/*.yaml", "more.toml"]  # files and globs, relative to this file
//
//	[gateway]                       # main file only; Felix's names
//	nodeName = "gw"                 # required: HostEndpoints with another node are ignored
//	interfacePrefix = "cali"        # comma-separated workload interface prefixes
//	failsafeInboundHostPorts = "tcp:22, udp:68"   # Felix syntax, "none", or
//	failsafeOutboundHostPorts = [{ protocol = "UDP", port = 53, net = "198.18.0.0/15" }]
//	iptablesFilterDenyAction = "DROP"             # or "REJECT"
//	defaultEndpointToHostAction = "Drop"          # "Accept", "Return"
//	disableConntrackInvalidCheck = false
//
//	[engine]                        # main file only; Runtime (never changes verdicts)
//	queueBase = 100, queues = 0, failureMode = "closed", markMask = "0x00ff0000",
//	deadline = "200ms", traceFile = "", traceBuffer = 65536, denyCacheSize = 65536,
//	denyCacheTTL = "2s", iptablesBackend = "auto", metricsAddress = "",
//	denyRegionSize = 4096, denyRegionTTL = "10s"
//
// # Resources (TOML, in the main file or fragments)
//
// Arrays of tables named like Calico's kinds, metadata flattened (name,
// labels) beside the spec fields, which keep Calico's names:
//
//	[[globalNetworkPolicy]]   name tier order selector types applyOnForward preDNAT
//	                          doNotTrack namespaceSelector serviceAccountSelector
//	[[globalNetworkPolicy.ingress]]   action protocol notProtocol ipVersion icmp notICMP
//	[globalNetworkPolicy.ingress.source]   nets notNets selector notSelector
//	                                       namespaceSelector ports notPorts
//	[[hostEndpoint]]          name labels interfaceName node expectedIPs profiles ports
//	[[globalNetworkSet]]      name labels nets
//	[[profile]]               name labels labelsToApply ingress egress
//	[[tier]]                  name order defaultAction
//
// # Resources (YAML)
//
// Multi-document Calico manifests, apiVersion projectcalico.org/v3, kinds
// GlobalNetworkPolicy, HostEndpoint, GlobalNetworkSet, Profile, Tier,
// FelixConfiguration, and List / <Kind>List with items. Unknown fields and
// kinds are errors. FelixConfiguration "default" and "node.<nodeName>" set
// the [gateway] fields above (node-specific wins; a field may not also be in
// [gateway]); their other fields are ignored with a warning, since real Felix
// configurations carry many.
//
// # Validation
//
// Both formats become one positioned tree that a single converter validates
// (Calico's rules and messages, spec §8), applying Calico's defaulting
// (types, tier "default", built-in tiers). Every error of a load is
// reported as a Diag with file, line, column, resource and field.
package config
