package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// Calico validates every field of a FelixConfiguration, including the many
// nfgate ignores, and calicoctl refuses a resource with an unknown field or a
// bad value. nfgate accepts and rejects FelixConfiguration resources the same
// way (libcalico-go validator/v3 and the v3.32.1 CRD schema), then uses the
// few fields it implements and warns about the rest.

// felixCheck validates one field's value.
type felixCheck func(c *conv, v *node)

// Duration patterns of the CRD schema. Most are written with a doubled
// backslash, so a fractional duration ("1.5s") does not match them; one
// (liveMigrationRouteConvergenceTime) is not.
var (
	durationPatternCRD    = regexp.MustCompile(`^([0-9]+(\\.[0-9]+)?(ms|s|m|h))*$`)
	durationPatternSingle = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?(ms|s|m|h))*$`)
)

func fcBool(c *conv, v *node) { c.boolean(v) }

func fcString(c *conv, v *node) { c.str(v) }

// fcInt checks an integer in [lo, hi].
func fcInt(lo, hi int64) felixCheck {
	return func(c *conv, v *node) {
		if x, ok := c.integer(v); ok && (x < lo || x > hi) {
			c.errf(v, "must be between %d and %d", lo, hi)
		}
	}
}

const maxInt64 = int64(^uint64(0) >> 1)

var fcAnyInt = fcInt(-maxInt64-1, maxInt64)

// fcEnum checks a string that must be one of vals, exactly (Calico's
// validator compares case-sensitively); "" is allowed (omitempty).
func fcEnum(vals ...string) felixCheck {
	return func(c *conv, v *node) {
		s, ok := c.str(v)
		if !ok || s == "" {
			return
		}
		for _, a := range vals {
			if s == a {
				return
			}
		}
		c.errf(v, "invalid value %q: must be one of %s (case-sensitive)", s, strings.Join(vals, ", "))
	}
}

// fcIEnum is a CRD pattern ^(?i)(A|B)?$ with no validator tag: any case.
func fcIEnum(vals ...string) felixCheck {
	return func(c *conv, v *node) {
		s, ok := c.str(v)
		if !ok || s == "" {
			return
		}
		for _, a := range vals {
			if strings.EqualFold(s, a) {
				return
			}
		}
		c.errf(v, "invalid value %q: must be one of %s", s, strings.Join(vals, ", "))
	}
}

func fcPattern(re *regexp.Regexp) felixCheck {
	return func(c *conv, v *node) {
		if s, ok := c.str(v); ok && !re.MatchString(s) {
			c.errf(v, "invalid value %q: must match %s", s, re)
		}
	}
}

// fcDuration is a metav1.Duration: a Go duration string whose canonical
// form must match the CRD pattern.
func fcDuration(pattern *regexp.Regexp) felixCheck {
	return func(c *conv, v *node) {
		s, ok := c.str(v)
		if !ok {
			return
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			c.errf(v, "invalid duration %q", s)
			return
		}
		if pattern != nil && !pattern.MatchString(d.String()) {
			c.errf(v, "invalid duration %q: Calico's schema does not accept %s", s, d)
		}
	}
}

var fcDur = fcDuration(durationPatternCRD)

func fcRegexp(c *conv, v *node) {
	if s, ok := c.str(v); ok && s != "" {
		if _, err := regexp.Compile(s); err != nil {
			c.errf(v, "invalid regular expression %q: %v", s, err)
		}
	}
}

var (
	ifaceFilterRe    = regexp.MustCompile(`^[a-zA-Z0-9:._+-]{1,15}$`)
	prometheusHostRe = regexp.MustCompile(`^[a-zA-Z0-9:._+-]{1,64}$`)
	keyValueItemRe   = regexp.MustCompile(`^\s*(\w+)=(.*)$`)
	htoNameRe        = regexp.MustCompile(`^[a-zA-Z0-9_ -]+$`)
)

func fcIface(c *conv, v *node) {
	if s, ok := c.str(v); ok && s != "" && s != "*" && !interfaceRe.MatchString(s) {
		c.errf(v, "invalid interface name %q", s)
	}
}

func fcIfaceFilter(c *conv, v *node) {
	if s, ok := c.str(v); ok && s != "" && !ifaceFilterRe.MatchString(s) {
		c.errf(v, "invalid interface filter %q", s)
	}
}

func fcIfaceFilterList(c *conv, v *node) {
	for _, e := range c.list(v) {
		if s, ok := c.str(e); ok && !ifaceFilterRe.MatchString(s) {
			c.errf(e, "invalid interface filter %q", s)
		}
	}
}

func fcStringList(c *conv, v *node) { c.strList(v) }

// parseCIDROrIP is Calico's cnet.ParseCIDROrIP: a CIDR (host bits allowed)
// or an address.
func parseCIDROrIP(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p, true
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

func fcCIDRs(v4Only bool) felixCheck {
	return func(c *conv, v *node) {
		for _, e := range c.list(v) {
			s, ok := c.str(e)
			if !ok {
				continue
			}
			p, ok := parseCIDROrIP(s)
			switch {
			case !ok:
				c.errf(e, "has invalid CIDR(s)")
			case v4Only && !p.Addr().Is4():
				c.errf(e, "has invalid IPv6 CIDR")
			}
		}
	}
}

// fcIP checks an address of family fam (4 or 6).
func fcIP(fam int) felixCheck {
	return func(c *conv, v *node) {
		s, ok := c.str(v)
		if !ok || s == "" {
			return
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" || (fam == 4) != a.Unmap().Is4() || fam == 6 && a.Is4In6() {
			c.errf(v, "is not a valid IPv%d address", fam)
		}
	}
}

func fcKeyValueList(pattern *regexp.Regexp) felixCheck {
	return func(c *conv, v *node) {
		s, ok := c.str(v)
		if !ok || strings.TrimSpace(s) == "" {
			return
		}
		for _, item := range strings.Split(s, ",") {
			if item != "" && !keyValueItemRe.MatchString(item) {
				c.errf(v, "invalid key=value list %q", s)
				return
			}
		}
		if !pattern.MatchString(s) {
			c.errf(v, "invalid value %q: must match %s", s, pattern)
		}
	}
}

// fcPort is a numorstring.Port: a number or "min:max".
func fcPort(c *conv, v *node) { c.felixPort(v, false) }

// felixPort checks one numorstring.Port (Calico validatePort); named ports
// are errors when noNames.
func (c *conv) felixPort(v *node, noNames bool) {
	if noNames && v.kind == kString && !allDigitsRe.MatchString(v.s) && !portRangeRe.MatchString(v.s) {
		c.errf(v, "node port ranges should not contain named ports")
		return
	}
	c.port(v)
}

func fcNodePortRanges(c *conv, v *node) {
	l := c.list(v)
	if len(l) > 7 {
		c.errf(v, "node port ranges list is too long (max 7)")
	}
	for _, e := range l {
		c.felixPort(e, true)
	}
}

// fcProtoPorts checks a failsafe list ([]ProtoPort): port 0-65535
// (required), protocol and net strings. Calico's ProtoPort check (protocol
// TCP, UDP or SCTP) does not run inside a FelixConfiguration, whose slice
// the validator does not dive into (calicoctl v3.32.1 accepts any protocol
// there); felixFailsafe refuses what Felix cannot run with.
func fcProtoPorts(c *conv, v *node) {
	if v.kind != kList {
		c.errf(v, "must be a list of {protocol, port, net}, not %s (Felix's \"tcp:22\" string form is for its own configuration file, not for a FelixConfiguration)", v.kind)
		return
	}
	for _, e := range v.list {
		if !c.fields(e, []string{"protocol", "port", "net"}, nil) {
			continue
		}
		c.str(e.get("protocol"))
		if p, ok := c.integer(e.get("port")); !ok {
			if !isSet(e.get("port")) {
				c.errf(e, "port is required")
			}
		} else if p < 0 || p > 65535 {
			c.errf(e.get("port"), "failsafe port must be between 0 and 65535")
		}
		c.str(e.get("net"))
	}
}

func fcHealthTimeoutOverrides(c *conv, v *node) {
	for _, e := range c.list(v) {
		if !c.fields(e, []string{"name", "timeout"}, nil) {
			continue
		}
		if s, ok := c.str(e.get("name")); !ok || !htoNameRe.MatchString(s) {
			c.errf(orSelf(e.get("name"), e), "name should match regex %s", htoNameRe)
		}
		if s, ok := c.str(e.get("timeout")); !ok {
			c.errf(e, "timeout is required")
		} else if d, err := time.ParseDuration(s); err != nil {
			c.errf(e.get("timeout"), "invalid duration %q", s)
		} else if d < 0 {
			c.errf(e.get("timeout"), "Timeout should not be negative")
		}
	}
}

func (c *conv) minMax(e *node) (lo, hi int64, ok bool) {
	if !c.fields(e, []string{"min", "max"}, nil) {
		return 0, 0, false
	}
	lo, ok1 := c.integer(e.get("min"))
	hi, ok2 := c.integer(e.get("max"))
	if !ok1 || !ok2 {
		c.errf(e, "min and max are required")
		return 0, 0, false
	}
	return lo, hi, true
}

func fcRouteTableRange(c *conv, v *node) {
	if lo, hi, ok := c.minMax(v); ok && !(lo >= 1 && hi >= lo && hi <= 250) {
		c.errf(v, "must be a range of route table indices within 1..250")
	}
}

func fcRouteTableRanges(c *conv, v *node) {
	total := int64(0)
	for _, e := range c.list(v) {
		lo, hi, ok := c.minMax(e)
		if !ok {
			continue
		}
		if lo > hi {
			c.errf(e, "min value cannot be greater than max value")
		}
		if lo <= 0 {
			c.errf(e, "cannot target indices < 1")
		}
		if hi > 0xffffffff {
			c.errf(e, "max index too high")
		}
		if hi >= lo {
			total += hi - lo + 1
		}
	}
	if total > 0xffff {
		c.errf(v, "targets too many tables")
	}
}

func fcBPFLogFilters(c *conv, v *node) {
	if v.kind != kMap {
		c.errf(v, "must be a mapping of interface names to filters")
		return
	}
	for _, k := range v.kids {
		if !interfaceRe.MatchString(k.key) {
			c.d.add(false, k.kpos, c.res, k.fpath(), "invalid interface name %q", k.key)
		}
		c.str(k)
	}
}

func fcObject(fields ...string) felixCheck {
	return func(c *conv, v *node) { c.fields(v, fields, nil) }
}

func fcIntOrString(c *conv, v *node) {
	if v.kind != kInt && v.kind != kString {
		c.errf(v, "must be a number or a string, not %s", v.kind)
	}
}

var bpfConntrackTimeoutRe = regexp.MustCompile(`^(([0-9]*(\.[0-9]*)?(ms|s|h|m|us)+)+|Auto)$`)

func fcBPFConntrackTimeouts(c *conv, v *node) {
	if !c.fields(v, []string{"creationGracePeriod", "tcpSynSent", "tcpEstablished", "tcpFinsSeen", "tcpResetSeen",
		"udpTimeout", "genericTimeout", "icmpTimeout"}, nil) {
		return
	}
	for _, k := range v.kids {
		if s, ok := c.str(k); ok && !bpfConntrackTimeoutRe.MatchString(s) {
			c.errf(k, "invalid conntrack timeout %q", s)
		}
	}
}

var openstackRegionMax = 63 - len("openstack-region-")

func fcOpenstackRegion(c *conv, v *node) {
	s, ok := c.str(v)
	switch {
	case !ok || s == "":
	case len(s) > openstackRegionMax:
		c.errf(v, "is too long")
	case !dnsLabelRe.MatchString(s):
		c.errf(v, "must be a valid DNS label")
	}
}

// felixSpecFields are the fields of Calico v3.32.1's FelixConfigurationSpec,
// each with its check (field tags, CRD schema, validateFelixConfigSpec).
var felixSpecFields = map[string]felixCheck{
	"nodeSelector": func(c *conv, v *node) {
		if s, ok := c.str(v); ok && len(s) > 1024 {
			c.errf(v, "may be at most 1024 characters")
		}
	},
	"useInternalDataplaneDriver":         fcBool,
	"dataplaneDriver":                    fcString,
	"dataplaneWatchdogTimeout":           fcDuration(nil),
	"ipv6Support":                        fcBool,
	"routeRefreshInterval":               fcDur,
	"interfaceRefreshInterval":           fcDur,
	"iptablesRefreshInterval":            fcDur,
	"iptablesPostWriteCheckInterval":     fcDur,
	"iptablesLockProbeInterval":          fcDur,
	"featureDetectOverride":              fcKeyValueList(regexp.MustCompile(`^([a-zA-Z0-9-_]+=(true|false|),)*([a-zA-Z0-9-_]+=(true|false|))?$`)),
	"featureGates":                       fcKeyValueList(regexp.MustCompile(`^([a-zA-Z0-9-_]+=([^=]+),)*([a-zA-Z0-9-_]+=([^=]+))?$`)),
	"ipsetsRefreshInterval":              fcDur,
	"maxIpsetSize":                       fcAnyInt,
	"iptablesBackend":                    fcEnum("Legacy", "NFT", "Auto"),
	"xdpRefreshInterval":                 fcDur,
	"netlinkTimeout":                     fcDur,
	"metadataAddr":                       fcString,
	"metadataPort":                       fcAnyInt,
	"openstackRegion":                    fcOpenstackRegion,
	"interfacePrefix":                    fcString,
	"interfaceExclude":                   fcString,
	"chainInsertMode":                    fcIEnum("Insert", "Append"),
	"defaultEndpointToHostAction":        fcEnum("Drop", "Accept", "Return"),
	"iptablesFilterAllowAction":          fcEnum("Accept", "Return"),
	"iptablesMangleAllowAction":          fcEnum("Accept", "Return"),
	"iptablesFilterDenyAction":           fcEnum("Drop", "Reject"),
	"logPrefix":                          fcPattern(regexp.MustCompile(`^([a-zA-Z0-9%: /_-])*$`)),
	"logActionRateLimit":                 fcPattern(regexp.MustCompile(`^[1-9]\d{0,3}/(?:second|minute|hour|day)$`)),
	"logActionRateLimitBurst":            fcInt(0, 9999),
	"logFilePath":                        fcString,
	"logSeverityFile":                    fcEnum("Trace", "Debug", "Info", "Warning", "Error", "Fatal"),
	"logSeverityScreen":                  fcEnum("Trace", "Debug", "Info", "Warning", "Error", "Fatal"),
	"logSeveritySys":                     fcEnum("Trace", "Debug", "Info", "Warning", "Error", "Fatal"),
	"logDebugFilenameRegex":              fcRegexp,
	"ipipEnabled":                        fcBool,
	"ipipMTU":                            fcAnyInt,
	"vxlanEnabled":                       fcBool,
	"vxlanMTU":                           fcAnyInt,
	"vxlanMTUV6":                         fcAnyInt,
	"vxlanPort":                          fcAnyInt,
	"vxlanVNI":                           fcAnyInt,
	"allowVXLANPacketsFromWorkloads":     fcBool,
	"allowIPIPPacketsFromWorkloads":      fcBool,
	"reportingInterval":                  fcDur,
	"reportingTTL":                       fcDur,
	"endpointReportingEnabled":           fcBool,
	"endpointReportingDelay":             fcDur,
	"endpointStatusPathPrefix":           fcString,
	"iptablesMarkMask":                   fcInt(0, 0xffffffff),
	"disableConntrackInvalidCheck":       fcBool,
	"healthEnabled":                      fcBool,
	"healthHost":                         fcString,
	"healthPort":                         fcAnyInt,
	"healthTimeoutOverrides":             fcHealthTimeoutOverrides,
	"prometheusMetricsEnabled":           fcBool,
	"prometheusMetricsHost":              fcPattern(prometheusHostRe),
	"prometheusMetricsPort":              fcAnyInt,
	"prometheusGoMetricsEnabled":         fcBool,
	"prometheusProcessMetricsEnabled":    fcBool,
	"prometheusWireGuardMetricsEnabled":  fcBool,
	"prometheusMetricsCAFile":            fcString,
	"prometheusMetricsCertFile":          fcString,
	"prometheusMetricsKeyFile":           fcString,
	"prometheusMetricsClientAuth":        fcEnum("RequireAndVerifyClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven", "NoClientCert"),
	"failsafeInboundHostPorts":           fcProtoPorts,
	"failsafeOutboundHostPorts":          fcProtoPorts,
	"kubeNodePortRanges":                 fcNodePortRanges,
	"policySyncPathPrefix":               fcString,
	"usageReportingEnabled":              fcBool,
	"usageReportingInitialDelay":         fcDur,
	"usageReportingInterval":             fcDur,
	"natPortRange":                       fcPort,
	"natOutgoingAddress":                 fcIP(4),
	"natOutgoingExclusions":              fcEnum("IPPoolsOnly", "IPPoolsAndHostIPs"),
	"deviceRouteSourceAddress":           fcIP(4),
	"deviceRouteSourceAddressIPv6":       fcIP(6),
	"deviceRouteProtocol":                fcAnyInt,
	"removeExternalRoutes":               fcBool,
	"programClusterRoutes":               fcEnum("Enabled", "Disabled"),
	"ipForwarding":                       fcEnum("Enabled", "Disabled"),
	"externalNodesList":                  fcCIDRs(true),
	"debugMemoryProfilePath":             fcString,
	"debugDisableLogDropping":            fcBool,
	"debugSimulateCalcGraphHangAfter":    fcDur,
	"debugSimulateDataplaneHangAfter":    fcDur,
	"debugSimulateDataplaneApplyDelay":   fcDur,
	"debugHost":                          fcString,
	"debugPort":                          fcInt(0, 65535),
	"iptablesNATOutgoingInterfaceFilter": fcIfaceFilter,
	"sidecarAccelerationEnabled":         fcBool,
	"xdpEnabled":                         fcBool,
	"genericXDPEnabled":                  fcBool,
	"nftablesMode":                       fcEnum("Disabled", "Enabled", "Auto"),
	"nftablesRefreshInterval":            fcDuration(nil),
	"nftablesFilterAllowAction":          fcEnum("Accept", "Return"),
	"nftablesMangleAllowAction":          fcEnum("Accept", "Return"),
	"nftablesFilterDenyAction":           fcEnum("Drop", "Reject"),
	"nftablesMarkMask":                   fcInt(0, 0xffffffff),
	"bpfEnabled":                         fcBool,
	"bpfDisableUnprivileged":             fcBool,
	"bpfJITHardening":                    fcEnum("Auto", "Strict"),
	"bpfLogLevel":                        fcEnum("Debug", "Info", "Off"),
	"bpfConntrackLogLevel":               fcEnum("Off", "Debug"),
	"bpfConntrackMode":                   fcEnum("Auto", "Userspace", "BPFProgram"),
	"bpfConntrackTimeouts":               fcBPFConntrackTimeouts,
	"bpfLogFilters":                      fcBPFLogFilters,
	"bpfCTLBLogFilter":                   fcString,
	"bpfDataIfacePattern":                fcRegexp,
	"bpfL3IfacePattern":                  fcRegexp,
	"bpfConnectTimeLoadBalancingEnabled": fcBool,
	"bpfConnectTimeLoadBalancing":        fcEnum("TCP", "Enabled", "Disabled"),
	"bpfHostNetworkedNATWithoutCTLB":     fcEnum("Enabled", "Disabled"),
	"bpfExternalServiceMode":             fcEnum("Tunnel", "DSR"),
	"bpfDSROptoutCIDRs":                  fcCIDRs(false),
	"bpfExtToServiceConnmark":            fcInt(0, 4294967295),
	"bpfKubeProxyIptablesCleanupEnabled": fcBool,
	"bpfKubeProxyMinSyncPeriod":          fcDur,
	"bpfKubeProxyHealthzPort":            fcInt(0, 65535),
	"bpfPSNATPorts":                      fcPort,
	"bpfMapSizeNATFrontend":              fcAnyInt,
	"bpfMapSizeNATBackend":               fcAnyInt,
	"bpfMapSizeNATAffinity":              fcAnyInt,
	"bpfMapSizeRoute":                    fcAnyInt,
	"bpfMapSizeConntrack":                fcAnyInt,
	"bpfMapSizePerCpuConntrack":          fcAnyInt,
	"bpfMapSizeConntrackScaling":         fcIEnum("Disabled", "DoubleIfFull"),
	"bpfMapSizeConntrackCleanupQueue":    fcInt(1, maxInt64),
	"bpfMapSizeIPSets":                   fcAnyInt,
	"bpfMapSizeIfState":                  fcAnyInt,
	"bpfHostConntrackBypass":             fcBool,
	"bpfEnforceRPF":                      fcIEnum("Disabled", "Strict", "Loose"),
	"bpfPolicyDebugEnabled":              fcBool,
	"bpfForceTrackPacketsFromIfaces":     fcIfaceFilterList,
	"bpfDisableGROForIfaces":             fcRegexp,
	"bpfExcludeCIDRsFromNAT":             fcCIDRs(false),
	"bpfExportBufferSizeMB":              fcAnyInt,
	"istioAmbientMode":                   fcEnum("Enabled", "Disabled"),
	"istioDSCPMark":                      fcIntOrString,
	"cgroupV2Path":                       fcString,
	"flowLogsPolicyEvaluationMode":       fcEnum("None", "Continuous"),
	"bpfRedirectToPeer":                  fcString,
	"bpfAttachType":                      fcEnum("TC", "TCX"),
	"flowLogsFlushInterval":              fcDur,
	"flowLogsCollectorDebugTrace":        fcBool,
	"flowLogsGoldmaneServer":             fcString,
	"flowLogsLocalReporter":              fcEnum("Disabled", "Enabled"),
	"bpfProfiling":                       fcString,
	"routeSource":                        fcIEnum("WorkloadIPs", "CalicoIPAM"),
	"routeTableRanges":                   fcRouteTableRanges,
	"routeTableRange":                    fcRouteTableRange,
	"routeSyncDisabled":                  fcBool,
	"ipv4NormalRoutePriority":            fcInt(1, 2147483646),
	"ipv4ElevatedRoutePriority":          fcInt(1, 2147483646),
	"ipv6NormalRoutePriority":            fcInt(1, 2147483646),
	"ipv6ElevatedRoutePriority":          fcInt(1, 2147483646),
	"liveMigrationRouteConvergenceTime":  fcDuration(durationPatternSingle),
	"wireguardEnabled":                   fcBool,
	"wireguardEnabledV6":                 fcBool,
	"wireguardThreadingEnabled":          fcBool,
	"wireguardListeningPort":             fcInt(1, 65535),
	"wireguardListeningPortV6":           fcInt(1, 65535),
	"wireguardRoutingRulePriority":       fcInt(1, 32765),
	"wireguardInterfaceName":             fcIface,
	"wireguardInterfaceNameV6":           fcIface,
	"wireguardMTU":                       fcAnyInt,
	"wireguardMTUV6":                     fcAnyInt,
	"wireguardHostEncryptionEnabled":     fcBool,
	"wireguardKeepAlive":                 fcDur,
	"awsSrcDstCheck":                     fcEnum("DoNothing", "Enable", "Disable"),
	"serviceLoopPrevention":              fcEnum("Drop", "Reject", "Disabled"),
	"workloadSourceSpoofing":             fcEnum("Disabled", "Any"),
	"mtuIfacePattern":                    fcRegexp,
	"floatingIPs":                        fcEnum("Enabled", "Disabled"),
	"windowsManageFirewallRules":         fcEnum("Enabled", "Disabled"),
	"goGCThreshold":                      fcInt(-1, maxInt64),
	"goMemoryLimitMB":                    fcInt(-1, maxInt64),
	"goMaxProcs":                         fcInt(-1, maxInt64),
	"requireMTUFile":                     fcBool,
	"bpfMaglevMaxEndpointsPerService":    fcInt(1, 3000),
	"bpfMaglevMaxServices":               fcInt(1, 3000),
}

// validateFelixSpec checks a FelixConfiguration as Calico would: every field
// known and valid, and the rules across fields.
func (c *conv) validateFelixSpec(name string, spec *node) {
	for _, v := range spec.kids {
		check, ok := felixSpecFields[v.key]
		if !ok {
			msg := fmt.Sprintf("unknown field %q", v.key)
			for k := range felixSpecFields {
				if strings.EqualFold(k, v.key) {
					msg += fmt.Sprintf(" (field names are case-sensitive: did you mean %q?)", k)
				}
			}
			c.d.add(false, v.kpos, c.res, v.fpath(), "%s", msg)
			continue
		}
		if isSet(v) {
			check(c, v)
		}
	}
	if isSet(spec.get("routeTableRange")) && isSet(spec.get("routeTableRanges")) {
		c.errf(spec.get("routeTableRange"), "cannot be set when `RouteTableRanges` is also set")
	}
	if (name == "default" || strings.HasPrefix(name, "node.")) && isSet(spec.get("nodeSelector")) {
		c.errf(spec.get("nodeSelector"), "nodeSelector must not be set on the 'default' or per-node ('node.*') FelixConfiguration")
	}
}
